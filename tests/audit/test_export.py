"""Each SIEM format, delivered to a real listener and checked field by field; at-least-once delivery from a
persisted cursor with backoff."""

from __future__ import annotations

import json
import re
import ssl
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from bastion.app import Bastion
from bastion.audit import AuditFilter
from bastion.audit.export import Exporter, SinkKind, SinkSettings, build_sink
from bastion.core.clock import FrozenClock
from bastion.keys import LocalCA
from bastion.spine import ANONYMOUS, AuditRecord, Context, Outcome, Resource
from tests.audit.conftest import OPERATOR, USER, populate
from tests.audit.receivers import HecReceiver, syslog_receiver

SYSLOG = re.compile(rb"^<(\d+)>1 (\S+) (\S+) (\S+) (\S+) (\S+) \[(\S+) (.*?)(?<!\\)\] (.*)$", re.S)
SD_PARAM = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
TRICKY = 'quote " bracket ] backslash \\ equals = pipe | newline\nend'


def events(system: Bastion) -> list[dict[str, Any]]:
    page = system.audit.search(OPERATOR(), AuditFilter(limit=1000))
    return [event.as_json() for event in page.events]


def seed(system: Bastion, clock: FrozenClock) -> None:
    populate(system, clock, 3)
    clock.advance(timedelta(milliseconds=5))
    system.writer.append(
        AuditRecord(
            occurred_at=clock.now(),
            context=Context(
                USER,
                request_id="req-deny",
                source_address="192.0.2.7",
                user_agent="curl/8",
                purpose="fraud-check",
            ),
            action="dataset.read",
            resource=Resource("dataset", "claims"),
            outcome=Outcome.DENIED,
            reason=TRICKY,
            policy_ids=("p9", "p10"),
        )
    )
    system.uow.refuse(
        Context(ANONYMOUS, source_address="198.51.100.4"),
        "auth.authenticate",
        Resource("endpoint", "/v1/audit/events"),
        "credentials did not verify",
    )


def export(system: Bastion, clock: FrozenClock, settings: SinkSettings) -> None:
    exporter = Exporter(system.database, system.uow, [build_sink(settings)], clock)
    try:
        [status] = exporter.run_once(OPERATOR())
    finally:
        exporter.close()
    assert status.error is None


def pairs(received: list[Any], expected: list[dict[str, Any]]) -> list[tuple[Any, dict[str, Any]]]:
    """Everything expected arrived, in order. (One more may follow: the search that built ``expected``
    was itself audited before the export ran.)"""
    assert len(received) in (len(expected), len(expected) + 1)
    return list(zip(received, expected, strict=False))


