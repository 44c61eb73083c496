"""Table definitions. Every schema change comes with an Alembic migration in ``migrations/versions``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# 64-bit on PostgreSQL; SQLite's INTEGER is already 64-bit.
SequenceNumber = BigInteger().with_variant(Integer(), "sqlite")
Hash = LargeBinary(32)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores no offset, so we normalise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; pass a timezone-aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class AuditEvent(Base):
    """One audit record, leaf ``seq`` of the Merkle log (0-based, contiguous).

    Append-only: database triggers refuse UPDATE and TRUNCATE, and DELETE except below the prune point.
    """

    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(SequenceNumber, primary_key=True, autoincrement=False)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    schema_version: Mapped[int] = mapped_column(Integer)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime())
    actor_id: Mapped[str] = mapped_column(String(255))
    actor_type: Mapped[str] = mapped_column(String(32))
    auth_method: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(128))
    resource_type: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str] = mapped_column(String(255))
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    policy_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    request_id: Mapped[str] = mapped_column(String(128))
    source_address: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(512), nullable=True)
    purpose: Mapped[str | None] = mapped_column(String(64), nullable=True)
    data_categories: Mapped[list[str]] = mapped_column(JSON, default=list)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    leaf_hash: Mapped[bytes] = mapped_column(Hash)

    __table_args__ = (
        CheckConstraint("outcome IN ('allowed', 'denied', 'error')", name="outcome"),
        Index("ix_audit_events_occurred_at", "occurred_at"),
        Index("ix_audit_events_actor_id", "actor_id"),
        Index("ix_audit_events_action", "action"),
        Index("ix_audit_events_resource", "resource_type", "resource_id"),
    )


class AuditTreeNode(Base):
    """A complete subtree hash: level L, index i covers leaves [i * 2**L, (i + 1) * 2**L).

    Level-0 nodes (leaf hashes) live in ``audit_events.leaf_hash``; a level-0 row appears here only for a
    leaf whose event was pruned but whose hash a proof still needs.
    """

    __tablename__ = "audit_tree_nodes"

    level: Mapped[int] = mapped_column(SmallInteger)
    idx: Mapped[int] = mapped_column(SequenceNumber)
    hash: Mapped[bytes] = mapped_column(Hash)

    __table_args__ = (PrimaryKeyConstraint("level", "idx"),)


class AuditHead(Base):
    """The single row that serialises appends (locked FOR UPDATE) and names the log."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    origin: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(SequenceNumber)
    root_hash: Mapped[bytes] = mapped_column(Hash)
    pruned_below: Mapped[int] = mapped_column(SequenceNumber)

    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)


class AuditCheckpoint(Base):
    """A signed tree head in C2SP signed-note form."""

    __tablename__ = "audit_checkpoints"

    tree_size: Mapped[int] = mapped_column(SequenceNumber, primary_key=True, autoincrement=False)
    root_hash: Mapped[bytes] = mapped_column(Hash)
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class AuditExportCursor(Base):
    """Per SIEM sink: the next sequence number to deliver. Advanced only after the sink acknowledged."""

    __tablename__ = "audit_export_cursors"

    sink: Mapped[str] = mapped_column(String(64), primary_key=True)
    next_seq: Mapped[int] = mapped_column(SequenceNumber)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Key(Base):
    """Key metadata. The material lives in the key backend, referenced per version."""

    __tablename__ = "keys"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(16))
    algorithm: Mapped[str] = mapped_column(String(32))
    backend: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    primary_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    rotated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    max_age_days: Mapped[int | None] = mapped_column(Integer, nullable=True)


class KeyVersion(Base):
    __tablename__ = "key_versions"

    key_name: Mapped[str] = mapped_column(String(128), ForeignKey("keys.name"))
    version: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    backend_ref: Mapped[str | None] = mapped_column(String(255), nullable=True)  # None once destroyed
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # For field encryption: this version's data keys, wrapped by the version itself (created on first use).
    field_keys_wrapped: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)

    __table_args__ = (PrimaryKeyConstraint("key_name", "version"),)


class Secret(Base):
    """A named secret (an upstream API key, a database password). Values live encrypted in its versions."""

    __tablename__ = "secrets"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    current_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class SecretVersion(Base):
    __tablename__ = "secret_versions"

    name: Mapped[str] = mapped_column(String(255), ForeignKey("secrets.name"))
    version: Mapped[int] = mapped_column(Integer)
    key_version: Mapped[int] = mapped_column(Integer)
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # None once destroyed
    ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    created_by: Mapped[str] = mapped_column(String(255))

    __table_args__ = (PrimaryKeyConstraint("name", "version"),)


