"""Errors of the data services, each with a stable code."""

from __future__ import annotations

from bastion.core.errors import BastionError, ExitCode, PayloadTooLarge


class DataRejected(BastionError):
    """An upload failed a check: nothing was stored but a quarantine record with the report."""

    code = "data.rejected"
    status = 422
    exit_code = ExitCode.FINDING
    title = "Data rejected"


class DataTooLarge(PayloadTooLarge):
    code = "data.too_large"
    title = "Data upload too large"
