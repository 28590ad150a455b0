"""A route without exactly one access rule cannot be part of the app."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pytest
from evidence_intake.service.auth.rules import (
    RouteRuleError,
    authenticated,
    check_route_rules,
    public,
    require,
    rule_of,
)
from evidence_intake.service.models.accounts import Role
from fastapi import APIRouter, Depends, FastAPI


def _app(router: APIRouter) -> FastAPI:
    app = FastAPI()
    app.include_router(router)
    return app


def test_route_without_a_rule_is_refused() -> None:
    router = APIRouter(prefix="/api/v1")

    @router.get("/forgotten")
    def forgotten() -> None:
        return None

    with pytest.raises(RouteRuleError, match="/api/v1/forgotten declares 0"):
        check_route_rules(_app(router))


def test_route_with_two_rules_is_refused() -> None:
    router = APIRouter()

    @router.get("/double", dependencies=[Depends(public())])
    def double(_rule: Annotated[None, Depends(require(Role.admin))]) -> None:
        return None

    with pytest.raises(RouteRuleError, match="declares 2"):
        check_route_rules(_app(router))


def test_rule_in_a_router_dependency_counts() -> None:
    router = APIRouter(dependencies=[Depends(require(Role.auditor))])

    @router.get("/log")
    def log() -> None:
        return None

    app = _app(router)
    check_route_rules(app)
    from evidence_intake.service.auth.rules import api_routes

    route = next(r for r in api_routes(app) if r.path == "/log")
    assert rule_of(route).roles == {Role.auditor}


def test_rules_describe_themselves() -> None:
    router = APIRouter()

    @router.get("/a")
    def a(_p: Annotated[object, Depends(authenticated())]) -> None:
        return None

    @router.get("/b")
    def b(_p: Annotated[object, Depends(require(Role.admin, Role.auditor))]) -> None:
        return None

    from evidence_intake.service.auth.rules import api_routes

    rules = {r.path: rule_of(r) for r in api_routes(_app(router)) if r.path in {"/a", "/b"}}
    assert rules["/a"].describe() == "any signed-in role"
    assert rules["/b"].describe() == "admin, auditor"


def test_require_needs_a_role() -> None:
    with pytest.raises(ValueError, match="at least one role"):
        require()


def test_the_service_app_passes_its_own_check(tmp_path: Path) -> None:
    from evidence_intake.service.app import create_app
    from evidence_intake.service.settings import Settings

    app = create_app(Settings(data_dir=tmp_path))  # create_app runs check_route_rules
    check_route_rules(app)
