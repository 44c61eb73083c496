"""The prediction pipeline. Every request passes every stage, in this order, and each stage is one call:

    authentication (the API's dependency) -> authorization (Cedar ``models.predict`` on the model, with the
    request's context) -> rate limits and quota (one spend; the body is read first, to count its rows) ->
    input validation -> invocation in an isolated worker -> output protection -> telemetry (one audit event,
    metrics)

A refusal at any stage is audited with its reason and counted; nothing reaches a model unchecked.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context as TraceContext
from sqlalchemy import Connection, bindparam, select

from bastion.core.cache import Background, TtlCache
from bastion.core.clock import Clock
from bastion.core.durable import until_durable
from bastion.core.errors import BastionError, InvalidInput, RateLimited, Unavailable
from bastion.core.offload import Offload
from bastion.gateway.limits import Bucket, Limiter, LimiterUnavailable
from bastion.gateway.metrics import GatewayMetrics
from bastion.gateway.output import protect
from bastion.gateway.policy import DEFAULT_POLICY, ServingPolicy
from bastion.gateway.pool import Job, Limits, Worker, WorkerPool
from bastion.gateway.stages import Stages
from bastion.gateway.validation import InvalidPrediction, parse_body, validate
from bastion.models.errors import LoadRefused
from bastion.models.loader import ModelLoader
from bastion.models.records import LOADABLE, PRODUCTION, check_model_name, missing_version, model_resource
from bastion.spine.context import Context, Resource
from bastion.spine.interfaces import Decision
from bastion.spine.uow import UnitOfWork
from bastion.store.database import Database
from bastion.store.tables import ModelServing, ModelVersionRow

ACTION = "models.predict"
GLOBAL = "*"
_FLAVORS = {"pickle": "sklearn", "joblib": "sklearn", "onnx": "onnx"}


@dataclass(frozen=True, slots=True)
class ServedVersion:
    id: str
    number: int
    stage: str
    format: str
    input_schema: dict[str, Any] | None  # declared at registration; None: derived from the model


# Read every second or so while a model is served: Core statements built once (see ``Database.snapshot``),
# of the few columns serving needs.
_SERVED_VERSION = select(
    ModelVersionRow.id,
    ModelVersionRow.version,
    ModelVersionRow.stage,
    ModelVersionRow.format,
    ModelVersionRow.input_schema,
).where(ModelVersionRow.model_name == bindparam("name"))
_PRODUCTION_VERSION = _SERVED_VERSION.where(ModelVersionRow.stage == PRODUCTION)
_NUMBERED_VERSION = _SERVED_VERSION.where(ModelVersionRow.version == bindparam("number"))
_SERVING_POLICIES = select(ModelServing.scope, ModelServing.policy).where(
    ModelServing.scope.in_([bindparam("name"), GLOBAL])
)


def _serving_policy(connection: Connection, name: str) -> ServingPolicy:
    """The model's own serving policy, else the global one, else the default."""
    policies: dict[str, Any] = dict(connection.execute(_SERVING_POLICIES, {"name": name}).all())
    stored = policies.get(name, policies.get(GLOBAL))
    return DEFAULT_POLICY if stored is None else ServingPolicy.model_validate(stored)


class LimiterDown(Unavailable):
    code = "limiter.unavailable"
    title = "Rate limiter unavailable"


class FlavorUnsupported(BastionError):
    code = "model.flavor_unsupported"
    status = 422
    title = "Model format not servable"


