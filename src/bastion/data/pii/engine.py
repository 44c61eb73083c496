"""The engine: one Hyperscan scan over the UTF-8 text finds every candidate of every recognizer at once;
validators, context words and overlap resolution turn candidates into results.

Hyperscan reports a match at every end offset (with the leftmost start); the engine keeps, per recognizer
and start, the longest. Offsets are converted from UTF-8 bytes to ``str`` indices exactly (every pattern is
ASCII, so matches start and end on character boundaries).
"""

from __future__ import annotations

import re
import threading
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple, cast

import hyperscan

from bastion.data.pii.ner import NerEngine, detect_ner
from bastion.data.pii.recognizers import RECOGNIZERS, Recognizer

DEFAULT_THRESHOLD = 0.4
CONTEXT_BOOST = 0.35
CONTEXT_WINDOW = 48  # characters before a match searched for its context words
MAX_TEXT_CHARS = 16 * 1024 * 1024
STRONG = 0.85
# Between texts of a batch: no pattern matches a NUL, and the newlines end every word for ``\b``.
BATCH_SEPARATOR = b"\n\x00\n"
MAX_ENDS = 8  # match ends tried per start, longest first, until one validates


class RecognizerResult(NamedTuple):
    """Presidio's shape: entity type, ``str`` offsets, score — plus which recognizer found it. (A named
    tuple: the engine makes one per finding on the request path, and tuples are the cheapest to make.)"""

    entity_type: str
    start: int
    end: int
    score: float
    recognizer: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "entity_type": self.entity_type,
            "start": self.start,
            "end": self.end,
            "score": round(self.score, 3),
            "recognizer": self.recognizer,
        }


class _Database:
    """The compiled patterns, shared by every engine in the process; scratch spaces per thread.

    Two stages, because tracking where a match starts makes Hyperscan slower: one database of every pattern
    without start tracking, reporting each pattern at most once, says which recognizers match at all (two
    texts in three: none); then only those recognizers' start-tracking databases run, one per recognizer
    (usually one or two, each cheaper than a start-tracking database of every pattern).
    """

    _lock = threading.Lock()
    _shared: _Database | None = None

    def __init__(self, recognizers: tuple[Recognizer, ...]) -> None:
        self.recognizers = recognizers
        caseless = [hyperscan.HS_FLAG_CASELESS if r.caseless else 0 for r in recognizers]
        self.prefilter = _compile(
            [r.pattern for r in recognizers], [flag | hyperscan.HS_FLAG_SINGLEMATCH for flag in caseless]
        )
        self.exact = tuple(
            _compile([r.pattern], [flag | hyperscan.HS_FLAG_SOM_LEFTMOST], first_id=index)
            for index, (r, flag) in enumerate(zip(recognizers, caseless, strict=True))
        )
        self._local = threading.local()
        self.context = tuple(_context_pattern(r.context) if r.context else None for r in recognizers)

    @classmethod
    def shared(cls) -> _Database:
        with cls._lock:
            if cls._shared is None:
                cls._shared = cls(RECOGNIZERS)
            return cls._shared

    def _scratch(self) -> tuple[hyperscan.Scratch, tuple[hyperscan.Scratch, ...]]:
        scratch: tuple[hyperscan.Scratch, tuple[hyperscan.Scratch, ...]] | None = getattr(
            self._local, "scratch", None
        )
        if scratch is None:
            scratch = self._local.scratch = (
                hyperscan.Scratch(self.prefilter),
                tuple(hyperscan.Scratch(database) for database in self.exact),
            )
        return scratch

    def scan(self, data: bytes) -> list[tuple[int, int, list[int]]]:
        """(recognizer index, start byte, every end byte of a match from there in increasing order), by
        recognizer in the order of their first match."""
        prefilter_scratch, exact_scratch = self._scratch()
        matching: list[int] = []
        self.prefilter.scan(data, match_event_handler=_NOTE, context=matching, scratch=prefilter_scratch)
        if not matching:
            return []
        spans: dict[tuple[int, int], list[int]] = {}
        for index in matching:
            self.exact[index].scan(
                data, match_event_handler=_COLLECT, context=spans, scratch=exact_scratch[index]
            )
        return [(index, start, ends) for (index, start), ends in spans.items()]


def _note(index: int, _start: int, _end: int, _flags: int, matching: list[int]) -> None:
    matching.append(index)  # once per recognizer: the prefilter reports first matches only


