"""Managing the custom policy set: versions are validated before they are stored, kept for ever, and made
active by a separate audited step (so rolling back is activating an older version)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from bastion.core.clock import Clock
from bastion.core.errors import NotFound
from bastion.policy.compiler import CompiledPolicies, compile_policies
from bastion.policy.defaults import default_policies
from bastion.policy.schema import schema_text
from bastion.policy.source import PolicySource
from bastion.spine.context import Context, Resource
from bastion.spine.uow import UnitOfWork
from bastion.store.tables import PolicyHead, PolicyVersion

CUSTOM = Resource("policy", "custom")


@dataclass(frozen=True, slots=True)
class PolicyVersionInfo:
    version: int
    sha256: str
    comment: str
    created_at: datetime
    created_by: str
    active: bool
    policy_ids: tuple[str, ...] = ()


class PolicyAdmin:
    def __init__(self, uow: UnitOfWork, source: PolicySource, clock: Clock) -> None:
        self._uow, self._source, self._clock = uow, source, clock

    @staticmethod
    def schema() -> str:
        return schema_text()

    @staticmethod
    def defaults() -> str:
        return default_policies()

    def validate(self, context: Context, text: str) -> CompiledPolicies:
        """Check ``text`` as ``write`` would, storing nothing."""
        with self._uow.read(context, "policies.read", CUSTOM, details={"validate": True}):
            return compile_policies(text, 0)

    def write(self, context: Context, text: str, comment: str = "") -> PolicyVersionInfo:
        """Store ``text`` as the next version (not yet active). Refused with every validation error if it does
        not parse or does not validate against the schema; nothing is stored then."""
        compiled = compile_policies(text, 0)  # raises InvalidInput before anything is written
        digest = hashlib.sha256(text.encode()).hexdigest()
        details = {"sha256": digest, "policy_ids": list(compiled.custom_ids), "comment": comment[:500]}
        with self._uow.act(context, "policies.write", CUSTOM, details=details) as work:
            version = (work.session.scalar(select(func.max(PolicyVersion.version))) or 0) + 1
            row = PolicyVersion(
                version=version,
                text=text,
                sha256=digest,
                comment=comment[:500],
                created_at=self._clock.now(),
                created_by=context.principal.id,
            )
            work.session.add(row)
            work.details["version"] = version
            return _info(row, active=False, policy_ids=compiled.custom_ids)

    def activate(self, context: Context, version: int) -> None:
        """Make ``version`` the active one (0 = the shipped defaults only) on every replica within seconds."""
        with self._uow.act(context, "policies.activate", CUSTOM, details={"version": version}) as work:
            if version != 0:
                row = work.session.get(PolicyVersion, version)
                if row is None:
                    raise NotFound(f"There is no policy version {version}.")
                compile_policies(row.text, version)  # still valid against today's schema
            head = work.session.get(PolicyHead, 1)
            if head is None:
                work.session.add(PolicyHead(id=1, version=version, changed_at=self._clock.now()))
            else:
                work.details["previous_version"] = head.version
                head.version, head.changed_at = version, self._clock.now()
        self._source.invalidate()

    def versions(self, context: Context) -> list[PolicyVersionInfo]:
        with self._uow.read(context, "policies.read", CUSTOM) as work:
            head = work.session.get(PolicyHead, 1)
            active = head.version if head is not None else 0
            rows = work.session.scalars(select(PolicyVersion).order_by(PolicyVersion.version)).all()
            return [_info(row, active=row.version == active) for row in rows]

    def text(self, context: Context, version: int | None = None) -> tuple[int, str]:
        """The text of ``version``, or of the active version (``(0, '')`` when only the defaults apply)."""
        with self._uow.read(context, "policies.read", CUSTOM, details={"version": version}) as work:
            if version is None:
                head = work.session.get(PolicyHead, 1)
                version = head.version if head is not None else 0
            if version == 0:
                return 0, ""
            row = work.session.get(PolicyVersion, version)
            if row is None:
                raise NotFound(f"There is no policy version {version}.")
            return version, row.text


def _info(row: PolicyVersion, active: bool, policy_ids: tuple[str, ...] = ()) -> PolicyVersionInfo:
    return PolicyVersionInfo(
        row.version, row.sha256, row.comment, row.created_at, row.created_by, active, policy_ids
    )