class Gateway:
    def __init__(
        self,
        uow: UnitOfWork,
        database: Database,
        clock: Clock,
        loader: ModelLoader,
        limiter: Limiter,
        system: Context,
        *,
        max_body_bytes: int,
        max_json_depth: int,
        worker_limits: Limits,
        model_code: list[str] | None = None,
        offload: Offload,
        background: Background | None = None,
        tracer: trace.Tracer | None = None,
    ) -> None:
        self._uow, self._database, self._clock, self._loader = uow, database, clock, loader
        self._offload, self._background = offload, background
        self._limiter, self._system, self._limits = limiter, system, worker_limits
        self._max_body, self._max_depth = max_body_bytes, max_json_depth
        self._model_code = list(model_code or [])
        self._tracer = None if tracer is None or isinstance(tracer, trace.NoOpTracer) else tracer
        self.metrics = GatewayMetrics()
        self._pools: dict[str, WorkerPool] = {}
        self._pool_lock = threading.Lock()
        # Policy and the production version are re-read every 2 s (in the background while in use): changes
        # reach every replica that fast.
        self._models: TtlCache[str, tuple[Resource, ServingPolicy]] = self._cache(1024)
        self._versions: TtlCache[tuple[str, int | None], ServedVersion] = self._cache(4096)

    def _cache(self, size: int) -> TtlCache[Any, Any]:
        return TtlCache(timedelta(seconds=2), size, background=self._background)

    @property
    def max_body_bytes(self) -> int:
        return self._max_body

    @property
    def traces(self) -> bool:
        """Whether predictions are traced (OpenTelemetry spans), so a caller's trace context matters."""
        return self._tracer is not None

    # -- serving policies ---------------------------------------------------------------------------
    def set_policy(self, context: Context, scope: str, policy: ServingPolicy) -> ServingPolicy:
        if scope != GLOBAL:
            check_model_name(scope)
        document = policy.model_dump(mode="json")
        target = Resource("model", scope) if scope == GLOBAL else self._resource(scope)
        with self._uow.act(context, "models.serving", target, details={"policy": document}) as work:
            row = work.session.get(ModelServing, scope)
            if row is None:
                row = ModelServing(scope=scope)
                work.session.add(row)
            row.policy, row.updated_by, row.updated_at = document, context.principal.id, self._clock.now()
        if scope == GLOBAL:
            self._models = self._cache(1024)
        else:
            self._models.forget(scope)
        return policy

    def _policy(self, name: str) -> ServingPolicy:
        with self._database.snapshot() as connection:
            return _serving_policy(connection, name)

    def _resource(self, name: str) -> Resource:
        with self._database.snapshot() as connection:
            return model_resource(connection, name)

    # -- the pipeline -------------------------------------------------------------------------------
    async def predict(
        self,
        context: Context,
        name: str,
        version: int | None,
        body: bytes,
        content_type: str | None,
        trace_parent: TraceContext | None = None,
        content_encoding: str | None = None,
    ) -> dict[str, Any]:
        """The pipeline, on the event loop: a prediction whose model, policy, pool and caller are known (the
        steady state) does not block — the limiter's and the worker's answers are awaited, the audit event
        queued (or awaited, when durable). What would block (loading a policy or version, starting workers, a
        refusal's durable audit record, a fail-open alert) runs on ``offload``'s threads."""
        stages = Stages(self._tracer)
        attributes = {"bastion.model": name, "bastion.principal": context.principal.id}
        with stages.request(trace_parent, {**attributes, "bastion.request_id": context.request_id or ""}):
            media = (content_type, content_encoding)
            return await self._predict(context, name, version, body, media, stages)

    async def _predict(
        self,
        context: Context,
        name: str,
        version: int | None,
        body: bytes,
        media: tuple[str | None, str | None],
        stages: Stages,
    ) -> dict[str, Any]:
        started = time.perf_counter()
        with stages.enter("authorize"):
            now = self._clock.now()
            target, policy, decision = await self._authorize(context, name, version, now)
        quota: Bucket | None = None  # what the request was charged, once it was
        try:
            with stages.enter("rate_limit"):
                document, quota = await self._limit(context, name, policy, body, media, stages)
            with stages.enter("model"):
                pool, served = await self._serving(name, version, policy, now)
                number = served.number
            with stages.enter("input"):
                validate(document, pool.description, policy.max_batch, served.input_schema)
                inputs = document["inputs"]
                stages.annotate(**{"bastion.version": number, "bastion.batch": len(inputs)})
            with stages.enter("invoke"):
                proba = bool(document.get("return_probabilities", True))
                contributions = policy.high_risk
                job = worker_job(body, document, proba, contributions)
                raw = await pool.call(job, policy.timeout_s, policy.coalesce)
                if not raw.get("ok"):
                    error = raw.get("error", "error")
                    raise InvalidInput(f"The model could not score these inputs ({error}).")
            with stages.enter("output"):
                classes = raw.get("classes") or pool.description.get("classes")
                outputs = protect(raw, classes, policy.output)
        except BastionError as error:
            stage = stages.current
            if quota is not None and isinstance(error, InvalidPrediction | InvalidInput):
                await self._give_back(quota)  # refused as input (by its schema or by the model): no charge
            await self._offload.run(partial(self._refused, context, target, name, version, stage, error))
            raise
        latency = time.perf_counter() - started
        details: dict[str, Any] = {
            "version": number,
            "input_sha256": hashlib.sha256(body).hexdigest(),
            "batch": len(inputs),
            "labels": _summary([row["label"] for row in outputs]),
            "latency_ms": round(latency * 1000, 3),
        }
        if policy.log_inputs:
            details["inputs"] = inputs
        if policy.high_risk:
            details["trace"] = {
                "inputs": inputs,
                "outputs": outputs,
                "contributions": raw.get("contributions"),
            }
        with stages.enter("audit"):
            durable = policy.audit == "durable" or policy.high_risk
            pending = self._uow.submit(context, ACTION, target, decision, details, durable=durable)
            if pending is not None:
                await until_durable(pending)
        self.metrics.served(name, context.principal.id, latency)
        return {"model": name, "version": number, "outputs": outputs}

    async def _authorize(
        self, context: Context, name: str, version: int | None, now: datetime
    ) -> tuple[Resource, ServingPolicy, Decision]:
        """The model, its serving policy (cached; loaded on a thread) and the caller's permission on it."""
        cached = self._models.fresh(name, now, partial(self._model_and_policy, name))
        target, policy = cached[0] if cached else await self._offload.run(partial(self._model, name, now))
        if self._uow.decides_at_once(context):
            decision = self._uow.decide(context, ACTION, target)
        else:  # the active policy or the caller's roles must be read again first: not on the event loop
            decision = await self._offload.run(partial(self._uow.decide, context, ACTION, target))
        if not decision.allowed:  # asked again where it may block: the refusal is audited, then raised
            ask = partial(self._uow.authorize, context, ACTION, target, details={"version": version})
            decision = await self._offload.run(ask)
        return target, policy, decision

    def _model(self, name: str, now: datetime) -> tuple[Resource, ServingPolicy]:
        return self._models.get_or_load(name, now, partial(self._model_and_policy, name))

    def _model_and_policy(self, name: str) -> tuple[Resource, ServingPolicy]:
        with self._database.snapshot() as connection:
            return model_resource(connection, name), _serving_policy(connection, name)

    async def _spend(self, context: Context, name: str, policy: ServingPolicy, buckets: list[Bucket]) -> None:
        try:
            wait = await self._limiter.take_async(buckets)
        except LimiterUnavailable:
            if not policy.fail_open:
                raise LimiterDown("The rate limiter cannot be reached; the request is refused.") from None
            reason = "served without a rate limit (fail-open)"
            details = {"limiter": self._limiter.name}
            alert = partial(self._uow.alert, context, ACTION, Resource("model", name), reason, details)
            await self._offload.run(alert)  # durable before the request goes on
            return
        if wait > 0:
            raise RateLimited(
                f"Rate limit reached; retry in {wait:.2f} s.", retry_after=max(1, round(wait + 0.5))
            )

    async def _limit(
        self,
        context: Context,
        name: str,
        policy: ServingPolicy,
        body: bytes,
        media: tuple[str | None, str | None],
        stages: Stages,
    ) -> tuple[Any, Bucket]:
        """Rates and the daily quota, spent together (one limiter round trip). The quota counts rows, so the
        body is read first (size, media type and encoding, depth, JSON); its schema is checked after the
        limits. A body that cannot be read still spends the rates — refusing it is no way around them — and is
        refused as input. The request's document, and what its quota was charged."""
        principal = context.principal.id
        rates = [
            Bucket(f"m:{name}", policy.model_rps, policy.model_burst),
            Bucket(f"pm:{principal}:{name}", policy.principal_rps, policy.principal_burst),
        ]
        try:
            content_type, content_encoding = media
            document = parse_body(body, content_type, self._max_body, self._max_depth, content_encoding)
        except BastionError:
            await self._spend(context, name, policy, rates)
            with stages.enter("input"):
                raise
        daily = policy.daily_units / 86400
        quota = Bucket(f"day:{principal}:{name}", daily, policy.daily_units, _rows(document))
        await self._spend(context, name, policy, [*rates, quota])
        return document, quota

    async def _give_back(self, quota: Bucket) -> None:
        """Bad input loses nothing: the rows it was charged go back to the quota (a limiter that cannot be
        reached keeps them: the caller loses at most that request's rows)."""
        with contextlib.suppress(LimiterUnavailable):
            await self._limiter.take_async([replace(quota, cost=-quota.cost)])

    def _refused(
        self,
        context: Context,
        target: Resource,
        name: str,
        version: int | None,
        stage: str,
        error: BastionError,
    ) -> None:
        details = {"version": version, "stage": stage, "code": error.code}
        self._uow.refuse(context, ACTION, target, f"{stage}: {error.code}", details=details)
        self.metrics.requests.labels(name, context.principal.id, "refused").inc()
        self.metrics.rejections.labels(name, error.code).inc()

    # -- workers ------------------------------------------------------------------------------------
    async def _serving(
        self, name: str, version: int | None, policy: ServingPolicy, now: datetime
    ) -> tuple[WorkerPool, ServedVersion]:
        ready = self._ready(name, version, policy, now)
        if ready is not None:
            return ready
        return await self._offload.run(partial(self._pool, name, version, policy))

    def _ready(
        self, name: str, version: int | None, policy: ServingPolicy, now: datetime
    ) -> tuple[WorkerPool, ServedVersion] | None:
        """What ``_pool`` returns, when it needs nothing loaded or started (else ``None``: ask ``_pool``)."""
        cached = self._versions.fresh((name, version), now, partial(self._version, name, version))
        if cached is None or cached[0].stage not in LOADABLE:
            return None
        served = cached[0]
        pool = self._pools.get(served.id)
        if pool is None or not _serves(pool, self._wanted(name, served, policy)):
            return None
        return pool, served

    def _pool(
        self, name: str, version: int | None, policy: ServingPolicy
    ) -> tuple[WorkerPool, ServedVersion]:
        served = self._versions.get_or_load(
            (name, version), self._clock.now(), partial(self._version, name, version)
        )
        number = served.number
        if served.stage not in LOADABLE:
            self._close(served.id)
            raise LoadRefused(f"Model {name}@{number} is {served.stage} and is not served.")
        wanted = self._wanted(name, served, policy)
        with self._pool_lock:
            pool = self._pools.get(served.id)
            # The serving policy changed how it is served, or its workers died and could not be replaced.
            if pool is not None and not _serves(pool, wanted):
                self._pools.pop(served.id).close()
                pool = None
            if pool is None:
                pool = self._start(name, number, served.id, wanted)
                self._pools[served.id] = pool
        return pool, served

    def _wanted(self, name: str, served: ServedVersion, policy: ServingPolicy) -> dict[str, Any]:
        """How the version's pool should be started: its flavor and its number of workers."""
        return {**self._flavor(name, served, policy), "workers": policy.workers}

    def _flavor(self, name: str, served: ServedVersion, policy: ServingPolicy) -> dict[str, Any]:
        """How the worker loads the version: the policy's custom entry point, or by the artifact's format."""
        if policy.entrypoint is not None:
            return {"flavor": "python", "entrypoint": policy.entrypoint, "code_paths": self._model_code}
        flavor = _FLAVORS.get(served.format)
        if flavor is None:
            raise FlavorUnsupported(
                f"Model {name}@{served.number} ({served.format}) has no serving flavor; a custom entry point "
                "in its serving policy can serve it."
            )
        return {"flavor": flavor}

    def _version(self, name: str, version: int | None) -> ServedVersion:
        if version is None:
            row = self._database.first_row(_PRODUCTION_VERSION, name=name)
        else:
            row = self._database.first_row(_NUMBERED_VERSION, name=name, number=version)
        if row is None:
            raise missing_version(name, version)
        return ServedVersion(*row)

    def _start(self, name: str, number: int, version_id: str, config: dict[str, Any]) -> WorkerPool:
        flavor = {key: value for key, value in config.items() if key != "workers"}

        def spawn() -> tuple[Worker, dict[str, Any]]:
            # Every (re)start verifies the version again: signature, scan record, stage, ciphertext.
            with self._loader.open(self._system, name, number) as loaded:
                worker = Worker(self._limits)
                reply = worker.call({"op": "load", "path": str(loaded.path), **flavor}, timeout=120)
                if not reply.get("ok"):
                    worker.kill()
                    raise FlavorUnsupported(f"Model {name}@{number} did not load ({reply.get('error')}).")
                return worker, reply

        first, description = spawn()
        pool = WorkerPool(
            version_id, {**description, "isolation": first.isolation}, lambda: spawn()[0], config
        )
        pool.add(first)
        try:
            for _ in range(config["workers"] - 1):
                pool.add(spawn()[0])
        except BaseException:
            pool.close()  # no half-started pool keeps processes running
            raise
        return pool

    def _close(self, version_id: str) -> None:
        with self._pool_lock:
            pool = self._pools.pop(version_id, None)
        if pool is not None:
            pool.close()

    def status(self, context: Context, name: str) -> dict[str, Any]:
        """The model's serving policy and its running workers (isolation each reported)."""
        with self._uow.read(context, "models.read", self._resource(name)):
            policy = self._policy(name)
        with self._pool_lock:
            pools = dict(self._pools)
        return {
            "policy": policy.model_dump(mode="json"),
            "workers": {
                vid: {"alive": sum(w.alive for w in pool.all), **pool.description}
                for vid, pool in pools.items()
            },
        }

    def close(self) -> None:
        for version_id in list(self._pools):
            self._close(version_id)


def worker_job(body: bytes, document: dict[str, Any], proba: bool, contributions: bool) -> Job:
    """The worker's job. The validated body is spliced in as the client sent it — its newlines made spaces,
    which in JSON are whitespace, never inside a string — rather than encoded again: parsing it is the
    worker's work, on a core of its own, and the same parser reads the same document. A body that is not plain
    ASCII (another encoding, a byte-order mark) is encoded again instead."""
    if body.isascii() and b"\x00" not in body:
        return Job(body.replace(b"\n", b" ").replace(b"\r", b" "), proba, contributions)
    return Job(json.dumps(document).encode(), proba, contributions)


def _serves(pool: WorkerPool, wanted: dict[str, Any]) -> bool:
    """Whether ``pool`` can serve as it stands: started as wanted, and not dead."""
    return not pool.dead and pool.config == wanted


def _rows(document: Any) -> int:
    """The rows a request asks to score, as its quota counts them (before its schema is checked)."""
    inputs = document.get("inputs") if isinstance(document, dict) else None
    return len(inputs) if isinstance(inputs, list) else 1


def _summary(labels: list[Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for label in labels:
        key = str(label)
        counts[key] = counts.get(key, 0) + 1
    return counts