def _collect(index: int, start: int, end: int, _flags: int, spans: dict[tuple[int, int], list[int]]) -> None:
    ends = spans.get((index, start))
    if ends is None:
        spans[(index, start)] = [end]
    else:
        ends.append(end)  # Hyperscan reports matches in order of their end offset


# The handlers as Hyperscan's binding types them (its context is an ``object``); cast once, not per match.
_Handler = Callable[[int, int, int, int, object], None]
_NOTE = cast(_Handler, _note)
_COLLECT = cast(_Handler, _collect)


def _compile(patterns: list[str], flags: list[int], *, first_id: int = 0) -> hyperscan.Database:
    database = hyperscan.Database()
    database.compile(
        expressions=[p.encode() for p in patterns],
        ids=list(range(first_id, first_id + len(patterns))),
        elements=len(patterns),
        flags=flags,
    )
    return database


class PiiEngine:
    def __init__(self, *, ner: NerEngine | bool | None = True) -> None:
        # ``ner=True``: use an installed NER pipeline if there is one (looked for on first use);
        # ``False``/``None``: never.
        self._ner_choice = ner
        self._ner_engine: NerEngine | None = None
        self._ner_detected = False
        self._shared: _Database | None = None

    @property
    def _db(self) -> _Database:
        """The compiled patterns, built on first use: compiling takes a moment most commands never need."""
        if self._shared is None:
            self._shared = _Database.shared()
        return self._shared

    @property
    def _ner(self) -> NerEngine | None:
        if not self._ner_detected:
            choice = self._ner_choice
            self._ner_engine = detect_ner() if choice is True else (choice or None)
            self._ner_detected = True
        return self._ner_engine

    @property
    def ner_status(self) -> str:
        if self._ner is None:
            return "off: no NER pipeline is installed (pip install spacy and an English pipeline with NER)"
        return f"on: {self._ner.name}"

    @property
    def supported_entities(self) -> list[str]:
        entities = {r.entity for r in self._db.recognizers}
        if self._ner is not None:
            entities |= set(self._ner.entities)
        return sorted(entities)

    def analyze(
        self,
        text: str,
        *,
        entities: Iterable[str] | None = None,
        threshold: float = DEFAULT_THRESHOLD,
    ) -> list[RecognizerResult]:
        if len(text) > MAX_TEXT_CHARS:
            raise ValueError(f"texts are analysed up to {MAX_TEXT_CHARS} characters at a time")
        data = text.encode("utf-8", "surrogatepass")
        spans = self._db.scan(data)
        if not spans and self._ner is None:
            return []  # two texts in three: nothing more to do
        wanted = frozenset(entities) if entities is not None else None
        return self._results(text, data, spans, wanted, threshold)

    def analyze_batch(
        self,
        texts: Sequence[str],
        *,
        entities: Iterable[str] | None = None,
        threshold: float = DEFAULT_THRESHOLD,
    ) -> list[list[RecognizerResult]]:
        """``analyze`` for many texts (a column's values, a file's lines) in one scan: the same results, less
        overhead per text. The texts are joined with a separator no pattern can match across."""
        if sum(map(len, texts)) + len(texts) * len(BATCH_SEPARATOR) > MAX_TEXT_CHARS:
            raise ValueError(f"a batch is analysed up to {MAX_TEXT_CHARS} characters at a time")
        wanted = frozenset(entities) if entities is not None else None
        encoded = [text.encode("utf-8", "surrogatepass") for text in texts]
        bases, position = [], 0
        for data in encoded:
            bases.append(position)
            position += len(data) + len(BATCH_SEPARATOR)
        per_text: list[list[tuple[int, int, list[int]]]] = [[] for _ in texts]
        for index, start, ends in self._db.scan(BATCH_SEPARATOR.join(encoded)):
            owner = bisect_right(bases, start) - 1
            base = bases[owner]
            size = len(encoded[owner])  # a match may end on the separator's first byte (a URL's end)
            per_text[owner].append((index, start - base, [min(end - base, size) for end in ends]))
        return [
            self._results(text, data, spans, wanted, threshold)
            for text, data, spans in zip(texts, encoded, per_text, strict=True)
        ]

    def _results(
        self,
        text: str,
        data: bytes,
        spans: list[tuple[int, int, list[int]]],
        wanted: frozenset[str] | None,
        threshold: float,
    ) -> list[RecognizerResult]:
        if not spans and self._ner is None:
            return []
        db = self._db
        to_char: Callable[[int], int] = _identity if len(data) == len(text) else _OffsetMap(data)
        candidates: list[RecognizerResult] = []
        strong: list[tuple[int, int]] = []  # validated results at or above STRONG, for recognizers that yield
        # Recognizers that yield are judged last, after the strong results they yield to are known.
        deferred: list[tuple[int, int, list[int]]] = []
        for spans_now in (spans, deferred):
            for span in spans_now:
                index, start_b, ends = span
                recognizer = db.recognizers[index]
                if wanted is not None and recognizer.entity not in wanted:
                    continue
                if recognizer.yields:
                    if spans_now is spans:
                        deferred.append(span)
                        continue
                    first, last = to_char(start_b), to_char(ends[-1])
                    if any(first < s_end and s_start < last for s_start, s_end in strong):
                        continue
                found = _judge(recognizer, db.context[index], text, to_char(start_b), ends, to_char)
                if found is None:
                    continue
                start, end, score = found
                if score >= threshold:
                    candidates.append(
                        RecognizerResult(recognizer.entity, start, end, round(score, 4), recognizer.name)
                    )
                    if score >= STRONG and recognizer.validate is not None and not recognizer.yields:
                        strong.append((start, end))
        candidates.extend(self._named_entities(text, wanted, threshold))
        return resolve_overlaps(candidates)

    def _named_entities(
        self, text: str, wanted: frozenset[str] | None, threshold: float
    ) -> list[RecognizerResult]:
        if self._ner is None or (wanted is not None and not wanted & set(self._ner.entities)):
            return []
        return [
            r
            for r in self._ner.analyze(text)
            if r.score >= threshold and (wanted is None or r.entity_type in wanted)
        ]


