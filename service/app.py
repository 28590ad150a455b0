"""The FastAPI application, built from settings by :func:`create_app`.

Nothing is created at import time: the settings, the database engine and the
logging configuration all come from the ``Settings`` passed in. Routers are
imported from the modules in ``ROUTER_MODULES`` (each exposes ``router``; a
missing module is an error, never a silently smaller API), and
:func:`check_route_rules` refuses to build an app with a route that declares
no access rule.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from .. import __version__
from .auth.rules import check_route_rules
from .db import Database
from .errors import install_error_handlers
from .logging import RequestMiddleware, configure_logging
from .settings import Settings
from .threads import apply_thread_limit

# Each module's owner adds one line; order is the order of the OpenAPI listing.
ROUTER_MODULES = (
    "pages",
    "health",
    "auth",
    "admin",
    "recipients",
    "statements",
    "exports",
    "audit",
)

DESCRIPTION = """\
Intake of witness statements, sealed at once with age to the investigators the
witness consented to. Nobody at the node, the server included, can read a
statement after sealing.

Authentication: a session cookie from `POST /api/v1/auth/login` (send the
`X-CSRF-Token` header it returns with every unsafe request) or a personal API
token as `Authorization: Bearer eit_…`. Errors are RFC 9457
`application/problem+json`.
"""


def _include_routers(app: FastAPI) -> None:
    for name in ROUTER_MODULES:
        module = importlib.import_module(f"{__package__}.routes.{name}")
        app.include_router(module.router)


def create_app(settings: Settings, *, database: Database | None = None) -> FastAPI:
    """A new application for ``settings``; ``database`` may be shared by tests."""
    configure_logging(settings)
    db = database or Database.from_settings(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        apply_thread_limit(settings.worker_threads)
        yield
        if database is None:
            db.dispose()

    docs = settings.openapi_docs
    app = FastAPI(
        title="evidence-intake",
        version=__version__,
        description=DESCRIPTION,
        debug=False,  # tracebacks are never sent to clients, not even in development
        lifespan=lifespan,
        openapi_url="/openapi.json" if docs else None,
        docs_url="/docs" if docs else None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.database = db
    install_error_handlers(app)
    app.add_middleware(RequestMiddleware, settings=settings)
    _include_routers(app)
    check_route_rules(app)
    return app
