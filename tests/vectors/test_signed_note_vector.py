"""The golang.org/x/mod/sumdb/note example: byte-for-byte signing and verifying.

Ed25519 is deterministic, so our signer must produce exactly the published
note from the published (test-only) key, and our verifier must accept it and
refuse any change to it.
"""

from __future__ import annotations

import pytest
from evidence_intake.audit.errors import InvalidSignatureError, NoteFormatError, UnknownKeyError
from evidence_intake.audit.note import NoteSigner, open_note, parse_vkey

# The published test key of the Go package documentation; a test key only.
SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
TEXT = ("If you think cryptography is the answer to your problem,\n"
        "then you don't know what your problem is.\n")
NOTE = TEXT + ("\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FF"
               "YC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n")


def test_signer_reproduces_the_published_note_byte_for_byte() -> None:
    signer = NoteSigner(SKEY)
    assert signer.verifier.vkey == VKEY
    assert signer.sign(TEXT).encode("utf-8") == NOTE.encode("utf-8")


def test_published_note_verifies_against_the_published_vkey() -> None:
    verifier = parse_vkey(VKEY)
    assert verifier.key_id.hex() == "c74f20a3"
    assert open_note(NOTE, verifier) == TEXT


def test_a_changed_text_is_a_forgery() -> None:
    with pytest.raises(InvalidSignatureError):
        open_note(NOTE.replace("cryptography", "cryptographY"), parse_vkey(VKEY))


def test_a_note_by_another_name_is_not_by_this_key() -> None:
    other = NOTE.replace("\u2014 PeterNeumann", "\u2014 PeterNeuman")
    with pytest.raises(UnknownKeyError):
        open_note(other, parse_vkey(VKEY))


def test_a_vkey_whose_id_does_not_match_is_refused() -> None:
    with pytest.raises(NoteFormatError):
        parse_vkey(VKEY.replace("c74f20a3", "c74f20a4"))
