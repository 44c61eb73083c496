"""Builds the running system from settings."""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from bastion.app.adapters import KeyManagerCheckpointSigner
from bastion.app.state import tls_dir
from bastion.app.tracing import Tracing, build_tracing
from bastion.audit import AuditQueries, AuditTrail, FileWitness, GroupCommitWriter, MerkleAuditLog
from bastion.audit.export import Exporter, build_sink
from bastion.audit.spool import AuditSpool
from bastion.core.cache import KeepWarm
from bastion.core.clock import Clock, SystemClock
from bastion.core.errors import ConfigError
from bastion.core.offload import Offload
from bastion.core.ratelimit import TokenBuckets
from bastion.core.settings import KeyBackendKind, Settings
from bastion.data.export import DataExport
from bastion.data.ingest import DataIngest
from bastion.data.labels import Labels
from bastion.data.pii import PiiEngine
from bastion.data.private_queries import PrivateQueries
from bastion.data.registry import DatasetRegistry
from bastion.data.retention import DataRetention
from bastion.gateway.limits import Limiter, LocalLimiter, RedisLimiter
from bastion.gateway.llm import LlmProxy
from bastion.gateway.pool import Limits
from bastion.gateway.service import Gateway
from bastion.governance.lineage import Lineage
from bastion.governance.subjects import SubjectRights
from bastion.identity import ApiKeyAuthenticator, IdentityService
from bastion.identity.bearer import BearerAuthenticator
from bastion.identity.certificates import ClientCertificateIssuer
from bastion.identity.elevation import ElevationService
from bastion.identity.jwt_authenticator import JwtAuthenticator
from bastion.identity.mtls import CertificateAuthenticator
from bastion.identity.oidc import OidcAuthenticator
from bastion.identity.pepper import Pepper
from bastion.identity.tokens import TokenService
from bastion.keys import LocalCA
from bastion.keys.backend import KeyBackend
from bastion.keys.local import LocalBackend, MasterKeySource
from bastion.keys.manager import KeyManager
from bastion.keys.pkcs11_backend import Pkcs11Backend
from bastion.keys.secrets_store import SecretsStore
from bastion.keys.vault import ObjectVault
from bastion.models.intake import ModelIntake
from bastion.models.loader import ModelLoader
from bastion.models.registry import ModelRegistry
from bastion.policy import CedarAuthorizer, PolicySource, RoleDirectory
from bastion.policy.admin import PolicyAdmin
from bastion.policy.defaults import MODEL_ARCHIVE_KEY, MODEL_SIGNING_KEY
from bastion.spine import SYSTEM, Context, Principal, PrincipalType, UnitOfWork
from bastion.store import Database

if TYPE_CHECKING:
    from fastapi import FastAPI


@dataclass
class Bastion:
    settings: Settings
    clock: Clock
    database: Database
    writer: GroupCommitWriter
    uow: UnitOfWork
    audit: AuditQueries
    trail: AuditTrail
    exporter: Exporter
    keys: KeyManager
    secrets: SecretsStore
    identity: IdentityService
    tokens: TokenService
    authenticator: BearerAuthenticator
    policies: PolicyAdmin
    elevations: ElevationService
    certificates: CertificateAuthenticator
    client_certs: ClientCertificateIssuer
    models: ModelRegistry
    intake: ModelIntake
    loader: ModelLoader
    pii: PiiEngine
    datasets: DatasetRegistry
    data_ingest: DataIngest
    data_export: DataExport
    private_queries: PrivateQueries
    retention: DataRetention
    labels: Labels
    lineage: Lineage
    subjects: SubjectRights
    gateway: Gateway
    llm: LlmProxy
    tracing: Tracing
    offload: Offload  # threads for the blocking steps of requests served on the event loop
    reloader: Offload  # one thread reloading the caches of the request path while they are in use
    warm: KeepWarm  # ... and keeping fresh what was used lately, between uses

    def api(self) -> FastAPI:
        # Imported here: the CLI builds the system too, and never serves HTTP.
        from bastion.api import ApiServices, create_api  # noqa: PLC0415

        return create_api(
            ApiServices(
                database=self.database,
                authenticator=self.authenticator,
                uow=self.uow,
                audit=self.audit,
                tokens=self.tokens,
                identity=self.identity,
                policies=self.policies,
                elevations=self.elevations,
                certificates=self.certificates,
                models=self.models,
                intake=self.intake,
                loader=self.loader,
                datasets=self.datasets,
                data_ingest=self.data_ingest,
                data_export=self.data_export,
                pii=self.pii,
                gateway=self.gateway,
                llm=self.llm,
                offload=self.offload,
                private_queries=self.private_queries,
                labels=self.labels,
                subjects=self.subjects,
                retention=self.retention,
                lineage=self.lineage,
            )
        )

    def close(self) -> None:
        self.gateway.close()  # model workers first: they are processes of their own
        self.offload.close()
        self.warm.close()
        self.reloader.close()
        self.tracing.shutdown()  # flushes batched spans
        self.exporter.close()
        self.writer.close()  # commits whatever is queued before the database goes
        self.database.dispose()