def _judge(
    recognizer: Recognizer,
    context: re.Pattern[str] | None,
    text: str,
    start: int,
    ends: list[int],
    to_char: Callable[[int], int],
) -> tuple[int, int, float] | None:
    """The longest match from ``start`` that validates (a pattern may run on into the next word: an IBAN
    into " on", a phone number into a year), trying at most ``MAX_ENDS`` ends; its score after the
    validator's adjustment and the context words (``context``, matched just before the start)."""
    validate, trim, span = recognizer.validate, recognizer.trim, recognizer.span
    for end_b in reversed(ends[-MAX_ENDS:] if validate else ends[-1:]):
        first, end = start, to_char(end_b)
        if trim:
            while end > first and text[end - 1] in trim:
                end -= 1
        if span is not None:
            first, end = span(text, first, end)
        if end <= first:
            continue
        score = recognizer.score
        if validate is not None:
            adjustment = validate(text[first:end])
            if adjustment is None:
                continue
            score += adjustment
        if context is not None:
            if context.search(text, max(0, first - CONTEXT_WINDOW), first) is not None:
                score = min(1.0, score + CONTEXT_BOOST)
            elif recognizer.needs_context:
                return None
        return first, end, score
    return None


def resolve_overlaps(candidates: list[RecognizerResult]) -> list[RecognizerResult]:
    """Keep the strongest of overlapping results (then the longest): each character is one entity at most."""
    if len(candidates) < 2:
        return candidates
    chosen: list[RecognizerResult] = []
    for result in sorted(candidates, key=lambda r: (-r.score, r.start - r.end, r.start)):
        if all(result.end <= kept.start or result.start >= kept.end for kept in chosen):
            chosen.append(result)
    chosen.sort(key=lambda r: r.start)
    return chosen


def _context_pattern(words: tuple[str, ...]) -> re.Pattern[str]:
    """The context words as one pattern of literals (linear: no quantifiers), matched as whole words in any
    case. Searched in place (``pos``, ``endpos``): a word cut by the window's start is not a word."""
    return re.compile(r"(?<![a-z0-9])(?:" + "|".join(map(re.escape, words)) + r")(?![a-z0-9])", re.IGNORECASE)


def _identity(offset: int) -> int:
    return offset


class _OffsetMap:
    """UTF-8 byte offsets to ``str`` indices for non-ASCII text (ASCII text maps by identity): decoding the
    prefix in C, remembered per offset."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._cache: dict[int, int] = {}

    def __call__(self, offset: int) -> int:
        cached = self._cache.get(offset)
        if cached is None:
            cached = self._cache[offset] = len(self._data[:offset].decode("utf-8", "surrogatepass"))
        return cached
