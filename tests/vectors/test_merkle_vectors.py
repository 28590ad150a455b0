"""RFC 9162 proof verification against transparency-dev/merkle's test data.

../shared/vectors/merkle holds 196 JSON cases: 12 proofs that must verify and
184 deliberately broken ones that must be refused. The loader counts both, so
a missing folder fails instead of passing vacuously.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from evidence_intake.audit.errors import InvalidProofError
from evidence_intake.audit.merkle import verify_consistency, verify_inclusion

EXPECTED_VALID = 12
EXPECTED_INVALID = 184
VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors" / "merkle"


def _load() -> list[tuple[str, dict[str, object]]]:
    cases = []
    for path in sorted(VECTORS.rglob("*.json")):
        cases.append((str(path.relative_to(VECTORS)), json.loads(path.read_text("utf-8"))))
    return cases


CASES = _load()


def _b64(value: object) -> bytes:
    assert isinstance(value, str)
    return base64.b64decode(value)


def _proof(value: object) -> list[bytes]:
    assert value is None or isinstance(value, list)
    return [_b64(h) for h in value or []]


def test_every_vector_was_loaded(shared_dir: Path) -> None:
    assert (shared_dir / "vectors" / "merkle").is_dir()
    valid = sum(1 for _, case in CASES if case["wantErr"] is False)
    invalid = sum(1 for _, case in CASES if case["wantErr"] is True)
    assert (valid, invalid) == (EXPECTED_VALID, EXPECTED_INVALID)
    kinds = {name.split("/")[0] for name, _ in CASES}
    assert kinds == {"inclusion", "consistency"}


def _run(case: dict[str, object]) -> None:
    if "leafIdx" in case:
        verify_inclusion(_b64(case["leafHash"]), int(str(case["leafIdx"])),
                         int(str(case["treeSize"])), _proof(case["proof"]), _b64(case["root"]))
    else:
        verify_consistency(int(str(case["size1"])), int(str(case["size2"])),
                           _proof(case["proof"]), _b64(case["root1"]), _b64(case["root2"]))


@pytest.mark.parametrize(("name", "case"), [c for c in CASES if c[1]["wantErr"] is False],
                         ids=[c[0] for c in CASES if c[1]["wantErr"] is False])
def test_valid_proof_verifies(name: str, case: dict[str, object]) -> None:
    _run(case)


@pytest.mark.parametrize(("name", "case"), [c for c in CASES if c[1]["wantErr"] is True],
                         ids=[c[0] for c in CASES if c[1]["wantErr"] is True])
def test_broken_proof_is_refused(name: str, case: dict[str, object]) -> None:
    with pytest.raises(InvalidProofError):
        _run(case)
