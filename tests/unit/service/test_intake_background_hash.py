"""The plaintext SHA-256 computed on a thread of its own: same digest, bounded, stops."""

from __future__ import annotations

import gc
import hashlib
import os
import threading
import time

import pytest
from evidence_intake.service.intake import background_hash
from evidence_intake.service.intake.background_hash import BackgroundSha256, LendableBuffer


def _hasher_threads() -> int:
    return sum(thread.name == "plaintext-sha256" for thread in threading.enumerate())


def _wait_for_threads(count: int) -> bool:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if _hasher_threads() == count:
            return True
        time.sleep(0.01)
    return False


def test_the_digest_is_sha256_of_every_update_in_order() -> None:
    before = _hasher_threads()
    ours = BackgroundSha256()
    reference = hashlib.sha256()
    for index in range(60):
        chunk = os.urandom(100_000 + index)
        # Views of bytes may be queued; a bytearray is hashed at once, after the queue.
        data: bytes | bytearray | memoryview = (
            bytearray(chunk) if index % 7 == 3 else memoryview(chunk)[1:])
        ours.update(data)
        reference.update(data)
        if isinstance(data, bytearray):
            data[:] = bytes(len(data))  # the caller reuses its buffer: must not matter
    assert _hasher_threads() == before + 1
    assert ours.hexdigest() == reference.hexdigest()
    assert _wait_for_threads(before)


def test_a_small_stream_starts_no_thread() -> None:
    before = _hasher_threads()
    ours = BackgroundSha256()
    data = os.urandom(background_hash.INLINE_BYTES - 1)
    ours.update(data)
    assert _hasher_threads() == before
    assert ours.hexdigest() == hashlib.sha256(data).hexdigest()


def test_dropping_an_unfinished_hash_stops_its_thread() -> None:
    before = _hasher_threads()
    ours = BackgroundSha256()
    for _ in range(3):
        ours.update(os.urandom(1 << 20))
    assert _hasher_threads() == before + 1
    del ours
    gc.collect()
    assert _wait_for_threads(before)


def _past_inline() -> tuple[BackgroundSha256, hashlib._Hash]:
    """A hash fed its first INLINE_BYTES (so later updates may be queued), and the reference."""
    ours = BackgroundSha256()
    reference = hashlib.sha256()
    first = os.urandom(background_hash.INLINE_BYTES)
    ours.update(first)
    reference.update(first)
    return ours, reference


def test_a_caller_releasing_its_view_does_not_change_the_digest() -> None:
    ours, reference = _past_inline()
    for _ in range(3 * background_hash.QUEUED_UPDATES):
        data = os.urandom(1000)
        view = memoryview(data)
        ours.update(view)
        reference.update(data)
        view.release()  # the queued update holds a view of its own
    assert ours.hexdigest() == reference.hexdigest()


class _Failing:
    def update(self, data: object) -> None:
        raise OSError("hash failed")


def _failing_hash() -> BackgroundSha256:
    """A hash past its inline start whose every later update fails on the thread."""
    ours = BackgroundSha256()
    ours.update(os.urandom(background_hash.INLINE_BYTES))
    ours._digest = _Failing()  # type: ignore[assignment]
    return ours


def test_an_error_on_the_thread_is_raised_by_hexdigest_and_nothing_blocks() -> None:
    ours = _failing_hash()
    for _ in range(3 * background_hash.QUEUED_UPDATES):  # more than the queue holds
        ours.update(os.urandom(1000))
    with pytest.raises(OSError, match="hash failed"):
        ours.hexdigest()


class _HeldDigest:
    """A digest whose updates wait until the test sets ``go``: the loans stay out till then."""

    def __init__(self, digest: hashlib._Hash, go: threading.Event) -> None:
        self._digest = digest
        self._go = go

    def update(self, data: memoryview) -> None:
        self._go.wait(5)
        self._digest.update(data)

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def test_a_lendable_buffer_is_queued_without_a_copy_and_given_back_once_hashed() -> None:
    ours, reference = _past_inline()
    buffers = [LendableBuffer(1 << 20) for _ in range(3)]
    hashed = threading.Event()
    ours._digest = _HeldDigest(ours._digest, hashed)  # type: ignore[assignment]
    for index, buffer in enumerate(buffers):
        buffer[:] = os.urandom(len(buffer))
        view = memoryview(buffer)[index:]  # a view of the buffer is lent as well
        ours.update(view)
        reference.update(view)
        view.release()
        assert buffer._loans == 1
    waiter = threading.Thread(target=buffers[0].wait_until_returned)
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive()  # not given back: the owner must not refill it yet
    hashed.set()
    waiter.join(5)
    assert not waiter.is_alive()
    for buffer in buffers:
        buffer.wait_until_returned()
        buffer[:] = bytes(len(buffer))  # refilled once given back: must not matter
    assert ours.hexdigest() == reference.hexdigest()


def test_every_loan_comes_back_after_an_error_or_an_abandoned_hash() -> None:
    failing = _failing_hash()
    lent = [LendableBuffer(1000) for _ in range(3 * background_hash.QUEUED_UPDATES)]
    for buffer in lent:
        failing.update(buffer)
    with pytest.raises(OSError, match="hash failed"):
        failing.hexdigest()
    abandoned = BackgroundSha256()
    abandoned.update(os.urandom(background_hash.INLINE_BYTES))
    dropped = [LendableBuffer(1 << 20) for _ in range(4)]
    for buffer in dropped:
        abandoned.update(buffer)
    del abandoned
    gc.collect()
    for buffer in lent + dropped:
        done = threading.Thread(target=buffer.wait_until_returned)
        done.start()
        done.join(5)
        assert not done.is_alive()
        assert buffer._loans == 0


def test_a_lendable_buffer_in_the_first_mebibyte_is_hashed_at_once() -> None:
    ours = BackgroundSha256()
    buffer = LendableBuffer(1000)
    buffer[:] = os.urandom(1000)
    ours.update(buffer)
    assert buffer._loans == 0
    assert ours.hexdigest() == hashlib.sha256(buffer).hexdigest()