def unescape_sd(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


def check_syslog(message: bytes, event: dict[str, Any], hostname: str) -> str:
    match = SYSLOG.match(message)
    assert match, message
    pri, timestamp, host, app, procid, msgid, sd_id, params, body = match.groups()
    assert int(pri) == 13 * 8 + (6 if event["outcome"] == "allowed" else 4)
    assert timestamp.decode() == event["occurred_at"]
    assert (host.decode(), app, procid, msgid.decode()) == (hostname, b"bastion", b"-", event["action"])
    assert sd_id == b"bastion@32473"
    fields = {key: unescape_sd(value) for key, value in SD_PARAM.findall(params.decode())}
    for key in (
        "event_id",
        "actor_id",
        "actor_type",
        "action",
        "resource_type",
        "resource_id",
        "outcome",
        "reason",
        "request_id",
    ):
        assert fields[key] == str(event[key]), key
    assert fields["seq"] == str(event["seq"])
    return body.decode()


def test_syslog_rfc5424_over_tcp(system: Bastion, clock: FrozenClock) -> None:
    seed(system, clock)
    expected = events(system)
    with syslog_receiver() as receiver:
        export(
            system,
            clock,
            SinkSettings(
                name="syslog", kind=SinkKind.SYSLOG, address=receiver.address, hostname="bastion-test"
            ),
        )
        received = receiver.wait_for(len(expected))
    for message, event in pairs(received, expected):
        body = check_syslog(message, event, "bastion-test")
        assert body.startswith("\ufeff")
        assert json.loads(body[1:]) == event
    assert any(
        TRICKY in json.loads(check_syslog(m, e, "bastion-test")[1:])["reason"]
        for m, e in zip(received, expected, strict=False)
    )


def _tls_pair(tmp_path: Path, clock: FrozenClock) -> tuple[ssl.SSLContext, Path]:
    files = LocalCA(tmp_path / "siem-ca", clock).ensure_server_files("127.0.0.1")
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(files.server_cert, files.server_key)
    return server, files.ca_cert


def test_syslog_over_tls_rfc5425(system: Bastion, clock: FrozenClock, tmp_path: Path) -> None:
    seed(system, clock)
    expected = events(system)
    server_tls, ca = _tls_pair(tmp_path, clock)
    with syslog_receiver(server_tls) as receiver:
        export(
            system,
            clock,
            SinkSettings(name="tls", kind=SinkKind.SYSLOG, address=receiver.address, tls=True, ca_file=ca),
        )
        received = receiver.wait_for(len(expected))
    for message, event in pairs(received, expected):
        assert json.loads(check_syslog(message, event, "bastion")[1:]) == event


def test_tls_sink_refuses_an_untrusted_receiver(system: Bastion, clock: FrozenClock, tmp_path: Path) -> None:
    seed(system, clock)
    server_tls, _ = _tls_pair(tmp_path, clock)
    with syslog_receiver(server_tls) as receiver:
        exporter = Exporter(
            system.database,
            system.uow,
            [build_sink(SinkSettings(name="tls", kind=SinkKind.SYSLOG, address=receiver.address, tls=True))],
            clock,
        )  # system CAs only
        [status] = exporter.run_once(OPERATOR())
        assert status.error is not None
        assert status.delivered == 0
        assert receiver.messages == []


def parse_cef(text: str) -> tuple[list[str], dict[str, str]]:
    parts, current, i = [], "", 0
    while len(parts) < 7:
        ch = text[i]
        if ch == "\\":
            current += text[i + 1]
            i += 2
            continue
        if ch == "|":
            parts.append(current)
            current = ""
        else:
            current += ch
        i += 1
    extension = text[i:]
    fields: dict[str, str] = {}
    for match in re.finditer(r"(\w+)=((?:[^\\=]|\\.)*?)(?=\s\w+=|$)", extension):
        value = match.group(2).replace("\\n", "\n").replace("\\r", "\r")
        fields[match.group(1)] = re.sub(r"\\([\\=])", r"\1", value)
    return parts, fields


def test_cef_over_syslog(system: Bastion, clock: FrozenClock) -> None:
    seed(system, clock)
    expected = events(system)
    with syslog_receiver() as receiver:
        export(system, clock, SinkSettings(name="cef", kind=SinkKind.CEF, address=receiver.address))
        received = receiver.wait_for(len(expected))
    for message, event in pairs(received, expected):
        header, fields = parse_cef(check_syslog(message, event, "bastion"))
        assert header[:4] == ["CEF:0", "Bastion", "Bastion", "0.1.0"]
        assert header[4] == event["action"]
        assert header[5] == f"{event['action']} {event['outcome']}"
        assert header[6] == ("3" if event["outcome"] == "allowed" else "7")
        assert fields["externalId"] == event["event_id"]
        assert fields["suser"] == event["actor_id"]
        assert fields["act"] == event["action"]
        assert fields["outcome"] == event["outcome"]
        assert fields["reason"] == event["reason"]
        assert (fields["cs1Label"], fields["cs1"]) == ("resourceType", event["resource_type"])
        assert (fields["cs2Label"], fields["cs2"]) == ("resourceId", event["resource_id"])
        assert (fields["cs3Label"], fields["cs3"]) == ("requestId", event["request_id"])
        assert fields["cn1"] == str(event["seq"])
        if event["source_address"]:
            assert fields["src"] == event["source_address"]
        if event["policy_ids"]:
            assert fields["cs4"] == ",".join(event["policy_ids"])
        assert int(fields["rt"]) > 1_700_000_000_000


def test_ocsf_json_lines(system: Bastion, clock: FrozenClock, tmp_path: Path) -> None:
    seed(system, clock)
    expected = events(system)
    path = tmp_path / "ocsf" / "audit.jsonl"
    export(system, clock, SinkSettings(name="ocsf", kind=SinkKind.OCSF, path=path))
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    for line, event in pairs(lines, expected):
        assert line["metadata"]["uid"] == event["event_id"]
        assert line["metadata"]["sequence"] == event["seq"]
        assert line["metadata"]["version"] == "1.3.0"
        assert line["metadata"]["product"]["name"] == "Bastion"
        assert line["status_id"] == (1 if event["outcome"] == "allowed" else 2)
        assert line["status_detail"] == event["reason"]
        assert line["src_endpoint"]["ip"] == event["source_address"]
        if event["action"].startswith("auth."):
            assert (line["class_uid"], line["category_uid"], line["type_uid"]) == (3002, 3, 300201)
            assert line["user"]["uid"] == event["actor_id"]
        else:
            assert (line["class_uid"], line["category_uid"]) == (6003, 6)
            assert line["type_uid"] == 600300 + line["activity_id"]
            assert line["actor"]["user"]["uid"] == event["actor_id"]
            assert line["api"]["operation"] == event["action"]
            assert line["api"]["request"]["uid"] == event["request_id"]
            assert line["resources"] == [{"type": event["resource_type"], "uid": event["resource_id"]}]
    classes = {line["class_uid"] for line in lines}
    assert classes == {3002, 6003}
    read = next(line for line, event in pairs(lines, expected) if event["action"] == "dataset.read")
    assert read["activity_id"] == 2  # Read


def test_splunk_hec(system: Bastion, clock: FrozenClock) -> None:
    seed(system, clock)
    expected = events(system)
    receiver = HecReceiver(token="hec-token-123")
    try:
        export(
            system,
            clock,
            SinkSettings(
                name="hec",
                kind=SinkKind.HEC,
                url=receiver.url,
                token=SecretStr("hec-token-123"),
                hostname="bastion-a",
            ),
        )
    finally:
        receiver.close()
    assert set(receiver.authorizations) == {"Splunk hec-token-123"}
    for envelope, event in pairs(receiver.events, expected):
        assert envelope["host"] == "bastion-a"
        assert envelope["source"] == "bastion"
        assert envelope["sourcetype"] == "bastion:audit"
        assert envelope["event"] == event
        assert abs(envelope["time"] - clock.now().timestamp()) < 3600


def test_at_least_once_with_backoff_and_restart(system: Bastion, clock: FrozenClock) -> None:
    populate(system, clock, 12)
    receiver = HecReceiver(token="t", fail_first=2)
    settings = SinkSettings(
        name="hec", kind=SinkKind.HEC, url=receiver.url, token=SecretStr("t"), batch_size=5
    )
    try:
        exporter = Exporter(system.database, system.uow, [build_sink(settings)], clock, batch_size=5)
        [status] = exporter.run_once(OPERATOR())
        assert (status.failures, status.delivered) == (1, 0)
        assert status.retry_at == clock.now() + timedelta(seconds=1)
        [status] = exporter.run_once(OPERATOR())  # still backing off: nothing attempted
        assert status.failures == 1
        clock.advance(timedelta(seconds=1))
        [status] = exporter.run_once(OPERATOR())
        assert status.failures == 2
        assert status.retry_at == clock.now() + timedelta(seconds=2)  # doubled
        clock.advance(timedelta(seconds=2))
        [status] = exporter.run_once(OPERATOR())
        assert status.error is None
        delivered = [envelope["event"]["seq"] for envelope in receiver.events]
        assert delivered == list(range(len(delivered)))  # in order, none skipped
        exporter.close()

        populate(system, clock, 4)
        restarted = Exporter(system.database, system.uow, [build_sink(settings)], clock, batch_size=5)
        restarted.run_once(OPERATOR())
        restarted.close()
    finally:
        receiver.close()
    seqs = [envelope["event"]["seq"] for envelope in receiver.events]
    assert seqs == list(
        range(len(seqs))
    )  # the restart resumed from the cursor: nothing skipped, nothing twice
    states = [
        event.details.get("state")
        for event in system.audit.search(OPERATOR(), AuditFilter(action="audit.export")).events
    ]
    assert states == ["failing", "recovered"]


def test_sink_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="address"):
        SinkSettings(name="s", kind=SinkKind.SYSLOG)
    with pytest.raises(ValueError, match="token"):
        SinkSettings(name="h", kind=SinkKind.HEC, url="https://x")
    with pytest.raises(ValueError, match="name"):
        SinkSettings(name="Bad Name", kind=SinkKind.OCSF, path=Path("x"))
