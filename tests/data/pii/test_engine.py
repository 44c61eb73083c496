"""The PII engine: every structured type with exact offsets, validators that refuse look-alikes, context,
credentials, Unicode offsets, hostile input, and batches that equal single calls."""

from __future__ import annotations

import pytest

from bastion.data.pii import PiiEngine

ENGINE = PiiEngine()


def found(text: str, **kwargs: object) -> list[tuple[str, str]]:
    return [(r.entity_type, text[r.start : r.end]) for r in ENGINE.analyze(text, **kwargs)]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to jane.doe+ml@example.co.uk today", ("EMAIL_ADDRESS", "jane.doe+ml@example.co.uk")),
        ("card 4111 1111 1111 1111 on file", ("CREDIT_CARD", "4111 1111 1111 1111")),
        ("amex 378282246310005.", ("CREDIT_CARD", "378282246310005")),
        ("IBAN DE89 3704 0044 0532 0130 00 please", ("IBAN_CODE", "DE89 3704 0044 0532 0130 00")),
        ("my SSN is 536-22-1234", ("US_SSN", "536-22-1234")),
        ("call +1 212 555 0100 now", ("PHONE_NUMBER", "+1 212 555 0100")),
        ("phone: 020 7946 0958", ("PHONE_NUMBER", "020 7946 0958")),
        ("host 192.168.10.4 is down", ("IP_ADDRESS", "192.168.10.4")),
        ("v6 2001:db8:85a3::8a2e:370:7334 up", ("IP_ADDRESS", "2001:db8:85a3::8a2e:370:7334")),
        ("nic 00:1A:2b:3c:4D:5e", ("MAC_ADDRESS", "00:1A:2b:3c:4D:5e")),
        ("see https://example.org/a?b=c.", ("URL", "https://example.org/a?b=c")),
        ("born on 1985-07-14", ("DATE_TIME", "1985-07-14")),
        ("due March 3rd, 2027", ("DATE_TIME", "March 3rd, 2027")),
        (
            "send to bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
            ("CRYPTO", "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"),
        ),
        ("btc 1BoatSLRHtKNngkdXEeobR76b53LETtpyT", ("CRYPTO", "1BoatSLRHtKNngkdXEeobR76b53LETtpyT")),
        ("passport number 912803456", ("US_PASSPORT", "912803456")),
    ],
)
def test_structured_types(text: str, expected: tuple[str, str]) -> None:
    assert expected in found(text)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("card 4111 1111 1111 1112", "CREDIT_CARD"),  # Luhn fails
        ("IBAN DE89 3704 0044 0532 0130 01", "IBAN_CODE"),  # mod-97 fails
        (
            "ssn 000-12-3456 and 666-12-3456 and 912-12-3456 and 123-00-4567",
            "US_SSN",
        ),  # impossible areas/groups
        ("ip 999.12.1.1", "IP_ADDRESS"),
        ("version 1.2.3.4.5", "IP_ADDRESS"),  # a dotted run, not an address
        ("order 912803456 shipped", "US_PASSPORT"),  # nine digits without passport context
        ("on 2023-02-30 nothing happened", "DATE_TIME"),  # no such day
        ("btc 1BoatSLRHtKNngkdXEeobR76b53LETtpyX", "CRYPTO"),  # base58check fails
        ("api_key = 'aaaaaaaaaaaaaaaaaaaaaaaa'", "CREDENTIAL"),  # not random enough to be a secret
    ],
)
def test_look_alikes_are_refused(text: str, kind: str) -> None:
    assert kind not in {entity for entity, _ in found(text)}


def test_digits_inside_a_longer_run_are_not_identifiers_of_their_own() -> None:
    assert found("IBAN DE89 3704 0044 0532 0130 01") == []  # no "card" inside a broken IBAN
    assert found("card 4111 1111 1111 1112") == []  # no "phone" in the first groups of a card number
    assert found("call 905-674-3793 2014") == [("PHONE_NUMBER", "905-674-3793")]


