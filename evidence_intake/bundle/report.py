"""The verification report: every check the verifier ran, passed or failed.

Each failed check names its subject (a file path in the bundle, or an audit
entry as ``entry N``) and its failure class, whose exit code the CLI returns.
The report is printed as text for people and as JSON (``--json``) for
machines; both carry the same facts.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import BundleError

EXIT_CODES = {
    "archive": 3,
    "signature": 4,
    "manifest": 4,
    "content": 5,
    "audit": 6,
}


@dataclass(frozen=True)
class Check:
    """One check: what was checked (``name``), on what (``subject``), and the outcome."""

    name: str
    subject: str
    ok: bool
    detail: str = ""
    kind: str = ""


@dataclass
class Report:
    bundle: str
    tool_version: str
    checks: list[Check] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def passed(self, name: str, subject: str, detail: str = "") -> None:
        self.checks.append(Check(name=name, subject=subject, ok=True, detail=detail))

    def failed(self, name: str, err: BundleError) -> None:
        self.checks.append(Check(name=name, subject=err.subject or "", ok=False,
                                 detail=str(err), kind=err.kind))

    @property
    def failures(self) -> list[Check]:
        return [check for check in self.checks if not check.ok]

    @property
    def ok(self) -> bool:
        return bool(self.checks) and not self.failures

    @property
    def exit_code(self) -> int:
        """0 if every check passed, else the code of the first failure's class."""
        failures = self.failures
        if not failures:
            return 0
        return EXIT_CODES.get(failures[0].kind, 3)

    def to_json(self) -> dict[str, Any]:
        return {
            "bundle": self.bundle,
            "verified": self.ok,
            "exit_code": self.exit_code,
            "tool_version": self.tool_version,
            "facts": self.facts,
            "failures": [asdict(check) for check in self.failures],
            "checks": [asdict(check) for check in self.checks],
        }

    def to_text(self, *, verbose: bool = False) -> str:
        lines = [f"bundle: {self.bundle}"]
        for key in ("bundle_id", "created", "created_by", "receiving_body", "statements",
                    "files", "log_origin", "tree_size", "node_key_id"):
            if key in self.facts:
                lines.append(f"{key.replace('_', ' ')}: {self.facts[key]}")
        passed = [check for check in self.checks if check.ok]
        lines.append(f"checks passed: {len(passed)}")
        if verbose:
            lines.extend(f"  ok   {c.name}: {c.subject}" + (f" ({c.detail})" if c.detail else "")
                         for c in passed)
        for check in self.failures:
            lines.append(f"  FAIL {check.name}: {check.subject or '-'}: {check.detail}")
        lines.append("result: VERIFIED" if self.ok else
                     f"result: FAILED ({len(self.failures)} problem(s))")
        return "\n".join(lines) + "\n"

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"
