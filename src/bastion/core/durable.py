"""Waiting for an audit record to become durable: the group-commit writer settles a ``Future`` once the
transaction holding the record has committed (or failed). A writer that does not answer in time counts as
failed — ``AuditUnavailable`` — so a caller never goes on as if unrecorded work were recorded."""

from __future__ import annotations

import asyncio
from concurrent.futures import Future

from bastion.core.errors import AuditUnavailable

ACK_TIMEOUT_SECONDS = 30.0
_LATE = "The audit log did not acknowledge the record in time."


def wait_durable(pending: Future[int], timeout: float = ACK_TIMEOUT_SECONDS) -> int:
    """Block until the record is durable; its sequence number."""
    try:
        return pending.result(timeout)
    except TimeoutError as error:
        raise AuditUnavailable(_LATE) from error


async def until_durable(pending: Future[int], timeout: float = ACK_TIMEOUT_SECONDS) -> int:
    """The same on an event loop, which goes on serving while the writer commits."""
    try:
        return await asyncio.wait_for(asyncio.wrap_future(pending), timeout)
    except TimeoutError as error:
        raise AuditUnavailable(_LATE) from error
