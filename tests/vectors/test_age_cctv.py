"""Every C2SP CCTV age vector in ../shared/vectors/age, each with its failure kind.

A vector names the expected outcome (``expect``) and the SHA-256 of all
plaintext released before success *or* failure (``payload``), which pins down
how much an implementation hands out before it notices a broken chunk. Both
are checked. The hybrid post-quantum vectors are skipped by name until the
``mlkem768x25519`` module exists; then they run like the others.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from evidence_intake.crypto import errors
from evidence_intake.crypto.age import decrypt, parse_identity
from evidence_intake.crypto.age.scrypt import ScryptIdentity
from evidence_intake.crypto.age.stanza import Identity

EXPECTED_COUNT = 143
ARMOR_BEGIN = b"-----BEGIN AGE ENCRYPTED FILE-----"
EXPECT_KINDS: dict[str, type[errors.AgeError] | None] = {
    "success": None,
    "no match": errors.NoIdentityMatchError,
    "HMAC failure": errors.HeaderMACError,
    "header failure": errors.HeaderError,
    "payload failure": errors.PayloadError,
    "armor failure": errors.ArmorError,
}
KNOWN_KEYS = {"expect", "payload", "file key", "identity", "passphrase", "armored",
              "compressed", "comment"}

PQ_AVAILABLE = importlib.util.find_spec("evidence_intake.crypto.age.mlkem768x25519") is not None
# The hybrid vectors need ML-KEM-768 (issue 6); listed by name, not by pattern,
# so that a vector that should run can never be skipped by accident.
PQ_VECTORS = frozenset({
    "armor_hybrid", "hybrid", "hybrid_and_x25519", "hybrid_bad_tag",
    "hybrid_currupted_enc_mlkem", "hybrid_currupted_enc_x25519", "hybrid_extra_argument",
    "hybrid_grease", "hybrid_identity", "hybrid_long_file_key", "hybrid_long_share",
    "hybrid_low_order", "hybrid_multiple_recipients", "hybrid_no_match",
    "hybrid_not_canonical_body", "hybrid_not_canonical_enc", "hybrid_short_share",
    "hybrid_uppercase", "hybrid_x25519_arg",
})
PQ_SKIP_REASON = "hybrid mlkem768x25519 recipients: crypto/age/mlkem768x25519.py not present yet"


@dataclass
class Vector:
    name: str
    expect: str
    payload_sha256: str
    identities: list[str] = field(default_factory=list)
    passphrases: list[str] = field(default_factory=list)
    armored: bool = False
    body: bytes = b""


def _parse(path: Path) -> Vector:
    data = path.read_bytes()
    head, _, body = data.partition(b"\n\n")
    fields: list[tuple[str, str]] = []
    for line in head.decode("utf-8").splitlines():
        key, _, value = line.partition(": ")
        fields.append((key, value))
    unknown = {k for k, _ in fields} - KNOWN_KEYS
    assert not unknown, f"{path.name}: unknown keys {unknown}"
    values = dict(fields)
    if values.get("compressed") == "zlib":
        body = zlib.decompress(body)
    return Vector(
        name=path.name,
        expect=values["expect"],
        # Without a payload field nothing may be released at all.
        payload_sha256=values.get("payload", hashlib.sha256(b"").hexdigest()),
        identities=[v for k, v in fields if k == "identity"],
        passphrases=[v for k, v in fields if k == "passphrase"],
        armored=values.get("armored") == "yes",
        body=body,
    )


def _load(shared: Path) -> list[Vector]:
    folder = shared / "vectors" / "age"
    vectors = [_parse(p) for p in sorted(folder.iterdir()) if p.name != "README.md"]
    assert len(vectors) == EXPECTED_COUNT, f"loaded {len(vectors)} age vectors from {folder}"
    return vectors


def _vector_names() -> list[str]:
    # Collection needs the names before fixtures exist; same folder as shared_dir.
    folder = Path(__file__).resolve().parents[3] / "shared" / "vectors" / "age"
    names = sorted(p.name for p in folder.iterdir() if p.name != "README.md")
    assert len(names) == EXPECTED_COUNT, f"found {len(names)} age vectors"
    return names


def test_vector_count(shared_dir: Path) -> None:
    vectors = _load(shared_dir)
    assert {v.expect for v in vectors} == set(EXPECT_KINDS)
    assert {v.name for v in vectors} >= PQ_VECTORS


class _Recorder(io.RawIOBase):
    """Hashes everything the decryptor releases, as the vectors' payload field does."""

    def __init__(self) -> None:
        super().__init__()
        self.digest = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.digest.update(data)
        return len(data)


@pytest.mark.parametrize("name", _vector_names())
def test_cctv_vector(name: str, shared_dir: Path) -> None:
    if name in PQ_VECTORS and not PQ_AVAILABLE:
        pytest.skip(PQ_SKIP_REASON)
    vector = _parse(shared_dir / "vectors" / "age" / name)
    identities: list[Identity] = [parse_identity(s) for s in vector.identities]
    identities += [ScryptIdentity(p) for p in vector.passphrases]
    out = _Recorder()
    kind = EXPECT_KINDS[vector.expect]
    src = io.BytesIO(vector.body)
    if kind is None:
        decrypt(src, out, identities, armored=vector.armored)  # type: ignore[arg-type]
    else:
        with pytest.raises(kind):
            decrypt(src, out, identities, armored=vector.armored)  # type: ignore[arg-type]
    assert out.digest.hexdigest() == vector.payload_sha256


@pytest.mark.parametrize("name", [n for n in _vector_names() if n.startswith("armor")])
def test_cctv_armor_autodetected(name: str, shared_dir: Path) -> None:
    """Armored vectors give the same outcome when armor is detected, not declared."""
    if name in PQ_VECTORS and not PQ_AVAILABLE:
        pytest.skip(PQ_SKIP_REASON)
    vector = _parse(shared_dir / "vectors" / "age" / name)
    if vector.expect == "armor failure" and not vector.body.lstrip().startswith(ARMOR_BEGIN):
        # Without the BEGIN line the input is not armor at all, so auto-detection
        # reads it as a binary age file and reports a header failure instead.
        expected: type[errors.AgeError] | None = errors.HeaderError
    else:
        expected = EXPECT_KINDS[vector.expect]
    identities: list[Identity] = [parse_identity(s) for s in vector.identities]
    identities += [ScryptIdentity(p) for p in vector.passphrases]
    out = _Recorder()
    if expected is None:
        decrypt(io.BytesIO(vector.body), out, identities)  # type: ignore[arg-type]
    else:
        with pytest.raises(expected):
            decrypt(io.BytesIO(vector.body), out, identities)  # type: ignore[arg-type]
