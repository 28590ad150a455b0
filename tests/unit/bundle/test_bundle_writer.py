"""The writer's output: stored members, sequential layout, ZIP64, manifest schema, blob checks."""

from __future__ import annotations

import json
import subprocess
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from bundle_factory import make_bundle
from evidence_intake.audit.note import parse_vkey
from evidence_intake.service.exports import writer

from evidence_intake.bundle import manifest as fmt
from evidence_intake.bundle.verify import verify_path

SCHEMA = Path(__file__).resolve().parents[3] / "schemas" / "manifest.v1.json"


def test_members_are_stored_read_only_files_in_a_fixed_order(tmp_path: Path) -> None:
    fx = make_bundle(tmp_path, statements=2, attachments=2)
    with zipfile.ZipFile(fx.path) as zf:
        infos = zf.infolist()
    assert {i.compress_type for i in infos} == {zipfile.ZIP_STORED}
    assert {i.external_attr >> 16 for i in infos} == {0o100444}
    names = [i.filename for i in infos]
    assert names[-8:] == [fmt.CHECKPOINT, fmt.ENTRIES, fmt.PROOFS, fmt.README, fmt.MANIFEST,
                          fmt.MANIFEST_SIG, fmt.SUMS, fmt.SUMS_SIG]
    assert names[:2] == [fmt.statement_path(fx.statements[0].id),
                         fmt.attachment_path(fx.statements[0].id, 0)]
    test = subprocess.run(["unzip", "-tq", str(fx.path)], capture_output=True, text=True,
                          check=False)
    assert test.returncode == 0, test.stdout + test.stderr


def test_zip64_members_verify_and_unzip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer, "ZIP64_THRESHOLD", 0)
    fx = make_bundle(tmp_path, statements=1, attachments=1)
    with zipfile.ZipFile(fx.path) as zf:
        sealed = zf.getinfo(fmt.statement_path(fx.statements[0].id))
    assert sealed.extract_version >= zipfile.ZIP64_VERSION
    archive, result = verify_path(fx.path, fx.node_key.public_key, parse_vkey(fx.log_vkey),
                                  tool_version="t")
    assert archive is not None
    archive.close()
    assert result.report.ok, result.report.to_text()
    assert subprocess.run(["unzip", "-tq", str(fx.path)], capture_output=True,
                          check=False).returncode == 0


def _schema_keys(schema: dict[str, Any], node: dict[str, Any], value: Any, where: str) -> None:
    """Every object in ``value`` has exactly the schema's required keys (all are required)."""
    if "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
    if node.get("type") == "object" and "properties" in node:
        assert isinstance(value, dict), where
        assert set(value) == set(node["properties"]) == set(node["required"]), where
        for key, sub in node["properties"].items():
            _schema_keys(schema, sub, value[key], f"{where}.{key}")
    elif node.get("type") == "array" and "items" in node:
        for index, item in enumerate(value):
            _schema_keys(schema, node["items"], item, f"{where}[{index}]")


def test_manifest_matches_its_json_schema(tmp_path: Path) -> None:
    fx = make_bundle(tmp_path, statements=2, attachments=1)
    with zipfile.ZipFile(fx.path) as zf:
        manifest = json.loads(zf.read(fmt.MANIFEST))
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    _schema_keys(schema, schema, manifest, "manifest")
    assert manifest["format"] == schema["properties"]["format"]["const"]


def test_a_blob_changed_since_sealing_aborts_the_export(tmp_path: Path) -> None:
    fx = make_bundle(tmp_path, statements=1, attachments=0)
    blob = tmp_path / "changed.age"
    blob.write_bytes(b"age-encryption.org/v1\n-> X25519 tampered\n")
    source = writer.SealedSource(path=fmt.statement_path("s1"), size=blob.stat().st_size,
                                 sha256="0" * 64, open=lambda: blob.open("rb"))
    spec = writer.StatementSpec(id="s1", key_kind="x25519", routing={}, audit_seqs=(),
                                statement=source)
    target = tmp_path / "out.zip"
    with pytest.raises(writer.BundleWriteError):
        writer.write_bundle(
            target, header=writer.BundleHeader(bundle_id="b", created=datetime(2026, 1, 1),
                                               created_by="a", generator="t",
                                               body={"id": "x", "name": "x"}),
            node_key=fx.node_key,
            audit=writer.AuditMaterial(checkpoint_note="", origin="o", tree_size=1,
                                       root_hash=bytes(32), entries=[], proofs={},
                                       export_entry_seq=0),
            statements=[spec])
    assert list(tmp_path.glob("*out.zip*")) == []  # no partial bundle left behind
