"""Errors as RFC 9457 ``application/problem+json``, and the service's error types.

Threat model: an error response is read by whoever sent the request, which
may be an attacker probing the service. Responses therefore carry a stable
``type`` URI, a fixed ``title`` and a ``detail`` written by us; they never echo
request input (a validation error names the field, not its value), never
carry a traceback, a SQL statement or a file path. The full story goes to the
log, through the redaction processor.

Domain code raises :class:`ServiceError` subclasses; only this module turns
them (and Starlette's and FastAPI's own exceptions) into HTTP responses.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "urn:evidence-intake:problem:"

log = structlog.get_logger("evidence_intake.service.errors")

# Stable problem types by HTTP status, for errors that have no more specific type.
_TYPE_BY_STATUS = {
    400: "bad-request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "validation",
    429: "too-many-requests",
    500: "internal",
    503: "unavailable",
}


def problem_type(slug: str) -> str:
    return TYPE_BASE + slug


class ServiceError(Exception):
    """Base of every error the service maps to a problem response.

    ``detail`` is shown to the client: write it for them, never quote a secret
    or statement content in it.
    """

    status = 500
    slug = "internal"
    title = "Internal error"

    def __init__(self, detail: str, *, extra: Mapping[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = dict(extra or {})

    def headers(self) -> dict[str, str]:
        return {}


class BadRequestError(ServiceError):
    status, slug, title = 400, "bad-request", "Bad request"


class AuthenticationError(ServiceError):
    status, slug, title = 401, "unauthenticated", "Authentication required"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="evidence-intake"'}


class PermissionDeniedError(ServiceError):
    status, slug, title = 403, "forbidden", "Forbidden"


class CSRFError(PermissionDeniedError):
    slug, title = "csrf", "CSRF token missing or wrong"


class NotFoundError(ServiceError):
    status, slug, title = 404, "not-found", "Not found"


class ConflictError(ServiceError):
    status, slug, title = 409, "conflict", "Conflict"


class PayloadTooLargeError(ServiceError):
    status, slug, title = 413, "payload-too-large", "Payload too large"


class UnsupportedMediaTypeError(ServiceError):
    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"


class PolicyError(ServiceError):
    """A well-formed request that our rules refuse (e.g. a classical key when PQ is required)."""

    status, slug, title = 422, "policy", "Refused by policy"


class ThrottledError(ServiceError):
    status, slug, title = 429, "too-many-requests", "Too many requests"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail, extra={"retry_after": retry_after})
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class RequestBodyTooLarge(StarletteHTTPException):
    """Raised while the body streams in, once it passes the limit.

    An HTTPException (not a ServiceError) because FastAPI re-raises those from
    body reading unchanged, where it would turn anything else into a 400.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, detail=f"request body over the limit of {limit} bytes")


def problem_response(
    status: int,
    *,
    slug: str | None = None,
    title: str | None = None,
    detail: str | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": problem_type(slug or _TYPE_BY_STATUS.get(status, "error")),
        "title": title or HTTPStatus(status).phrase,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if extra:
        body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    """``("body", "recipient")`` -> ``body.recipient``; list indexes kept."""
    return ".".join(str(part) for part in loc)


async def _validation_handler(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, RequestValidationError):
        raise TypeError("handler registered for RequestValidationError only")
    # Only the location, pydantic's message and its error code: never "input"
    # or "ctx", which may hold what the client sent (a password, a statement).
    errors = [
        {"field": _field_name(err.get("loc", ())), "message": str(err.get("msg", "")),
         "code": str(err.get("type", ""))}
        for err in exc.errors()
    ]
    fields = ", ".join(sorted({e["field"] for e in errors}))
    return problem_response(
        422, slug="validation", title="Validation failed",
        detail=f"invalid or missing field(s): {fields}", extra={"errors": errors},
    )


async def _http_exception_handler(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, StarletteHTTPException):
        raise TypeError("handler registered for HTTPException only")
    status = exc.status_code
    # Starlette's own details ("Not Found", "Method Not Allowed") are generic;
    # anything else might have been written carelessly, so only the phrase goes out.
    headers = dict(exc.headers or {})
    detail = exc.detail if isinstance(exc, RequestBodyTooLarge) else None
    return problem_response(status, headers=headers, detail=detail)


async def _service_error_handler(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, ServiceError):
        raise TypeError("handler registered for ServiceError only")
    if exc.status >= 500:
        log.error("service_error", error_type=type(exc).__name__)
    return problem_response(
        exc.status, slug=exc.slug, title=exc.title, detail=exc.detail,
        headers=exc.headers(), extra=exc.extra,
    )


def install_error_handlers(app: FastAPI) -> None:
    """Map every error to problem+json. Unexpected exceptions are handled by the
    request middleware (service/logging.py), which answers 500 without details."""
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_exception_handler)
    app.add_exception_handler(ServiceError, _service_error_handler)
