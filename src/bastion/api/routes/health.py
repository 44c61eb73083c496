"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel

from bastion.core.errors import StoreUnavailable
from bastion.store.migrate import current_revision, head_revision

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    checks: dict[str, str]


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is up. Checks nothing else, so an orchestrator won't restart it on a DB blip."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses={503: {"description": "Not ready"}})
def readyz(request: Request) -> Readiness:
    """Ready to serve: the database answers and its schema is at the version this build expects."""
    database = request.app.state.services.database
    database.ping()
    if current_revision(database) != head_revision():
        raise StoreUnavailable(
            "The database schema is not at the expected version.", remedy="Run 'bastion init' to migrate."
        )
    return Readiness(status="ready", checks={"database": "ok", "schema": "ok"})