class PrincipalRow(Base):
    """A user or service account. Attributes feed attribute-based policies (department, clearance, region)."""

    __tablename__ = "principals"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(16))
    display_name: Mapped[str] = mapped_column(String(255))
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ApiKey(Base):
    """An API key: only a keyed hash (HMAC-SHA-256 under the server's pepper) of its secret is stored."""

    __tablename__ = "api_keys"

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    principal_id: Mapped[str] = mapped_column(String(255), ForeignKey("principals.id"))
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    # A sealed emergency credential: every use raises a critical audit event.
    break_glass: Mapped[bool] = mapped_column(Boolean, default=False)


class RoleBinding(Base):
    """A principal (or group) holds a role — everywhere, or on one resource type or one resource only; for
    good, or until ``expires_at`` (just-in-time elevations, break-glass)."""

    __tablename__ = "role_bindings"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    principal_id: Mapped[str] = mapped_column(String(255), ForeignKey("principals.id"), index=True)
    role: Mapped[str] = mapped_column(String(64))
    resource_type: Mapped[str | None] = mapped_column(String(64), nullable=True)
    resource_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    origin: Mapped[str] = mapped_column(String(16))  # assigned | elevation | break-glass
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    created_by: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class GroupMember(Base):
    """Membership of a user or service account in a group; the group's roles apply to its members."""

    __tablename__ = "group_members"

    group_id: Mapped[str] = mapped_column(String(255), ForeignKey("principals.id"), primary_key=True)
    member_id: Mapped[str] = mapped_column(
        String(255), ForeignKey("principals.id"), primary_key=True, index=True
    )


class PolicyVersion(Base):
    """One version of the custom Cedar policy set, kept for ever (rollback is activating an older one)."""

    __tablename__ = "policy_versions"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    text: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    created_by: Mapped[str] = mapped_column(String(255))


class PolicyHead(Base):
    """The active custom policy version (one row; version 0 = shipped defaults only)."""

    __tablename__ = "policy_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(Integer)
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Elevation(Base):
    """A just-in-time request for a role: pending → approved (a role binding until ``expires_at``) or
    denied; an approved one may be revoked early."""

    __tablename__ = "elevations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    requester_id: Mapped[str] = mapped_column(String(255), ForeignKey("principals.id"), index=True)
    role: Mapped[str] = mapped_column(String(64))
    resource_type: Mapped[str | None] = mapped_column(String(64), nullable=True)
    resource_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    reason: Mapped[str] = mapped_column(Text)
    duration_s: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime())
    decided_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class RevokedToken(Base):
    """Access tokens revoked before they expire (by jti). Rows past ``expires_at`` may be dropped."""

    __tablename__ = "revoked_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    revoked_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ModelRow(Base):
    """A registered model: a name, its owner and classification, and optionally its own approval gate."""

    __tablename__ = "models"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    description: Mapped[str] = mapped_column(Text, default="")
    classification: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ModelGate(Base):
    """An approval gate: for one model, or ``*`` for every model without its own."""

    __tablename__ = "model_gates"

    scope: Mapped[str] = mapped_column(String(128), primary_key=True)
    policy: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_by: Mapped[str] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ModelVersionRow(Base):
    """One artifact of a model. Its bytes live encrypted under a key of their own (``key_name``) in the
    models directory; the scan report, OMS signature, provenance and gate result are kept with it."""

    __tablename__ = "model_versions"
    __table_args__ = (Index("ix_model_versions_model_version", "model_name", "version", unique=True),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    model_name: Mapped[str] = mapped_column(String(128), ForeignKey("models.name"))
    version: Mapped[int] = mapped_column(Integer)
    stage: Mapped[str] = mapped_column(String(16))
    origin: Mapped[str] = mapped_column(String(16))  # internal | third-party
    filename: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    format: Mapped[str] = mapped_column(String(32))
    scan_verdict: Mapped[str] = mapped_column(String(16))
    scan_report: Mapped[dict[str, Any]] = mapped_column(JSON)
    scan_accepted_by: Mapped[str | None] = mapped_column(String(255), nullable=True)  # policy ids, if any
    key_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    signature: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    signing_key_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    provenance: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    input_schema: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # one row, declared
    evaluation: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    gate_result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    source: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # third-party: url, licence
    vetted_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    shredded_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)


class ModelStageEvent(Base):
    """The stage history of a version, kept for ever."""

    __tablename__ = "model_stage_events"

    id: Mapped[int] = mapped_column(SequenceNumber, primary_key=True, autoincrement=True)
    version_id: Mapped[str] = mapped_column(String(64), ForeignKey("model_versions.id"), index=True)
    from_stage: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_stage: Mapped[str] = mapped_column(String(16))
    by: Mapped[str] = mapped_column(String(255))
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    reason: Mapped[str] = mapped_column(Text, default="")


