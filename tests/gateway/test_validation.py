"""The nesting-depth count that runs before any JSON is parsed: exact on every input (strings and their
escapes skipped, unterminated strings included), compared with a byte-by-byte reading of JSON's rules. And
the duplicate-key check that runs after: exact on every valid document, compared with a parser that sees
every key."""

from __future__ import annotations

import json
import random
from typing import Any

import orjson
import pytest

from bastion.gateway.validation import InvalidPrediction, _depth, _skeleton, names_a_key_twice, parse_body


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
        assert _depth(_skeleton(body)) == reference_depth(body), body


def test_depth_of_real_documents() -> None:
    assert _depth(_skeleton(json.dumps({"inputs": [[1.0, 2.0]]}).encode())) == 3
    in_strings = json.dumps({"inputs": [["[[[{{{", ']\\"[[']]}).encode()  # brackets in strings
    assert _depth(_skeleton(in_strings)) == 3
    assert _depth(_skeleton(b"[" * 40 + b"]" * 40)) == 40
    assert _depth(_skeleton(b'{"a": "unterminated [[[[')) == 1
    assert _depth(_skeleton(b'"\\"' * 10_000 + b"[[")) == 0  # many quotes and escapes: still linear


def reference_duplicates(body: bytes) -> bool:
    """A parser that is shown every key of every object, in order."""
    found = False

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal found
        found = found or len({key for key, _ in items}) != len(items)
        return dict(items)

    json.loads(body, object_pairs_hook=pairs)
    return found


# Keys that collide once unescaped, strings that look like keys, and whitespace where JSON allows it.
KEYS = ['"a"', '"\\u0061"', '"b"', '"a\\""', '"a\\\\"', '"\\"a"', '"x\\":"']
STRINGS = ['"a"', '"\\"a\\": 1"', '"{\\"a\\":1,\\"a\\":2}"', '":"', '""']


def random_json(generator: random.Random, depth: int = 0) -> str:
    choice = generator.random()
    if depth > 3 or choice < 0.3:
        return generator.choice([*STRINGS, "1", "2.5e3", "true", "null"])
    if choice < 0.5:
        return "[" + ",".join(random_json(generator, depth + 1) for _ in range(generator.randint(0, 3))) + "]"
    members = (
        generator.choice(KEYS) + generator.choice(["", " ", "\n\t"]) + ":" + random_json(generator, depth + 1)
        for _ in range(generator.randint(0, 3))
    )
    return "{" + ",".join(members) + "}"


def test_duplicate_keys_are_found_as_a_parser_that_sees_every_key_finds_them() -> None:
    generator = random.Random(11)
    seen = {True: 0, False: 0}
    for _ in range(20_000):
        body = random_json(generator).encode()
        expected = reference_duplicates(body)
        assert names_a_key_twice(body, orjson.loads(body)) == expected, body
        seen[expected] += 1
    assert min(seen.values()) > 1000  # both kinds of document were tried, many times


@pytest.mark.parametrize(
    "body",
    [
        b'{"inputs": [[1, 2]], "inputs": [[3, 4]]}',
        b'{"inputs": [[1, 2]], "\\u0069nputs": [[3, 4]]}',  # the same key, escaped
        b'{"inputs": [{"age": 1, "age": 2}]}',  # inside a row
    ],
)
def test_a_body_naming_a_key_twice_is_refused(body: bytes) -> None:
    with pytest.raises(InvalidPrediction, match="same key twice"):
        parse_body(body, "application/json", 1 << 20, 32)


def test_strings_that_read_like_keys_are_not_keys() -> None:
    body = b'{"inputs": [["\\"inputs\\": 1", "inputs:"]], "return_probabilities": true}'
    assert parse_body(body, "application/json", 1 << 20, 32)["inputs"] == [['"inputs": 1', "inputs:"]]
