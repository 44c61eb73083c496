"""The active policy version, as the decisions see it: re-read from the database at most every
``cache_seconds``, compiled once per version.

A stored version always compiled when it was activated. If one stops compiling (an upgrade removed an action
it names), Bastion fails closed: only the shipped policies apply, and only to the local operator, who can
then activate a version that works.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select

from bastion.core.cache import Background, TtlCache
from bastion.core.clock import Clock
from bastion.core.errors import BastionError
from bastion.policy.compiler import CompiledPolicies, compile_policies
from bastion.store.database import Database
from bastion.store.tables import PolicyHead, PolicyVersion

log = logging.getLogger(__name__)

# Read every second or so while decisions are taken (a Core statement built once: see ``Database.snapshot``).
_HEAD = select(PolicyHead.version).where(PolicyHead.id == 1)


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
        self._database, self._clock = database, clock
        # One entry, reloaded behind the decisions while in use (see ``TtlCache``).
        self._cache: TtlCache[None, ActivePolicies] = TtlCache(
            timedelta(seconds=cache_seconds), background=background
        )
        # The last version read: when the head has not moved, it is not compiled again (and the authorizer
        # keeps its memoised decisions, which are per policy set).
        self._last = ActivePolicies(compile_policies("", 0), operator_only=False)

    def current(self) -> ActivePolicies:
        return self._cache.get_or_load(None, self._clock.now(), self._read)

    def ready(self) -> bool:
        """Whether ``current`` answers from the cache (nothing to read)."""
        return self._cache.fresh(None, self._clock.now()) is not None

    def invalidate(self) -> None:
        """Look again on the next decision (this replica just changed the active version)."""
        self._cache.forget(None)

    def _read(self) -> ActivePolicies:
        self._last = self._load(self._last)
        return self._last

    def _load(self, previous: ActivePolicies) -> ActivePolicies:
        head = self._database.first_row(_HEAD)
        version = head.version if head is not None else 0
        if version == previous.compiled.version and not previous.operator_only:
            return previous
        with self._database.read() as session:  # a version's text never changes once stored
            row = session.get(PolicyVersion, version) if version else None
            text = row.text if row is not None else ""
        try:
            return ActivePolicies(compile_policies(text, version), operator_only=False)
        except BastionError as error:
            log.error(
                "policy version %s does not compile; only the local operator may act: %s", version, error
            )
            return ActivePolicies(compile_policies("", version), operator_only=True)
