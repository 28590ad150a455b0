"""The custody report written beside the opened files (``custody-report.json`` and ``.html``).

It records, for a court, what the investigator's tool did: which bundle
(its SHA-256), who exported it and when, which keys verified it, every check
and its outcome, and for each item the ciphertext digest before decryption,
the plaintext digest after, where it was written, and the statement's audit
history with the inclusion proofs that were checked. When verification failed
and ``--force`` was used, both files say so at the top.

Everything quoted from the bundle is escaped in the HTML; the report holds
routing metadata and digests, never decrypted content.
"""

from __future__ import annotations

import hashlib
import html
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .opener import OpenResult
from .verify import Verification

REPORT_FORMAT = "evidence-intake/custody-report/v1"


def _file_sha256(path: Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def build_report(bundle_path: Path, verification: Verification, opened: OpenResult, *,
                 forced: bool, tool_version: str, log_key_name: str,
                 now: datetime | None = None) -> dict[str, Any]:
    manifest = verification.manifest
    evidence = verification.evidence
    report = verification.report
    statements = []
    if manifest is not None:
        for statement in manifest.statements:
            history = []
            if evidence is not None:
                for entry in evidence.about(statement.id):
                    history.append({
                        "seq": entry.seq, "time": entry.fields.get("time"),
                        "actor": entry.fields.get("actor"), "action": entry.action,
                        "entry_sha256": entry.entry_hash,
                        "inclusion_proof_verified": entry.proved})
            statements.append({"id": statement.id, "key_kind": statement.key_kind,
                               "routing": dict(statement.routing), "audit_history": history})
    export_entry = None
    if manifest is not None and evidence is not None:
        logged = evidence.entries.get(manifest.export_entry_seq)
        if logged is not None:
            export_entry = {"seq": logged.seq, "time": logged.fields.get("time"),
                            "actor": logged.fields.get("actor"), "action": logged.action,
                            "entry_sha256": logged.entry_hash,
                            "inclusion_proof_verified": logged.proved}
    return {
        "format": REPORT_FORMAT,
        "generated": (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "tool": f"evidence-intake {tool_version}",
        "verification": {
            "verified": report.ok,
            "forced": forced,
            "warning": ("VERIFICATION FAILED: opened only because --force was given; "
                        "do not rely on these files") if forced and not report.ok else "",
            "checks_passed": sum(1 for check in report.checks if check.ok),
            "failures": [{"check": c.name, "subject": c.subject, "detail": c.detail,
                          "class": c.kind} for c in report.failures],
        },
        "bundle": {
            "file": bundle_path.name,
            "sha256": _file_sha256(bundle_path),
            "bundle_id": manifest.bundle_id if manifest else None,
            "created": manifest.created if manifest else None,
            "exported_by": manifest.created_by if manifest else None,
            "receiving_body": ({"id": manifest.body_id, "name": manifest.body_name,
                                "key_kind": manifest.key_kind} if manifest else None),
            "node_key_pinned": report.facts.get("node_key_id"),
            "log_key_pinned": log_key_name,
        },
        "checkpoint": ({"origin": evidence.origin, "tree_size": evidence.tree_size,
                        "root_hash": evidence.root_hash,
                        "signature_verified": evidence.checkpoint_ok}
                       if evidence is not None else None),
        "export_entry": export_entry,
        "items": [{
            "statement_id": item.statement_id, "kind": item.kind,
            "bundle_path": item.bundle_path, "status": item.status,
            "ciphertext_size": item.ciphertext_size,
            "ciphertext_sha256": item.ciphertext_sha256,
            "ciphertext_sha256_read": item.ciphertext_sha256_read,
            "output": item.output, "plaintext_size": item.plaintext_size if item.ok else None,
            "plaintext_sha256": item.plaintext_sha256 if item.ok else None,
            "declared_plaintext_sha256": item.declared_sha256 or None,
        } for item in opened.items],
        "statements": statements,
    }


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "&ndash;"
    return f"<code>{html.escape(str(value))}</code>" if isinstance(value, str) and len(
        value) == 64 else html.escape(str(value))


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(row.get(c))}</td>" for c in columns) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(doc: dict[str, Any]) -> str:
    verification = doc["verification"]
    bundle = doc["bundle"]
    banner = ""
    if verification["warning"]:
        banner = f'<p class="warn"><strong>{html.escape(verification["warning"])}</strong></p>'
    status = "VERIFIED" if verification["verified"] else "NOT VERIFIED"
    facts = [{"field": k, "value": v} for k, v in bundle.items() if not isinstance(v, dict)]
    if bundle.get("receiving_body"):
        facts.append({"field": "receiving_body", "value":
                      f"{bundle['receiving_body']['name']} ({bundle['receiving_body']['id']})"})
    if doc.get("checkpoint"):
        facts.extend({"field": f"checkpoint {k}", "value": v} for k, v in doc["checkpoint"].items())
    if doc.get("export_entry"):
        facts.extend({"field": f"export entry {k}", "value": v}
                     for k, v in doc["export_entry"].items())
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Custody report {html.escape(str(bundle.get('bundle_id')))}</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;"
        "margin-bottom:1.5em}td,th{border:1px solid #999;padding:.3em .5em;text-align:left;"
        "vertical-align:top}code{font-size:.85em;word-break:break-all}.warn{background:#fdd;"
        "border:2px solid #a00;padding:1em}</style></head><body>",
        banner,
        f"<h1>Custody report: {html.escape(status)}</h1>",
        f"<p>Generated {html.escape(doc['generated'])} by {html.escape(doc['tool'])}; "
        f"{verification['checks_passed']} checks passed, "
        f"{len(verification['failures'])} failed.</p>",
        "<h2>Bundle</h2>", _table(facts, ["field", "value"]),
    ]
    if verification["failures"]:
        parts += ["<h2>Failed checks</h2>",
                  _table(verification["failures"], ["check", "subject", "detail", "class"])]
    parts += ["<h2>Items</h2>", _table(doc["items"], [
        "statement_id", "kind", "bundle_path", "status", "ciphertext_sha256",
        "ciphertext_sha256_read", "plaintext_sha256", "declared_plaintext_sha256", "output"])]
    for statement in doc["statements"]:
        parts += [f"<h2>Statement {html.escape(statement['id'])}: audit history</h2>",
                  _table(statement["audit_history"], [
                      "seq", "time", "actor", "action", "entry_sha256",
                      "inclusion_proof_verified"])]
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_reports(out_dir: Path, doc: dict[str, Any]) -> None:
    """Write custody-report.json and .html into ``out_dir`` (exclusive creation)."""
    text = json.dumps(doc, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    for name, data in (("custody-report.json", text), ("custody-report.html", render_html(doc))):
        with open(out_dir / name, "x", encoding="utf-8") as handle:
            handle.write(data)
