"""Liveness and readiness: public, and telling nothing an attacker could use."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel
from sqlalchemy import text

from ... import __version__
from ..auth.rules import public
from ..deps import DbSession
from ..errors import ServiceError

router = APIRouter(prefix="/api/v1", tags=["health"])


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    database: Literal["ok"]


class DatabaseUnavailableError(ServiceError):
    status, slug, title = 503, "unavailable", "Service unavailable"


@router.get("/health", response_model=Health)
def health(_rule: Annotated[None, Depends(public())], session: DbSession) -> Health:
    """Public (load balancers and monitors call it): version and a database round trip."""
    try:
        session.execute(text("SELECT 1"))
        session.rollback()
    except Exception as err:  # any database failure is the same answer: not ready
        raise DatabaseUnavailableError("the database does not answer") from err
    return Health(status="ok", version=__version__, database="ok")
