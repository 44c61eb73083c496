"""Structured JSON logging with request ids and secret redaction.

``configure_logging`` installs one handler on the root logger; every record passes a ``RedactingFilter``
before it is formatted, so a secret that reaches a log call by mistake is masked rather than written out.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TextIO

from bastion.core.redaction import redact

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "bastion_request_id", default=None
)

# Attributes every LogRecord has; anything else was passed through ``extra=`` and is emitted as a field.
# uvicorn's "color_message" is the same text with terminal colour codes: noise in a JSON line.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "color_message",
}


class LogFormat(StrEnum):
    JSON = "json"
    TEXT = "text"


class RedactingFilter(logging.Filter):
    """Masks secret shapes in the message, its arguments, extra fields and exception text."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        for key, value in list(vars(record).items()):
            if key not in _STANDARD_ATTRS and isinstance(value, str):
                setattr(record, key, redact(value))
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = request_id_var.get()
        return f"{line} [request_id={request_id}]" if request_id else line


def configure_logging(
    level: str = "INFO", fmt: LogFormat = LogFormat.JSON, stream: TextIO | None = None
) -> None:
    """Route every logger (uvicorn's included) through one redacting handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter() if fmt is LogFormat.JSON else TextFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    # Migration chatter is not news to an operator; warnings and errors still come through.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # The API logs each request itself, with its request id; uvicorn's access log would duplicate it.
    logging.getLogger("uvicorn.access").disabled = True
