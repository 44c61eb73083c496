"""PII and secret discovery in text, fast enough for every gateway request and safe on hostile input.

``PiiEngine().analyze(text)`` returns ``RecognizerResult``s — Presidio's entity names, scores, and offsets
that are exact on Unicode text (``str`` indices). Structured identifiers are found by Hyperscan (a
linear-time multi-pattern engine: no input can make it backtrack) and confirmed by validators (checksums,
number plans, ranges) and context words; names, places and organisations come from a pluggable NER engine
when one is installed, and the engine says so when none is.
"""

from bastion.data.pii.engine import PiiEngine, RecognizerResult

__all__ = ["PiiEngine", "RecognizerResult"]
