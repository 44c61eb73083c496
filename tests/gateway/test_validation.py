"""The nesting-depth count that runs before any JSON is parsed: exact on every input (strings and their
escapes skipped, unterminated strings included), compared with a byte-by-byte reading of JSON's rules."""

from __future__ import annotations

import json
import random

from bastion.gateway.validation import _depth


def reference_depth(body: bytes) -> int:
    """JSON's rules read one byte at a time: brackets count outside strings; a backslash escapes one byte."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == ord("\\"):
                escaped = True
            elif byte == ord('"'):
                in_string = False
        elif byte == ord('"'):
            in_string = True
        elif byte in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        elif byte in b"]}":
            depth -= 1
    return deepest


def test_depth_matches_the_byte_by_byte_reading_on_any_input() -> None:
    generator = random.Random(7)
    alphabet = b'[]{}"\\\\a,:\n'
    for _ in range(20_000):
        body = bytes(generator.choice(alphabet) for _ in range(generator.randint(0, 40)))
        assert _depth(body) == reference_depth(body), body


def test_depth_of_real_documents() -> None:
    assert _depth(json.dumps({"inputs": [[1.0, 2.0]]}).encode()) == 3
    assert _depth(json.dumps({"inputs": [["[[[{{{", ']\\"[[']]}).encode()) == 3  # brackets in strings
    assert _depth(b"[" * 40 + b"]" * 40) == 40
    assert _depth(b'{"a": "unterminated [[[[') == 1
    assert _depth(b'"\\"' * 10_000 + b"[[") == 0  # many quotes and escapes: still linear
