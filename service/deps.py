"""Request-scoped dependencies every router uses: the settings and a database session.

The application keeps its ``Settings`` and ``Database`` on ``app.state`` (made
by ``create_app``); nothing here is a module-level singleton.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from .db import Database
from .settings import Settings


# Plain attribute reads: ``async`` so that FastAPI runs them on the event loop
# instead of handing each one to the thread pool (a thread hop per request).
async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


def get_session(request: Request) -> Iterator[Session]:
    """One session per request; uncommitted work is rolled back at the end."""
    database: Database = request.app.state.database
    with database.session() as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings)]
DbSession = Annotated[Session, Depends(get_session)]


def require_json(request: Request) -> None:
    """Refuse a request body that is not JSON with 415 (not a confusing 422)."""
    from .errors import UnsupportedMediaTypeError

    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise UnsupportedMediaTypeError("send the request body as application/json")


JsonBody = Annotated[None, Depends(require_json)]