def test_context_raises_scores_and_gates_weak_types() -> None:
    plain = ENGINE.analyze("ref 536221234 ok")
    told = ENGINE.analyze("social security number 536221234")
    assert plain == [] and [(r.entity_type, r.score >= 0.6) for r in told] == [("US_SSN", True)]
    assert found("item D1234567 shipped") == []
    assert ("US_DRIVER_LICENSE", "D1234567") in found("driver's license D1234567 issued")


def test_credentials() -> None:
    key = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
    text = (
        f"aws AKIAIOSFODNN7EXAMPLE gh ghp_0123456789abcdefghijABCDEFGHIJ012345 jwt {jwt} "
        f"password: 'hK8#pQ2!vX9zL4mN7rT1', key {key}"
    )
    secrets = [value for kind, value in found(text) if kind == "CREDENTIAL"]
    assert secrets == [
        "AKIAIOSFODNN7EXAMPLE",
        "ghp_0123456789abcdefghijABCDEFGHIJ012345",
        jwt,
        "hK8#pQ2!vX9zL4mN7rT1",  # only the assigned value
        key,  # the whole PEM block
    ]


def test_bastion_api_keys_are_credentials() -> None:
    token = "bst_abcdefghijklmnop_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0U1v"
    assert found(f"leaked {token} here") == [("CREDENTIAL", token)]


def test_offsets_are_exact_on_unicode_text() -> None:
    text = "Zoë 👩‍💻 naïve — écrivez à zoe@example.com, ☎ +44 20 7946 0958 🇬🇧 ok"
    assert found(text) == [("EMAIL_ADDRESS", "zoe@example.com"), ("PHONE_NUMBER", "+44 20 7946 0958")]


def test_entities_and_threshold_filters() -> None:
    text = "mail a@example.com, ip 10.0.0.1"
    assert found(text, entities=["IP_ADDRESS"]) == [("IP_ADDRESS", "10.0.0.1")]
    assert found(text, threshold=1.01) == []


@pytest.mark.parametrize(
    "hostile",
    [
        "1" * 200_000,
        "1-" * 100_000,
        "a" * 300_000 + "@",
        "a." * 150_000 + "com",
        "http://" + "a" * 300_000,
        "+(" * 100_000,
        "api_key=" * 50_000,
    ],
)
def test_hostile_input_is_handled(hostile: str) -> None:
    """Linear-time matching: these inputs make backtracking engines hang. They must simply complete (a
    benchmark, not this test, measures speed) with sane results."""
    results = ENGINE.analyze(hostile)
    assert all(0 <= r.start < r.end <= len(hostile) for r in results)


@pytest.mark.parametrize(
    "after", ["", " next", "\tx", "\nx", "<b>", '"', "'", "`", "{", "}", "|", "\\", "^", ")."]
)
def test_a_url_ends_where_its_characters_end(after: str) -> None:
    """The URL pattern ends on the character after the URL (so it is reported once, not at every character);
    the finding itself never includes that character, nor sentence punctuation."""
    text = "see https://example.org/a?b=c" + after
    assert found(text) == [("URL", "https://example.org/a?b=c")]


def test_batch_equals_single_calls() -> None:
    texts = [
        "mail a@example.com",
        "",
        "nothing here",
        "card 4111111111111111",
        "é ☎ +1 212 555 0100",
        "x" * 50,
        "ends with a URL: https://example.org/päth",
        "https://example.org",
        "card 4111111111111111 and call +1 212 555 0100 from 10.0.0.1 on 2024-01-05 (https://a.example/x)",
    ]
    assert ENGINE.analyze_batch(texts) == [ENGINE.analyze(t) for t in texts]
    assert [r.entity_type for r in ENGINE.analyze(texts[-1])] == [
        "CREDIT_CARD",
        "PHONE_NUMBER",
        "IP_ADDRESS",
        "DATE_TIME",
        "URL",
    ]


def test_ner_is_off_and_says_so() -> None:
    assert ENGINE.ner_status.startswith("off:")
    assert "PERSON" not in ENGINE.supported_entities
    assert {"EMAIL_ADDRESS", "CREDIT_CARD", "CREDENTIAL", "PHONE_NUMBER"} <= set(ENGINE.supported_entities)
