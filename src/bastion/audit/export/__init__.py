"""SIEM export: each configured sink receives every audit event at least once, in order, from a cursor
persisted in the database. Stable API: ``Exporter``, ``build_sink``, ``SinkSettings``, ``SinkKind``."""

from bastion.audit.export.exporter import Exporter, SinkStatus
from bastion.audit.export.sinks import ExportError, Sink, build_sink
from bastion.core.sink_settings import SinkKind, SinkSettings

__all__ = ["ExportError", "Exporter", "Sink", "SinkKind", "SinkSettings", "SinkStatus", "build_sink"]