def build(settings: Settings, *, clock: Clock | None = None) -> Bastion:
    """Wire every backend from ``settings``. Every decision is the Cedar authorizer's."""
    clock = clock or SystemClock()
    database = Database(
        settings.effective_database_url,
        busy_timeout_ms=settings.db_busy_timeout_ms,
        pool_size=settings.db_pool_size,
    )
    audit_log = MerkleAuditLog()
    # Built here, started only by the server (``serve``): other commands append in-process.
    spool = AuditSpool(settings.effective_database_url) if settings.audit_appender else None
    writer = GroupCommitWriter(database, audit_log, spool=spool)
    offload = Offload()
    # One thread, so reloads never run side by side: each is a few milliseconds of Python that holds the GIL
    # against the event loop, and several at once made a request stall.
    reloader = Offload(threads=1, name="bastion-reload")
    warm = KeepWarm(reloader.submit, clock.now, timedelta(seconds=settings.cache_keep_warm_s))
    policies = PolicySource(database, clock, background=warm)
    directory = RoleDirectory(database, clock, background=warm)
    uow = UnitOfWork(database, CedarAuthorizer(policies, directory, clock), audit_log, clock, writer=writer)
    keys = KeyManager(uow, build_key_backend(settings), clock)
    signer = KeyManagerCheckpointSigner(keys, system_context("audit-checkpoint"))
    secrets = SecretsStore(uow, keys, clock)
    pepper = Pepper(secrets, system_context("api-key-pepper"))
    tokens = TokenService(uow, keys, clock, settings.effective_public_url, system_context("token-signing"))
    witness = FileWitness(settings.effective_witness_path)
    registry_context = system_context("model-registry")
    vault = ObjectVault(keys, settings.models_dir, registry_context, "models", MODEL_ARCHIVE_KEY)
    loader = ModelLoader(uow, database, vault, keys, registry_context, MODEL_SIGNING_KEY)
    models = ModelRegistry(uow, database, clock, keys, vault, loader, registry_context, MODEL_SIGNING_KEY)
    data_context = system_context("data-services")
    pii = PiiEngine()
    datasets = DatasetRegistry(uow, database, clock, keys, data_context)
    data_vault = ObjectVault(keys, settings.datasets_dir, data_context, "dataset-versions")
    uploads = TokenBuckets(settings.data_uploads_per_minute, settings.data_uploads_per_minute, clock)
    limiter = build_limiter(settings)
    tracing = build_tracing(settings)
    lineage = Lineage(uow, database)
    return Bastion(
        settings=settings,
        clock=clock,
        database=database,
        writer=writer,
        uow=uow,
        audit=AuditQueries(uow),
        trail=AuditTrail(database, uow, signer, witness, clock),
        exporter=Exporter(database, uow, [build_sink(sink) for sink in settings.audit_sinks], clock),
        keys=keys,
        secrets=secrets,
        identity=IdentityService(uow, pepper, clock),
        tokens=tokens,
        authenticator=BearerAuthenticator(
            ApiKeyAuthenticator(database, pepper, clock, background=warm),
            JwtAuthenticator(database, tokens, clock),
            OidcAuthenticator(database, clock, settings.oidc_issuers),
        ),
        policies=PolicyAdmin(uow, policies, clock),
        elevations=ElevationService(uow, database, clock, timedelta(minutes=settings.elevation_max_minutes)),
        certificates=CertificateAuthenticator(
            database,
            clock,
            settings.mtls_principals,
            trust_principal_uri=settings.mtls_client_ca is None,  # only our own CA's names are trusted
        ),
        client_certs=ClientCertificateIssuer(uow, LocalCA(tls_dir(settings), clock)),
        models=models,
        intake=ModelIntake(
            uow,
            database,
            clock,
            keys,
            vault,
            models,
            registry_context,
            MODEL_SIGNING_KEY,
            settings.model_max_bytes,
        ),
        loader=loader,
        pii=pii,
        datasets=datasets,
        data_ingest=DataIngest(
            uow,
            database,
            clock,
            data_vault,
            datasets,
            pii,
            uploads,
            settings.data_max_bytes,
            settings.data_region,
        ),
        data_export=DataExport(uow, database, data_vault, datasets, pii, clock, settings.data_region),
        private_queries=PrivateQueries(uow, database, clock, data_vault),
        lineage=lineage,
        subjects=SubjectRights(
            uow, database, clock, keys, data_vault, datasets, lineage, pii, system_context("data-subjects")
        ),
        labels=Labels(uow, database, clock),
        retention=DataRetention(
            uow, database, clock, data_vault, {str(c): d for c, d in settings.data_retention_days.items()}
        ),
        gateway=Gateway(
            uow,
            database,
            clock,
            loader,
            limiter,
            system_context("gateway"),
            max_body_bytes=settings.gateway_max_body_bytes,
            max_json_depth=settings.gateway_max_json_depth,
            worker_limits=Limits(memory_bytes=settings.gateway_worker_memory_mb * 1024 * 1024),
            model_code=[str(path) for path in settings.gateway_model_code],
            tracer=tracing.tracer,
            offload=offload,
            background=warm,
        ),
        tracing=tracing,
        offload=offload,
        reloader=reloader,
        warm=warm,
        llm=LlmProxy(
            uow,
            secrets,
            limiter,
            pii,
            system_context("llm-proxy"),
            settings.llm_upstreams,
            principal_rps=settings.llm_principal_rps,
            daily_tokens=settings.llm_daily_tokens,
            blocked_output=settings.llm_blocked_output,
        ),
    )


