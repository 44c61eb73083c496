"""PII detection (the issue's ``benchmarks/pii``): precision, recall and F1 per entity type, and throughput,
for Bastion's engine and for Presidio's AnalyzerEngine (pattern recognizers, spaCy blank pipeline, offline)
on the same texts in the same run: ``../shared/data/pii/presidio_synth_dev.json``.

Matching: a result counts as a true positive when it overlaps a not-yet-matched gold span of the same type;
the data set's DOMAIN_NAME is Presidio's (and Bastion's) URL. Structured types are scored where both
engines detect them; name/place/organisation types need an NER engine and are reported separately.

Presidio is not a Bastion dependency: install it in its own venv and point ``BASTION_BENCH_PRESIDIO`` at that
venv's python (``python -m venv /tmp/presidio && /tmp/presidio/bin/pip install presidio-analyzer``).
Run: ``BASTION_BENCH_PRESIDIO=/tmp/presidio/bin/python .venv/bin/python -m benchmarks.bench_pii``.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from collections import defaultdict
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "pii" / "presidio_synth_dev.json"
RUNNER = Path(__file__).parent / "support" / "presidio_runner.py"
STRUCTURED = ("CREDIT_CARD", "DATE_TIME", "EMAIL_ADDRESS", "IBAN_CODE", "IP_ADDRESS", "PHONE_NUMBER", "URL")
NER_TYPES = ("PERSON", "LOCATION", "ORGANIZATION", "NRP")
GOLD_NAMES = {"DOMAIN_NAME": "URL", "GPE": "LOCATION"}
Span = tuple[str, int, int]
PASSES = 5  # throughput is the best of this many passes over every text, for each engine (a noisy machine)


def gold(records: list[dict[str, object]]) -> list[list[Span]]:
    out = []
    for record in records:
        spans = record["spans"]
        assert isinstance(spans, list)
        out.append(
            [
                (GOLD_NAMES.get(s["entity_type"], s["entity_type"]), s["start_position"], s["end_position"])
                for s in spans
            ]
        )
    return out


def score(truth: list[list[Span]], predicted: list[list[Span]]) -> dict[str, tuple[int, int, int]]:
    """Per type: (true positives, false positives, false negatives)."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for gold_spans, found in zip(truth, predicted, strict=True):
        unmatched = list(gold_spans)
        for kind, start, end in found:
            hit = next((g for g in unmatched if g[0] == kind and g[1] < end and start < g[2]), None)
            if hit is None:
                counts[kind][1] += 1
            else:
                unmatched.remove(hit)
                counts[kind][0] += 1
        for kind, _, _ in unmatched:
            counts[kind][2] += 1
    return {kind: (tp, fp, fn) for kind, (tp, fp, fn) in counts.items()}


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def run_bastion(texts: list[str]) -> tuple[list[list[Span]], float, float, str]:
    from bastion.data.pii import PiiEngine

    engine = PiiEngine()
    engine.analyze("warm up: call 212-555-0100 or mail a@example.com")
    runs, results = [], []
    for _ in range(PASSES):
        started = time.perf_counter()
        results = [engine.analyze(text) for text in texts]
        runs.append(time.perf_counter() - started)
    spans = [[(r.entity_type, r.start, r.end) for r in found] for found in results]
    batch = []
    for _ in range(PASSES):
        started = time.perf_counter()
        engine.analyze_batch(texts)
        batch.append(time.perf_counter() - started)
    return spans, min(runs), min(batch), engine.ner_status


def run_presidio(texts: list[str]) -> tuple[list[list[Span]], float] | None:
    python = os.environ.get("BASTION_BENCH_PRESIDIO")
    if not python:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(texts, handle)
    try:
        env = {**os.environ, "TLDEXTRACT_CACHE": tempfile.gettempdir() + "/tldextract"}
        done = subprocess.run(
            [python, str(RUNNER), handle.name, str(PASSES)],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
    finally:
        os.unlink(handle.name)
    output = json.loads(done.stdout)
    spans = [[(kind, start, end) for kind, start, end, _ in found] for found in output["results"]]
    return spans, output["elapsed"]


def main() -> None:
    records = json.loads(DATA.read_text(encoding="utf-8"))
    texts = [r["full_text"] for r in records]
    truth = gold(records)
    megabytes = sum(len(t.encode()) for t in texts) / 1e6
    ours, elapsed, batched, ner_status = run_bastion(texts)
    presidio = run_presidio(texts)
    print(f"{len(texts)} texts, {megabytes * 1e3:.1f} kB; Bastion NER: {ner_status}")
    print(f"{'type':<14}{'gold':>5}   {'bastion P/R/F1':<22}{'presidio P/R/F1':<22}")
    mine = score(truth, ours)
    theirs = score(truth, presidio[0]) if presidio else {}
    for kind in (*STRUCTURED, *NER_TYPES):
        tp, fp, fn = mine.get(kind, (0, 0, 0))
        support = tp + fn
        line = f"{kind:<14}{support:>5}   " + "{:.2f}/{:.2f}/{:.2f}".format(*prf(tp, fp, fn)).ljust(22)
        if presidio:
            line += "{:.2f}/{:.2f}/{:.2f}".format(*prf(*theirs.get(kind, (0, 0, 0))))
        print(line + ("   (needs NER)" if kind in NER_TYPES else ""))
    extra = sorted(k for k in mine if k not in STRUCTURED and k not in NER_TYPES and mine[k][1])
    for kind in extra:
        print(f"  Bastion false positives of types not in the gold set: {kind} {mine[kind][1]}")
    print(f"throughput: Bastion {megabytes / elapsed:.2f} MB/s ({elapsed / len(texts) * 1e6:.0f} µs/text)")
    if presidio:
        rate = megabytes / presidio[1]
        print(f"            Presidio {rate:.3f} MB/s ({presidio[1] / len(texts) * 1e3:.1f} ms/text)")
        print(
            f"            ratio {megabytes / elapsed / rate:.0f}x (one text per call, as a gateway calls it)"
        )
        print(
            f"            Bastion analyze_batch {megabytes / batched:.2f} MB/s, "
            f"{megabytes / batched / rate:.0f}x (all texts in one call, as ingestion calls it)"
        )
        worse = [
            k
            for k in STRUCTURED
            if prf(*mine.get(k, (0, 0, 0)))[2] + 1e-9 < prf(*theirs.get(k, (0, 0, 0)))[2]
        ]
        print(f"structured types where Bastion's F1 is below Presidio's: {worse or 'none'}")


if __name__ == "__main__":
    main()
