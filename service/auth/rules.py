"""Who may call what: one explicit rule on every endpoint, checked at start-up.

Threat model: the classic access-control bug is the endpoint somebody forgot
to protect. Here a route declares its rule as a dependency made by
:func:`require` (roles), :func:`authenticated` (any signed-in role) or
:func:`public`; :func:`check_route_rules` runs when the app is built and
refuses to start if any route has no rule or more than one. A rule is both
the enforcement (it authenticates the caller, checks the role and, for
cookie sessions on unsafe methods, the CSRF token) and the declaration the
role-matrix test and the docs read back with :func:`rule_of`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
from fastapi import Depends, FastAPI, Request
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import Route

from ..deps import SettingsDep
from ..errors import AuthenticationError, PermissionDeniedError
from ..models.accounts import Role
from .principal import Principal, authenticate

ALL_ROLES = frozenset(Role)


class RouteRuleError(RuntimeError):
    """A route was registered without exactly one access rule."""


@dataclass(frozen=True)
class RouteRule:
    """The declared rule: ``roles`` empty and ``public`` True means anyone."""

    public: bool
    roles: frozenset[Role]

    def describe(self) -> str:
        if self.public:
            return "public"
        if self.roles == ALL_ROLES:
            return "any signed-in role"
        return ", ".join(sorted(r.value for r in self.roles))


class _RuleDependency:
    """Base of the callables FastAPI runs as a rule; ``rule`` is the declaration."""

    rule: RouteRule


class RequireRoles(_RuleDependency):
    def __init__(self, roles: Iterable[Role]) -> None:
        roles = frozenset(roles)
        if not roles:
            raise ValueError("require() needs at least one role; use public() for anyone")
        self.rule = RouteRule(public=False, roles=roles)

    async def __call__(self, request: Request, settings: SettingsDep) -> Principal:
        # One worker-thread hop for the lookup; the rule asks for no request
        # session of its own, so routes that need none do not open one.
        principal = await anyio.to_thread.run_sync(authenticate, request, settings)
        if principal is None:
            raise AuthenticationError("sign in or send an API token")
        if principal.role not in self.rule.roles:
            raise PermissionDeniedError("your role may not do this")
        return principal


class PublicRule(_RuleDependency):
    def __init__(self) -> None:
        self.rule = RouteRule(public=True, roles=frozenset())

    def __call__(self) -> None:
        return None


def require(*roles: Role) -> Any:
    """The rule admitting exactly ``roles``; use as ``Depends(require(Role.admin))``."""
    return RequireRoles(roles)


def authenticated() -> Any:
    """The rule admitting any signed-in account, whatever its role."""
    return RequireRoles(ALL_ROLES)


def public() -> Any:
    """The rule admitting anyone, signed in or not; say why at the call site."""
    return PublicRule()


# Annotated aliases keep route signatures short.
AdminPrincipal = Annotated[Principal, Depends(require(Role.admin))]
AnyPrincipal = Annotated[Principal, Depends(authenticated())]


def _rules_in(dependant: Any) -> list[RouteRule]:
    found: list[RouteRule] = []
    if isinstance(dependant.call, _RuleDependency):
        found.append(dependant.call.rule)
    for sub in dependant.dependencies:
        found.extend(_rules_in(sub))
    return found


def api_routes(app: FastAPI) -> list[Any]:
    """Every route of ``app`` as registered (included routers flattened, prefixes applied).

    Items have ``path``, ``methods`` and, for API routes, ``dependant``.
    """
    return list(iter_route_contexts(app.routes))


def rule_of(route: Any) -> RouteRule:
    """The one rule ``route`` declares; :class:`RouteRuleError` if none or several."""
    rules = set(_rules_in(route.dependant))
    if len(rules) != 1:
        methods = ",".join(sorted(route.methods or ()))
        raise RouteRuleError(
            f"{methods} {route.path} declares {len(rules)} access rules; it needs exactly one "
            "(Depends(require(...)), authenticated() or public())")
    return rules.pop()


def documentation_paths(app: FastAPI) -> set[str]:
    """The framework's own pages (OpenAPI document and viewers), public by design."""
    paths = {app.openapi_url, app.docs_url, app.redoc_url}
    if app.docs_url and app.swagger_ui_oauth2_redirect_url:
        paths.add(app.swagger_ui_oauth2_redirect_url)
    return {p for p in paths if p}


def check_route_rules(app: FastAPI) -> None:
    """Refuse an app in which any route lacks exactly one rule."""
    problems = []
    docs = documentation_paths(app)
    for route in api_routes(app):
        original = route.original_route
        if isinstance(original, APIRoute):
            try:
                rule_of(route)
            except RouteRuleError as err:
                problems.append(str(err))
        elif isinstance(original, Route) and route.path in docs:
            continue
        else:
            problems.append(f"{route.path}: not an API route, so it cannot declare a rule")
    if problems:
        raise RouteRuleError("; ".join(problems))
