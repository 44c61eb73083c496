"""Runs Presidio's AnalyzerEngine (pattern recognizers, spaCy blank English pipeline, offline) over a JSON
list of texts; prints one JSON document: the results per text and the analysis time (the best of N passes).
Run with a Python that has presidio-analyzer installed (not a Bastion dependency):
``python presidio_runner.py TEXTS.json [PASSES]``."""

from __future__ import annotations

import json
import sys
import time

import spacy
from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
from presidio_analyzer.nlp_engine import SpacyNlpEngine


class BlankSpacy(SpacyNlpEngine):  # type: ignore[misc]
    """A blank English pipeline: tokenisation only, no model download, no NER."""

    def __init__(self) -> None:
        super().__init__(models=[{"lang_code": "en", "model_name": "blank"}])

    def load(self) -> None:
        self.nlp = {"en": spacy.blank("en")}


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as handle:
        texts = json.load(handle)
    engine = BlankSpacy()
    engine.load()
    registry = RecognizerRegistry(supported_languages=["en"])
    registry.load_predefined_recognizers(languages=["en"])
    analyzer = AnalyzerEngine(nlp_engine=engine, registry=registry, supported_languages=["en"])
    analyzer.analyze(text="warm up: call 212-555-0100 or mail a@example.com", language="en")
    passes, results = [], []
    for _ in range(int(sys.argv[2]) if len(sys.argv) > 2 else 3):  # best of N, like Bastion's side
        started = time.perf_counter()
        results = [
            [(r.entity_type, r.start, r.end, r.score) for r in analyzer.analyze(text=text, language="en")]
            for text in texts
        ]
        passes.append(time.perf_counter() - started)
    json.dump({"elapsed": min(passes), "results": results}, sys.stdout)


if __name__ == "__main__":
    main()