class ModelApproval(Base):
    """A reviewer's approval of a version (never its author's: policy and service both refuse that)."""

    __tablename__ = "model_approvals"

    version_id: Mapped[str] = mapped_column(String(64), ForeignKey("model_versions.id"), primary_key=True)
    approver_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    comment: Mapped[str] = mapped_column(Text, default="")


class DatasetRow(Base):
    """A dataset: its schema (fields with types, classifications, categories; transforms), owner, the
    purposes it serves, its residency region and retention."""

    __tablename__ = "datasets"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    description: Mapped[str] = mapped_column(Text, default="")
    purposes: Mapped[list[str]] = mapped_column(JSON)
    region: Mapped[str] = mapped_column(String(32))
    retention_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    schema: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class DatasetVersionRow(Base):
    """A content-addressed version (``sha256`` of its canonical rows), stored encrypted under its own key."""

    __tablename__ = "dataset_versions"
    __table_args__ = (Index("ix_dataset_versions_dataset_version", "dataset_name", "version", unique=True),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    dataset_name: Mapped[str] = mapped_column(String(128), ForeignKey("datasets.name"))
    version: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    source_format: Mapped[str] = mapped_column(String(16))
    source_sha256: Mapped[str] = mapped_column(String(64))
    rows: Mapped[int] = mapped_column(BigInteger)
    size: Mapped[int] = mapped_column(BigInteger)
    key_name: Mapped[str | None] = mapped_column(String(160), nullable=True)
    report: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    shredded_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class DatasetQuarantine(Base):
    """An upload that failed its checks: what it was (digest, size, name) and the report — never its bytes."""

    __tablename__ = "dataset_quarantine"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    dataset_name: Mapped[str] = mapped_column(String(128), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(64))
    report: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Pseudonym(Base):
    """A pseudonym token and its original value, encrypted: the only way back, through an audited lookup."""

    __tablename__ = "pseudonyms"

    dataset_name: Mapped[str] = mapped_column(String(128), primary_key=True)
    field: Mapped[str] = mapped_column(String(64), primary_key=True)
    token: Mapped[str] = mapped_column(String(64), primary_key=True)
    value_encrypted: Mapped[str] = mapped_column(Text)


class ModelServing(Base):
    """How a model is served (limits, output protection, failure mode): for one model, or ``*``."""

    __tablename__ = "model_serving"

    scope: Mapped[str] = mapped_column(String(128), primary_key=True)
    policy: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_by: Mapped[str] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class PrivacySpend(Base):
    """One differentially private release: what it cost a consumer on a dataset (the accountant's ledger)."""

    __tablename__ = "privacy_spends"
    __table_args__ = (Index("ix_privacy_spends_dataset_consumer", "dataset_name", "consumer"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    dataset_name: Mapped[str] = mapped_column(String(128))
    consumer: Mapped[str] = mapped_column(String(255))
    query: Mapped[dict[str, Any]] = mapped_column(JSON)
    epsilon: Mapped[float] = mapped_column(Float)
    delta: Mapped[float] = mapped_column(Float)
    at: Mapped[datetime] = mapped_column(UtcDateTime())


class DatasetExport(Base):
    """An export's file digest: a dataset ingested from that file is derived from the exported version."""

    __tablename__ = "dataset_exports"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    dataset_name: Mapped[str] = mapped_column(String(128))
    version: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    purpose: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class SubjectRequest(Base):
    """A data-subject request. The identifier is kept sealed (field-encrypted) only while the request is
    open; afterwards only its keyed digest remains."""

    __tablename__ = "subject_requests"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # access | erasure | rectification
    subject_sealed: Mapped[str | None] = mapped_column(Text, nullable=True)
    subject_digest: Mapped[str] = mapped_column(String(64))
    changes: Mapped[str | None] = mapped_column(Text, nullable=True)  # rectification: sealed JSON
    status: Mapped[str] = mapped_column(String(16))  # open | completed
    due_at: Mapped[datetime] = mapped_column(UtcDateTime())
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class ModelReview(Base):
    """A model version flagged for retraining review (e.g. its training data changed under an erasure)."""

    __tablename__ = "model_reviews"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version_id: Mapped[str] = mapped_column(String(64), index=True)
    reason: Mapped[str] = mapped_column(String(500))
    source: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class LabelRow(Base):
    """One label an annotator gave an item; a change is a new revision (the old one stays, not current)."""

    __tablename__ = "labels"
    __table_args__ = (Index("ix_labels_dataset_item", "dataset_name", "item"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    dataset_name: Mapped[str] = mapped_column(String(128))
    item: Mapped[str] = mapped_column(String(256))
    labeller: Mapped[str] = mapped_column(String(255))
    label: Mapped[str] = mapped_column(String(256))
    revision: Mapped[int] = mapped_column(Integer)
    current: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
