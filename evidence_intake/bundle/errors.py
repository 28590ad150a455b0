"""The bundle package's errors: one base class, one subclass per failure class.

Each failure class has its own exit code (``intake bundle verify`` returns it),
so that a script can tell an unsafe archive from a bad signature, a changed
file or broken audit evidence without reading the message. Every error names
the file or the audit entry it is about in ``subject``.
"""

from __future__ import annotations


class BundleError(Exception):
    """Base class of every error raised by ``evidence_intake.bundle``."""

    #: Exit code of ``intake bundle verify`` for this failure class.
    exit_code = 3
    #: Short machine name of the failure class, used in the JSON report.
    kind = "bundle"

    def __init__(self, message: str, *, subject: str | None = None) -> None:
        super().__init__(message)
        self.subject = subject


class ArchiveError(BundleError):
    """The zip archive is malformed or unsafe to extract (checked before anything is read)."""

    exit_code = 3
    kind = "archive"


class BundleSignatureError(BundleError):
    """A signature over the manifest or SHA256SUMS is invalid or made by another key."""

    exit_code = 4
    kind = "signature"


class ManifestError(BundleError):
    """The (signed) manifest is malformed, or is not a manifest this tool understands."""

    exit_code = 4
    kind = "manifest"


class ContentError(BundleError):
    """A file is missing, extra, or its size or SHA-256 differs from the manifest."""

    exit_code = 5
    kind = "content"


class EvidenceError(BundleError):
    """The audit evidence does not hold: checkpoint, inclusion proof or entry relation."""

    exit_code = 6
    kind = "audit"


class OutputError(BundleError):
    """The output directory is unusable (not empty, not a directory, a link)."""

    exit_code = 2
    kind = "output"
