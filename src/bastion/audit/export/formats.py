"""Event encodings for SIEMs. Each takes the event's JSON form (``EventView.as_json``) and is pure.

Critical events (``details.severity == "critical"``, e.g. break-glass use) get each format's highest level:
syslog 2, CEF 10, OCSF severity_id 5.

- RFC 5424 syslog: facility 13 (log audit); severity 6 for allowed, 4 for denied and error; MSGID is the
  action; structured data ``[bastion@32473 ...]`` carries the key fields; MSG is the event as JSON (UTF-8 with
  BOM, as the RFC asks).
- CEF: ArcSight Common Event Format 0, header and extension escaped per the CEF spec.
- OCSF 1.3: ``auth.*`` actions as Authentication (class 3002), everything else as API Activity (6003).
- HEC: Splunk HTTP Event Collector event envelope.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

PRODUCT = "Bastion"
VERSION = "0.1.0"
SD_ID = "bastion@32473"  # 32473: the private enterprise number IANA reserves for documentation
FACILITY_LOG_AUDIT = 13
OCSF_VERSION = "1.3.0"
_BOM = "\ufeff"


def _time(event: dict[str, Any]) -> datetime:
    return datetime.strptime(event["occurred_at"], "%Y-%m-%dT%H:%M:%S.%f%z")


def _epoch_ms(event: dict[str, Any]) -> int:
    return int(_time(event).timestamp() * 1000)


def is_critical(event: dict[str, Any]) -> bool:
    """Events a SIEM must page on (e.g. a break-glass credential used) carry ``details.severity``."""
    return (event.get("details") or {}).get("severity") == "critical"


def severity(event: dict[str, Any]) -> int:
    if is_critical(event):
        return 2  # crit
    return 6 if event["outcome"] == "allowed" else 4


def _sd_escape(value: object) -> str:
    return re.sub(r'(["\\\]])', r"\\\1", str(value))


def _printable(value: str, limit: int) -> str:
    """RFC 5424 header fields: printable US-ASCII without spaces, or '-' when empty."""
    cleaned = "".join(ch for ch in value if 33 <= ord(ch) <= 126)[:limit]
    return cleaned or "-"


SD_FIELDS = (
    "seq",
    "event_id",
    "actor_id",
    "actor_type",
    "action",
    "resource_type",
    "resource_id",
    "outcome",
    "reason",
    "request_id",
    "source_address",
)


def rfc5424(event: dict[str, Any], hostname: str, message: str | None = None) -> bytes:
    pri = FACILITY_LOG_AUDIT * 8 + severity(event)
    params = " ".join(
        f'{name}="{_sd_escape(event[name])}"' for name in SD_FIELDS if event.get(name) is not None
    )
    body = message if message is not None else _BOM + json.dumps(event, sort_keys=True, separators=(",", ":"))
    header = (
        f"<{pri}>1 {event['occurred_at']} {_printable(hostname, 255)} bastion - "
        f"{_printable(event['action'], 32)} [{SD_ID} {params}]"
    )
    return f"{header} {body}".encode()


def octet_frame(message: bytes) -> bytes:
    """RFC 6587 octet counting, the framing RFC 5425 mandates for TLS."""
    return f"{len(message)} ".encode() + message


def _cef_header(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("\r", " ")


def _cef_value(value: object) -> str:
    text = str(value).replace("\\", "\\\\").replace("=", "\\=")
    return text.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\r")


def cef(event: dict[str, Any]) -> str:
    cef_severity = 10 if is_critical(event) else 3 if event["outcome"] == "allowed" else 7
    extension = {
        "rt": _epoch_ms(event),
        "externalId": event["event_id"],
        "suser": event["actor_id"],
        "act": event["action"],
        "outcome": event["outcome"],
        "reason": event["reason"],
        "src": event.get("source_address"),
        "requestClientApplication": event.get("user_agent"),
        "cs1Label": "resourceType", "cs1": event["resource_type"],
        "cs2Label": "resourceId", "cs2": event["resource_id"],
        "cs3Label": "requestId", "cs3": event["request_id"],
        "cs4Label": "policyIds", "cs4": ",".join(event["policy_ids"]),
        "cs5Label": "purpose", "cs5": event.get("purpose"),
        "cn1Label": "seq", "cn1": event["seq"],
    }  # fmt: skip
    ext = " ".join(
        f"{key}={_cef_value(value)}" for key, value in extension.items() if value not in (None, "")
    )
    header = "|".join(
        _cef_header(part)
        for part in (
            "CEF:0",
            PRODUCT,
            PRODUCT,
            VERSION,
            event["action"],
            f"{event['action']} {event['outcome']}",
            cef_severity,
        )
    )
    return f"{header}|{ext}"


_API_ACTIVITY = {"create": 1, "read": 2, "update": 3, "delete": 4}


def _api_activity_id(action: str) -> int:
    verb = action.rsplit(".", 1)[-1]
    for word, activity in _API_ACTIVITY.items():
        if verb.startswith(word) or (word == "read" and verb in ("search", "list", "get", "prove", "verify")):
            return activity
    return 99  # Other


def ocsf(event: dict[str, Any]) -> dict[str, Any]:
    success = event["outcome"] == "allowed"
    common: dict[str, Any] = {
        "time": _epoch_ms(event),
        "severity_id": 5 if is_critical(event) else 1 if success else 3,
        "status_id": 1 if success else 2,
        "status": "Success" if success else "Failure",
        "status_detail": event["reason"],
        "message": f"{event['action']} {event['outcome']}",
        "metadata": {
            "version": OCSF_VERSION,
            "uid": event["event_id"],
            "sequence": event["seq"],
            "correlation_uid": event["request_id"],
            "product": {"name": PRODUCT, "vendor_name": PRODUCT, "version": VERSION},
        },
        "src_endpoint": {"ip": event.get("source_address")},
        "unmapped": {
            "policy_ids": event["policy_ids"],
            "purpose": event.get("purpose"),
            "data_categories": event["data_categories"],
            "details": event["details"],
        },
    }
    user = {"uid": event["actor_id"], "type": event["actor_type"]}
    if event["action"].startswith("auth."):
        return {
            **common,
            "category_uid": 3,
            "class_uid": 3002,
            "activity_id": 1,
            "type_uid": 300201,
            "user": user,
            "auth_protocol": event["auth_method"],
            "service": {"name": event["resource_id"]},
        }
    activity = _api_activity_id(event["action"])
    return {
        **common,
        "category_uid": 6,
        "class_uid": 6003,
        "activity_id": activity,
        "type_uid": 600300 + activity,
        "actor": {"user": user, "authorizations": [{"policy": {"uid": uid}} for uid in event["policy_ids"]]},
        "api": {"operation": event["action"], "request": {"uid": event["request_id"]}},
        "http_request": {"user_agent": event.get("user_agent")},
        "resources": [{"type": event["resource_type"], "uid": event["resource_id"]}],
    }


def hec(event: dict[str, Any], hostname: str) -> dict[str, Any]:
    return {
        "time": _time(event).timestamp(),
        "host": hostname,
        "source": "bastion",
        "sourcetype": "bastion:audit",
        "event": event,
    }
