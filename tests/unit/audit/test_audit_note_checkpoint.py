"""Signed notes and checkpoints: formats, key strings, and what gets refused."""

from __future__ import annotations

import base64
import hashlib

import pytest
from audit_samples import ORIGIN
from evidence_intake.audit.checkpoint import (
    Checkpoint,
    open_checkpoint,
    parse_unverified_checkpoint,
    sign_checkpoint,
)
from evidence_intake.audit.errors import (
    CheckpointFormatError,
    InvalidSignatureError,
    NoteFormatError,
    UnknownKeyError,
)
from evidence_intake.audit.note import (
    NoteSigner,
    NoteVerifier,
    generate_signer_key,
    key_id,
    open_note,
    parse_vkey,
)

ROOT = hashlib.sha256(b"root").digest()


def test_generated_keys_round_trip_and_commit_to_the_name() -> None:
    skey, vkey = generate_signer_key(ORIGIN)
    signer, verifier = NoteSigner(skey), parse_vkey(vkey)
    assert signer.verifier.vkey == vkey
    name, hex_id, blob = vkey.split("+", 2)
    raw = base64.b64decode(blob)
    assert (name, raw[0]) == (ORIGIN, 1)
    assert hex_id == key_id(ORIGIN, raw[1:]).hex() == hashlib.sha256(
        ORIGIN.encode() + b"\n\x01" + raw[1:]).hexdigest()[:8]
    assert open_note(signer.sign("hello\n"), verifier) == "hello\n"
    assert skey not in repr(signer)


def test_checkpoint_body_is_the_c2sp_layout(signer: NoteSigner, verifier: NoteVerifier) -> None:
    checkpoint = Checkpoint(ORIGIN, 42, ROOT)
    note = sign_checkpoint(checkpoint, signer)
    body = f"{ORIGIN}\n42\n{base64.b64encode(ROOT).decode()}\n"
    assert note.startswith(body + "\n\u2014 " + ORIGIN + " ")
    assert open_checkpoint(note, verifier) == checkpoint


def test_extension_lines_are_kept(signer: NoteSigner, verifier: NoteVerifier) -> None:
    checkpoint = Checkpoint(ORIGIN, 1, ROOT, ("time 2026-11-29T12:00:00Z",))
    assert open_checkpoint(sign_checkpoint(checkpoint, signer), verifier) == checkpoint


def test_a_checkpoint_of_another_origin_is_refused(verifier: NoteVerifier) -> None:
    other = NoteSigner(generate_signer_key("other.log")[0])
    with pytest.raises(UnknownKeyError):
        open_checkpoint(sign_checkpoint(Checkpoint("other.log", 1, ROOT), other), verifier)


def test_the_signature_is_checked_before_the_body_is_parsed(
        signer: NoteSigner, verifier: NoteVerifier) -> None:
    """A malformed body with a bad signature reports the signature, not the body."""
    note = sign_checkpoint(Checkpoint(ORIGIN, 1, ROOT), signer)
    broken = note.replace("\n1\n", "\n01\n", 1)
    with pytest.raises(InvalidSignatureError):
        open_checkpoint(broken, verifier)


@pytest.mark.parametrize("body", [
    f"{ORIGIN}\n01\n{base64.b64encode(ROOT).decode()}\n",
    f"{ORIGIN}\n-1\n{base64.b64encode(ROOT).decode()}\n",
    f"{ORIGIN}\n1\n{base64.b64encode(ROOT[:31]).decode()}\n",
    f"{ORIGIN}\n1\n",
    f"{ORIGIN}\n1\n{base64.b64encode(ROOT).decode().rstrip('=')}\n",
])
def test_malformed_checkpoint_bodies(body: str) -> None:
    with pytest.raises(CheckpointFormatError):
        parse_unverified_checkpoint(body)


@pytest.mark.parametrize("note", [
    "no blank line\n\u2014 x AAAA\n",
    "text\n\n- intake.test/audit AAAAAAAA\n",
    "text\n\n\u2014 intake.test/audit AAAAAAAA",
    "text\n\n",
])
def test_malformed_notes(note: str, verifier: NoteVerifier) -> None:
    with pytest.raises(NoteFormatError):
        open_note(note, verifier)


def test_non_canonical_base64_in_a_signature_is_refused(
        signer: NoteSigner, verifier: NoteVerifier) -> None:
    note = signer.sign("x\n")
    sig = note.rsplit(" ", 1)[1].strip()
    raw = base64.b64decode(sig)
    # Flip the unused low bits of the last base64 digit: same bytes, other text.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    stripped = sig.rstrip("=")
    last = alphabet.index(stripped[-1])
    tweaked = stripped[:-1] + alphabet[last | 1] + sig[len(stripped):]
    assert base64.b64decode(tweaked) == raw and tweaked != sig
    with pytest.raises(NoteFormatError):
        open_note(note.replace(sig, tweaked), verifier)


def test_other_signatures_are_ignored_but_a_bad_one_by_the_key_fails(
        signer: NoteSigner, verifier: NoteVerifier) -> None:
    witness = NoteSigner(generate_signer_key("witness.example")[0])
    note = signer.sign("x\n")
    cosigned = note + witness.sign("x\n").split("\n\n", 1)[1]
    assert open_note(cosigned, verifier) == "x\n"
    bad = note.replace(note.rsplit(" ", 1)[1].strip(),
                       base64.b64encode(verifier.key_id + b"\x00" * 64).decode())
    with pytest.raises(InvalidSignatureError):
        open_note(bad, verifier)


def test_signing_refuses_text_a_note_cannot_carry(signer: NoteSigner) -> None:
    for text in ("no newline", "blank\n\nline\n", "ctrl\x07\n"):
        with pytest.raises(NoteFormatError):
            signer.sign(text)
