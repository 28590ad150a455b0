"""Structured logs (structlog, JSON lines) with redaction, and the request middleware.

Threat model: logs are copied, shipped and kept far longer than anyone plans,
and read by people who must not see statements or credentials. So:

- events carry ids, sizes, digests, fingerprints, never content;
- a redaction processor runs on *every* event, including the standard-library
  records of uvicorn and SQLAlchemy: fields whose names suggest a secret or
  content are masked, secret-looking strings anywhere are masked, long strings
  are dropped (a statement pasted into a field is long);
- exceptions are logged as their type and frames only: an exception message
  may quote input (pydantic does), so it is never written;
- the query string and headers are never logged.

``configure_logging`` is called once per process, by ``create_app``.
"""

from __future__ import annotations

import logging
import re
import secrets
import sys
import time
import traceback
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .settings import Settings

REDACTED = "[redacted]"
MAX_LOGGED_STRING = 512

# Field names (lower-cased) whose values are never logged.
_SECRET_NAME_PARTS = (
    "password", "passphrase", "secret", "token", "authorization", "cookie", "csrf",
    "credential", "private", "plaintext", "signing_key", "identity",
)
_CONTENT_NAMES = frozenset({
    "text", "content", "body", "data", "statement", "record", "filename", "file_name",
    "query", "query_string", "headers", "input", "value", "values", "form", "json",
    "username_attempted", "sealed", "witness",
})
# Secret-looking values, wherever they appear (even inside the event text).
_SECRET_VALUE = re.compile(
    r"AGE-SECRET-KEY-(?:PQ-)?1[0-9A-Z]+"          # age identities
    r"|eit_[A-Za-z0-9_-]{16,}"                      # our API tokens
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/=-]+"           # any bearer credential
    r"|(?i:__Host-)?intake_session=[^;\s]+"         # our session cookie
)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
# Sent with every response unless the route set its own. API answers hold
# account and case metadata: no caching, no sniffing, no framing, no referrer.
_SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
)


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        if len(value) > MAX_LOGGED_STRING:
            return f"[dropped: {len(value)} chars]"
        return _SECRET_VALUE.sub(REDACTED, value)
    if isinstance(value, bytes | bytearray | memoryview):
        return f"[dropped: {len(value)} bytes]"
    if isinstance(value, Mapping):
        return {k: _redact_field(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact_value(v) for v in value]
    return value


def _redact_field(name: str, value: Any) -> Any:
    lowered = name.lower()
    # Database ids and counts are never secrets, even of secret things (token_id).
    is_id = lowered.endswith(("_id", "_ids", "_count"))
    if lowered in _CONTENT_NAMES or (
            not is_id and any(part in lowered for part in _SECRET_NAME_PARTS)):
        return REDACTED
    return _redact_value(value)


def _exception_summary(exc_info: Any) -> dict[str, Any] | None:
    if exc_info is True:
        exc_info = sys.exc_info()
    if isinstance(exc_info, BaseException):
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    if not isinstance(exc_info, tuple) or exc_info[0] is None:
        return None
    exc_type, _exc, tb = exc_info
    frames = [f"{frame.filename}:{frame.lineno} in {frame.name}"
              for frame in traceback.extract_tb(tb)[-12:]]
    return {"type": f"{exc_type.__module__}.{exc_type.__qualname__}", "frames": frames}


def redact(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """The redaction processor: the last word before an event is rendered."""
    exc_info = event_dict.pop("exc_info", None)
    event_dict.pop("exception", None)
    event_dict.pop("stack", None)
    out: dict[str, Any] = {}
    for key, value in event_dict.items():
        if key == "event":
            out[key] = _redact_value(str(value))
        elif key.startswith("_"):
            continue  # ProcessorFormatter's private fields (the raw record)
        else:
            out[key] = _redact_field(key, value)
    summary = _exception_summary(exc_info) if exc_info else None
    if summary is not None:
        out["exception"] = summary
    return out


class _StderrLogger:
    """Writes each rendered line to the *current* ``sys.stderr`` (so tests can capture it)."""

    def msg(self, message: str) -> None:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


def _logger_factory(*_args: Any) -> _StderrLogger:
    return _StderrLogger()


def configure_logging(settings: Settings) -> None:
    """Configure structlog and the standard library's logging for this process."""
    level = logging.getLevelName(settings.log_level.upper())
    if not isinstance(level, int):
        level = logging.INFO
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer(sort_keys=True) if settings.log_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, redact, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=_logger_factory,
        cache_logger_on_first_use=False,
    )
    # uvicorn, SQLAlchemy and the rest log through the standard library: send
    # their records through the same redaction and renderer.
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[redact, renderer],
    )
    handler = _CurrentStderrHandler()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        if isinstance(old, _CurrentStderrHandler):
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    # uvicorn's access line carries the raw path with its query string and the
    # client address; RequestMiddleware logs each request without either.
    logging.getLogger("uvicorn.access").disabled = True


class _CurrentStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def _route_template(scope: Scope) -> str | None:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else None


class RequestMiddleware:
    """Pure ASGI middleware (streams pass through untouched) that, per request:

    1. assigns a request id (a well-formed incoming ``X-Request-ID`` is kept),
       binds it to the log context and returns it in the response;
    2. answers 413 before reading the body when ``Content-Length`` exceeds the
       limit, and stops a streamed body that grows past it;
    3. turns any unhandled exception into a bare 500 problem (no details) and
       logs the exception type and frames only;
    4. logs one ``request`` event: method, route template, status, duration,
       account id (never the query string or headers).
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.max_request = settings.max_request_bytes
        self.max_json = settings.max_json_bytes
        self.log = structlog.get_logger("evidence_intake.service.request")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from .errors import RequestBodyTooLarge, problem_response

        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        incoming = headers.get("x-request-id", "")
        request_id = incoming if _REQUEST_ID.match(incoming) else secrets.token_hex(12)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        started = time.perf_counter()
        status_holder = {"status": 0}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(b"x-request-id", request_id.encode("ascii"))]
                extra += [(k, v) for k, v in _SECURITY_HEADERS if k not in present]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        limit = self.max_json if content_type.endswith("json") else self.max_request
        try:
            declared = int(headers.get("content-length", "0") or 0)
        except ValueError:
            declared = -1
        try:
            if declared < 0:
                response = problem_response(400, detail="malformed Content-Length")
                await response(scope, receive, send_wrapper)
            elif declared > limit:
                response = problem_response(
                    413, detail=f"request body over the limit of {limit} bytes")
                await response(scope, receive, send_wrapper)
            else:
                received = 0

                async def limited_receive() -> Message:
                    nonlocal received
                    message = await receive()
                    if message["type"] == "http.request":
                        received += len(message.get("body", b""))
                        if received > limit:
                            raise RequestBodyTooLarge(limit)
                    return message

                await self.app(scope, limited_receive, send_wrapper)
        except Exception as err:
            self.log.error("unhandled_exception", exc_info=err, route=_route_template(scope))
            if status_holder["status"] == 0:
                response = problem_response(500, detail="internal error; quote the request id",
                                            extra={"request_id": request_id})
                await response(scope, receive, send_wrapper)
            else:
                raise
        finally:
            self.log.info(
                "request",
                method=scope.get("method"),
                route=_route_template(scope),
                status=status_holder["status"],
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
                account_id=state.get("account_id"),
            )
            structlog.contextvars.clear_contextvars()
