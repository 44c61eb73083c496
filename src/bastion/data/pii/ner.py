"""The pluggable NER engine for names, places and organisations. Bastion ships none: a serious one is a
large model, and a toy one would pretend. When spaCy and an English pipeline with an ``ner`` component are
installed, they are used; otherwise the engine reports that NER is off."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from bastion.data.pii.engine import RecognizerResult

# spaCy's OntoNotes labels to Presidio's entity names.
SPACY_LABELS = {"PERSON": "PERSON", "GPE": "LOCATION", "LOC": "LOCATION", "FAC": "LOCATION",
                "ORG": "ORGANIZATION", "NORP": "NRP"}  # fmt: skip
SPACY_PIPELINES = ("en_core_web_lg", "en_core_web_md", "en_core_web_sm", "en_core_web_trf")


class NerEngine(Protocol):
    name: str
    entities: tuple[str, ...]

    def analyze(self, text: str) -> list[RecognizerResult]: ...


class SpacyNer:
    entities = tuple(sorted(set(SPACY_LABELS.values())))

    def __init__(self, nlp: Any, name: str) -> None:
        self._nlp, self.name = nlp, f"spaCy {name}"

    def analyze(self, text: str) -> list[RecognizerResult]:
        from bastion.data.pii.engine import RecognizerResult  # noqa: PLC0415

        return [
            RecognizerResult(SPACY_LABELS[ent.label_], ent.start_char, ent.end_char, 0.85, "spacy")
            for ent in self._nlp(text).ents
            if ent.label_ in SPACY_LABELS
        ]


def detect_ner() -> NerEngine | None:
    try:
        import spacy  # noqa: PLC0415
    except ImportError:
        return None
    for name in SPACY_PIPELINES:
        try:
            nlp = spacy.load(name, exclude=["parser", "lemmatizer", "tagger", "attribute_ruler"])
        except OSError:
            continue
        if "ner" in nlp.pipe_names:
            return SpacyNer(nlp, name)
    return None