def build_limiter(settings: Settings) -> Limiter:
    if settings.gateway_limiter == "redis":
        return RedisLimiter(settings.redis_url, prefix=settings.redis_prefix)
    return LocalLimiter()


def build_key_backend(settings: Settings) -> KeyBackend:
    if settings.keys_backend is KeyBackendKind.PKCS11:
        if settings.pkcs11_pin is None:
            raise ConfigError("The pkcs11 key backend needs BASTION_PKCS11_PIN.")
        return Pkcs11Backend(
            settings.pkcs11_module, settings.pkcs11_token, settings.pkcs11_pin.get_secret_value()
        )
    master = MasterKeySource(
        key=settings.master_key,
        passphrase=settings.master_passphrase,
        key_file=settings.effective_master_key_file,
    )
    return LocalBackend(settings.keyring_path, master)


def local_operator() -> Principal:
    """The CLI's principal: whoever can read the state directory and database, named by their OS account."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return Principal(id=f"operator:{user}", type=PrincipalType.OPERATOR, auth_method="local")


def operator_context(purpose: str | None = None) -> Context:
    return Context(
        principal=local_operator(), source_address="local", user_agent="bastion-cli", purpose=purpose
    )


def system_context(purpose: str) -> Context:
    return Context(principal=SYSTEM, source_address="local", user_agent="bastion-server", purpose=purpose)
