"""The hand-written OpenBase recipe in docs/formats/age-pq.md opens our stanzas.

A verifier written from the page alone must agree with the code: this test
follows the documented steps with bare primitives (no HPKE suite), so a wrong
label, order or length in the page fails here.
"""

from __future__ import annotations

import hashlib
import hmac

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from evidence_intake.crypto.age import bech32
from evidence_intake.crypto.age.format import b64_decode
from evidence_intake.crypto.age.mlkem768x25519 import HPKE_INFO, HybridIdentity

SUITE_ID = b"HPKE" + (0x647A).to_bytes(2, "big") + (1).to_bytes(2, "big") + (3).to_bytes(2, "big")
XWING_LABEL = bytes.fromhex("5c2e2f2f5e5c")


def _labeled_extract(salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return hmac.digest(salt or bytes(32), b"HPKE-v1" + SUITE_ID + label + ikm, "sha256")


def _labeled_expand(prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    labeled = length.to_bytes(2, "big") + b"HPKE-v1" + SUITE_ID + label + info
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.digest(prk, block + labeled + bytes((counter,)), "sha256")
        out += block
        counter += 1
    return out[:length]


def _open_by_hand(identity_string: str, enc: bytes, body: bytes) -> bytes:
    _, seed = bech32.decode(identity_string)
    expanded = hashlib.shake_256(seed).digest(96)
    decapsulation_key = mlkem.MLKEM768PrivateKey.from_seed_bytes(expanded[:64])
    x25519_key = x25519.X25519PrivateKey.from_private_bytes(expanded[64:])
    ct_m, ct_x = enc[:1088], enc[1088:]
    ss_m = decapsulation_key.decapsulate(ct_m)
    ss_x = x25519_key.exchange(x25519.X25519PublicKey.from_public_bytes(ct_x))
    public_x = x25519_key.public_key().public_bytes_raw()
    shared = hashlib.sha3_256(ss_m + ss_x + ct_x + public_x + XWING_LABEL).digest()
    context = (
        b"\x00"
        + _labeled_extract(b"", b"psk_id_hash", b"")
        + _labeled_extract(b"", b"info_hash", HPKE_INFO)
    )
    secret = _labeled_extract(shared, b"secret", b"")
    key = _labeled_expand(secret, b"key", context, 32)
    nonce = _labeled_expand(secret, b"base_nonce", context, 12)
    return ChaCha20Poly1305(key).decrypt(nonce, body, b"")


def test_documented_open_recovers_the_file_key() -> None:
    identity = HybridIdentity.generate()
    file_key = bytes(range(16))
    (stanza,) = identity.recipient.wrap(file_key)
    enc = b64_decode(stanza.args[0])
    assert _open_by_hand(str(identity), enc, stanza.body) == file_key


def test_documented_open_fails_for_another_identity() -> None:
    (stanza,) = HybridIdentity.generate().recipient.wrap(bytes(16))
    with pytest.raises(InvalidTag):
        _open_by_hand(str(HybridIdentity.generate()), b64_decode(stanza.args[0]), stanza.body)
