"""The STREAM payload: chunking, the last-chunk flag, and attacks on chunk order."""

from __future__ import annotations

import io
import os
import threading
import time

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from evidence_intake.crypto.age import stream
from evidence_intake.crypto.errors import PayloadError

KEY = bytes(range(32))
C = stream.CHUNK_SIZE
E = stream.ENCRYPTED_CHUNK_SIZE


def seal(data: bytes) -> bytes:
    out = io.BytesIO()
    stream.encrypt_stream(io.BytesIO(data), out, KEY)  # type: ignore[arg-type]
    return out.getvalue()


def open_(data: bytes) -> bytes:
    out = io.BytesIO()
    stream.decrypt_stream(io.BytesIO(data), out, KEY)  # type: ignore[arg-type]
    return out.getvalue()


@pytest.mark.parametrize("size", [0, 1, C - 1, C, C + 1, 2 * C, 2 * C + 7])
def test_sizes_and_ciphertext_length(size: int) -> None:
    data = os.urandom(size)
    sealed = seal(data)
    chunks = max(1, -(-size // C))
    assert len(sealed) == size + chunks * stream.TAG_SIZE
    assert open_(sealed) == data


def test_full_last_chunk_carries_the_last_flag() -> None:
    """A payload of exactly one chunk is one full chunk flagged last, not a full + empty one."""
    data = os.urandom(C)
    sealed = seal(data)
    aead = ChaCha20Poly1305(KEY)
    assert aead.decrypt(bytes(11) + b"\x01", sealed, None) == data


@pytest.mark.parametrize("size", [0, 5, C, C + 1, 3 * C - 1])
def test_writer_and_bulk_encryptor_agree(size: int) -> None:
    """Pushed writes in odd pieces give the same bytes as the bulk path."""
    data = os.urandom(size)
    out = io.BytesIO()
    writer = stream.StreamWriter(out, KEY)
    for i in range(0, size, 10_007):
        writer.write(data[i : i + 10_007])
    writer.close()
    assert out.getvalue() == seal(data)


def test_truncation_at_a_chunk_boundary_is_detected() -> None:
    sealed = seal(os.urandom(2 * C + 1))
    with pytest.raises(PayloadError):
        open_(sealed[: 2 * E])


def test_swapped_chunks_are_detected() -> None:
    sealed = seal(os.urandom(3 * C))
    swapped = sealed[E : 2 * E] + sealed[:E] + sealed[2 * E :]
    with pytest.raises(PayloadError):
        open_(swapped)


def test_appended_chunk_after_the_last_is_detected() -> None:
    sealed = seal(os.urandom(C))
    with pytest.raises(PayloadError):
        open_(sealed + sealed)


def test_reader_serves_small_reads_and_then_eof() -> None:
    data = os.urandom(C + 100)
    reader = stream.StreamReader(io.BytesIO(seal(data)), KEY)  # type: ignore[arg-type]
    got = bytearray()
    while piece := reader.read(4099):
        got += piece
    assert bytes(got) == data
    assert reader.read(10) == b""


def test_reader_keeps_failing_after_an_error() -> None:
    sealed = bytearray(seal(os.urandom(10)))
    sealed[0] ^= 1
    reader = stream.StreamReader(io.BytesIO(bytes(sealed)), KEY)  # type: ignore[arg-type]
    for _ in range(2):
        with pytest.raises(PayloadError):
            reader.read(1)


def test_payload_key_is_hkdf_of_file_key_and_nonce() -> None:
    key_a = stream.payload_key(bytes(16), bytes(16))
    key_b = stream.payload_key(bytes(16), b"\x01" + bytes(15))
    assert len(key_a) == 32
    assert key_a != key_b


def _slow_nonblocking_pipe(
    parts: list[bytes], pause: float = 0.2
) -> tuple[io.BufferedReader, threading.Thread]:
    """A read end with O_NONBLOCK, fed ``parts`` with a pause between them (a slow producer)."""
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)

    def produce() -> None:
        with os.fdopen(write_fd, "wb") as out:
            for part in parts:
                out.write(part)
                out.flush()
                time.sleep(pause)

    thread = threading.Thread(target=produce)
    thread.start()
    return os.fdopen(read_fd, "rb"), thread


@pytest.mark.parametrize("first", [100, C, C + 5])
def test_nonblocking_input_is_never_sealed_as_a_truncated_file(first: int) -> None:
    # Silent truncation: a would-block answer (None) from a slow non-blocking pipe
    # taken for end of input would flag an early chunk as the last one, and the
    # truncated file would authenticate. The whole input must be sealed.
    data = os.urandom(first + C + 3)
    src, thread = _slow_nonblocking_pipe([data[:first], data[first:]])
    out = io.BytesIO()
    with src:
        stream.encrypt_stream(src, out, KEY)
    thread.join()
    assert open_(out.getvalue()) == data
