"""The 19 hybrid post-quantum C2SP CCTV age vectors, through the public decrypt.

Each vector is a whole age file (binary or armored, sometimes zlib-compressed)
with the failure kind it must produce and the SHA-256 of the plaintext it may
release. The loader counts the hybrid vectors, so a vector folder that went
missing or changed fails here instead of quietly testing nothing.
"""

from __future__ import annotations

import hashlib
import io
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest
from evidence_intake.crypto import age
from evidence_intake.crypto.errors import (
    AgeError,
    ArmorError,
    HeaderError,
    HeaderMACError,
    NoIdentityMatchError,
    PayloadError,
)

HYBRID_VECTOR_COUNT = 19
VECTOR_DIR = (Path(__file__).resolve().parents[4] / "shared" / "vectors" / "age").resolve()

_KINDS: dict[str, type[AgeError] | None] = {
    "success": None,
    "no match": NoIdentityMatchError,
    "HMAC failure": HeaderMACError,
    "header failure": HeaderError,
    "payload failure": PayloadError,
    "armor failure": ArmorError,
}


@dataclass(frozen=True)
class Vector:
    name: str
    expect: str
    payload_sha256: str | None
    identities: tuple[str, ...]
    armored: bool
    file: bytes


def _load(path: Path) -> Vector:
    raw = path.read_bytes()
    head, sep, body = raw.partition(b"\n\n")
    if not sep:
        raise ValueError(f"{path.name}: no blank line after the vector header")
    fields: dict[str, list[str]] = {}
    for line in head.decode("utf-8").splitlines():
        key, _, value = line.partition(": ")
        fields.setdefault(key, []).append(value)
    if fields.get("compressed") == ["zlib"]:
        body = zlib.decompress(body)
    return Vector(
        name=path.name,
        expect=fields["expect"][0],
        payload_sha256=fields.get("payload", [None])[0],
        identities=tuple(fields.get("identity", [])),
        armored=fields.get("armored") == ["yes"],
        file=body,
    )


def _hybrid_vectors() -> list[Vector]:
    paths = sorted(p for p in VECTOR_DIR.iterdir() if "hybrid" in p.name)
    return [_load(p) for p in paths]


HYBRID = _hybrid_vectors() if VECTOR_DIR.is_dir() else []


def test_all_hybrid_vectors_are_loaded(shared_dir: Path) -> None:
    assert (shared_dir / "vectors" / "age").resolve() == VECTOR_DIR
    assert len(HYBRID) == HYBRID_VECTOR_COUNT
    # Every one needs our hybrid identity, so none can pass by being ignored.
    assert all(any(i.startswith("AGE-SECRET-KEY-PQ-1") for i in v.identities) for v in HYBRID)
    assert {v.expect for v in HYBRID} == {"success", "no match", "header failure"}


@pytest.mark.parametrize("vector", HYBRID, ids=lambda v: v.name)
def test_hybrid_vector(vector: Vector) -> None:
    identities = [age.parse_identity(text) for text in vector.identities]
    out = io.BytesIO()
    expected = _KINDS[vector.expect]
    if expected is None:
        age.decrypt(io.BytesIO(vector.file), out, identities)
    else:
        with pytest.raises(expected):
            age.decrypt(io.BytesIO(vector.file), out, identities)
    if vector.payload_sha256 is not None:
        assert hashlib.sha256(out.getvalue()).hexdigest() == vector.payload_sha256
    else:
        assert out.getvalue() == b""
