"""The active policy version, as the decisions see it: re-read from the database at most every
``cache_seconds``, compiled once per version.

A stored version always compiled when it was activated. If one stops compiling (an upgrade removed an action
it names), Bastion fails closed: only the shipped policies apply, and only to the local operator, who can
then activate a version that works.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from bastion.core.cache import RELOAD_AFTER, Background
from bastion.core.clock import Clock
from bastion.core.errors import BastionError
from bastion.policy.compiler import CompiledPolicies, compile_policies
from bastion.store.database import Database
from bastion.store.tables import PolicyHead, PolicyVersion

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ActivePolicies:
    compiled: CompiledPolicies
    operator_only: bool  # the active custom version failed to compile: fail closed


class PolicySource:
    def __init__(
        self,
        database: Database,
        clock: Clock,
        cache_seconds: float = 2.0,
        background: Background | None = None,
    ) -> None:
        self._database, self._clock, self._background = database, clock, background
        self._ttl = timedelta(seconds=cache_seconds)
        self._lock = threading.Lock()
        self._checked_at: datetime | None = None
        self._active = ActivePolicies(compile_policies("", 0), operator_only=False)
        self._reloading = False

    def current(self) -> ActivePolicies:
        now = self._clock.now()
        checked = self._checked_at
        if checked is not None and now - checked < self._ttl:
            if now - checked >= self._ttl * RELOAD_AFTER[0]:
                self._reload_behind(checked, now)  # as ``TtlCache`` does: decisions never wait for a read
            return self._active
        with self._lock:
            if self._checked_at is None or now - self._checked_at >= self._ttl:
                self._active = self._load(self._active)
                self._checked_at = now
        return self._active

    def _reload_behind(self, checked: datetime, now: datetime) -> None:
        if self._background is None or self._reloading:
            return
        self._reloading = True

        def job() -> None:
            try:
                with self._lock:
                    if self._checked_at is checked:  # not invalidated, nor read again, meanwhile
                        self._active = self._load(self._active)
                        self._checked_at = now
            finally:
                self._reloading = False

        self._background(job)

    def invalidate(self) -> None:
        """Look again on the next decision (this replica just changed the active version)."""
        self._checked_at = None

    def _load(self, previous: ActivePolicies) -> ActivePolicies:
        with self._database.read() as session:
            head = session.get(PolicyHead, 1)
            version = head.version if head is not None else 0
            if version == previous.compiled.version and not previous.operator_only:
                return previous
            row = session.get(PolicyVersion, version) if version else None
            text = row.text if row is not None else ""
        try:
            return ActivePolicies(compile_policies(text, version), operator_only=False)
        except BastionError as error:
            log.error(
                "policy version %s does not compile; only the local operator may act: %s", version, error
            )
            return ActivePolicies(compile_policies("", version), operator_only=True)
