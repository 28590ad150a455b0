"""Errors of the intake path, each with its HTTP status and stable problem type.

Only the HTTP layer turns them into RFC 9457 problem documents. Their messages
name fields, limits and ids; they never quote submitted content.
"""

from __future__ import annotations

from ..errors import ServiceError


class IntakeError(ServiceError):
    """Base class. ``slug`` is the stable last segment of the problem ``type`` URI.

    ``field`` (a dotted path such as ``record.sealed.consent.storage``) is sent
    as the problem's ``field`` member so a client can point at the input.
    """

    status = 400
    slug = "bad-request"
    title = "Bad request"

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail, extra={"field": field} if field else None)
        self.field = field


class MalformedBodyError(IntakeError):
    slug = "malformed-multipart"
    title = "The request body is not well-formed multipart/form-data"


class UploadAbortedError(IntakeError):
    """The client left (or fell silent) before the end of the body: nothing was stored."""

    slug = "upload-aborted"
    title = "The upload ended before the request was complete"

    def headers(self) -> dict[str, str]:
        # The rest of the body was never read: the connection cannot carry
        # another request, so it closes once this answer is sent.
        return {"Connection": "close"}


class UnsupportedMediaError(IntakeError):
    status = 415
    slug = "unsupported-media-type"
    title = "Unsupported media type"


class TooLargeError(IntakeError):
    status = 413
    slug = "payload-too-large"
    title = "The request exceeds a size limit"


class InvalidStatementError(IntakeError):
    status = 422
    slug = "invalid-statement"
    title = "The statement is invalid"


class NoConsentError(IntakeError):
    """The consent record does not allow sealing (no body answered yes, storage refused...)."""

    status = 422
    slug = "no-consent"
    title = "No consent, no seal"


class NoActiveKeyError(IntakeError):
    """A consented body has no active key: the statement could not reach it."""

    status = 422
    slug = "no-active-key"
    title = "A receiving body has no active key"


class StatementNotFoundError(IntakeError):
    status = 404
    slug = "statement-not-found"
    title = "No such statement"


class StatementStateError(IntakeError):
    """The statement's state forbids the operation (already withdrawn, amending a withdrawn one)."""

    status = 409
    slug = "statement-state-conflict"
    title = "The statement's state does not allow this"
