"""The ASGI application factory. Receives built services from the composition root; constructs none."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from bastion.api import problems
from bastion.api.dataplane import ROUTE_KEY, DataPlane, prediction_route
from bastion.api.middleware import RequestContextMiddleware
from bastion.api.routes import (
    audit,
    datasets,
    elevations,
    governance,
    health,
    identity,
    llm,
    models,
    oauth,
    policies,
    predict,
)
from bastion.audit.query import AuditQueries
from bastion.core.offload import Offload
from bastion.data.export import DataExport
from bastion.data.ingest import DataIngest
from bastion.data.labels import Labels
from bastion.data.pii import PiiEngine
from bastion.data.private_queries import PrivateQueries
from bastion.data.registry import DatasetRegistry
from bastion.data.retention import DataRetention
from bastion.gateway.llm import LlmProxy
from bastion.gateway.service import Gateway
from bastion.governance.lineage import Lineage
from bastion.governance.subjects import SubjectRights
from bastion.identity import IdentityService
from bastion.identity.bearer import BearerAuthenticator
from bastion.identity.elevation import ElevationService
from bastion.identity.mtls import CertificateAuthenticator
from bastion.identity.tokens import TokenService
from bastion.models.intake import ModelIntake
from bastion.models.loader import ModelLoader
from bastion.models.registry import ModelRegistry
from bastion.policy.admin import PolicyAdmin
from bastion.spine.uow import UnitOfWork
from bastion.store.database import Database


@dataclass(frozen=True, slots=True)
class ApiServices:
    database: Database
    authenticator: BearerAuthenticator
    uow: UnitOfWork
    audit: AuditQueries
    tokens: TokenService
    identity: IdentityService
    policies: PolicyAdmin
    elevations: ElevationService
    certificates: CertificateAuthenticator
    models: ModelRegistry
    intake: ModelIntake
    loader: ModelLoader
    datasets: DatasetRegistry
    data_ingest: DataIngest
    data_export: DataExport
    pii: PiiEngine
    gateway: Gateway
    llm: LlmProxy
    offload: Offload
    private_queries: PrivateQueries
    labels: Labels
    subjects: SubjectRights
    retention: DataRetention
    lineage: Lineage


class BastionApi(FastAPI):
    """FastAPI, with predictions (``bastion.api.dataplane``) answered before FastAPI's own layers."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._predictions = RequestContextMiddleware(DataPlane())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = prediction_route(scope)
        if route is None:
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self  # as Starlette does: handlers reach the services through request.app
        scope[ROUTE_KEY] = route
        await self._predictions(scope, receive, send)


def create_api(services: ApiServices) -> FastAPI:
    app = BastionApi(
        title="Bastion",
        version="0.1.0",
        summary="Security control plane and gateway for AI applications",
        # The interactive docs pages load scripts from a CDN; the schema itself stays at /openapi.json.
        docs_url=None,
        redoc_url=None,
    )
    app.state.services = services
    problems.install(app)
    app.add_middleware(RequestContextMiddleware)
    app.include_router(health.router)
    # The data plane first: routes are matched in order, and these take nearly all of the traffic.
    app.include_router(predict.router)
    app.include_router(llm.router)
    app.include_router(audit.router)
    app.include_router(oauth.router)
    app.include_router(identity.router)
    app.include_router(policies.router)
    app.include_router(elevations.router)
    app.include_router(models.router)
    app.include_router(datasets.router)
    app.include_router(governance.router)
    return app
