"""The plaintext SHA-256 computed on a thread of its own: same digest, bounded, stops."""

from __future__ import annotations

import gc
import hashlib
import os
import threading
import time

import pytest
from evidence_intake.service.intake import background_hash
from evidence_intake.service.intake.background_hash import BackgroundSha256


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


def test_a_caller_releasing_its_view_does_not_change_the_digest() -> None:
    ours = BackgroundSha256()
    reference = hashlib.sha256()
    first = os.urandom(background_hash.INLINE_BYTES)
    ours.update(first)
    reference.update(first)
    for _ in range(3 * background_hash.QUEUED_UPDATES):
        data = os.urandom(1000)
        view = memoryview(data)
        ours.update(view)
        reference.update(data)
        view.release()  # the queued update holds a view of its own
    assert ours.hexdigest() == reference.hexdigest()


def test_an_error_on_the_thread_is_raised_by_hexdigest_and_nothing_blocks() -> None:
    class Failing:
        def update(self, data: object) -> None:
            raise OSError("hash failed")

    ours = BackgroundSha256()
    ours.update(os.urandom(background_hash.INLINE_BYTES))
    ours._digest = Failing()  # type: ignore[assignment]
    for _ in range(3 * background_hash.QUEUED_UPDATES):  # more than the queue holds
        ours.update(os.urandom(1000))
    with pytest.raises(OSError, match="hash failed"):
        ours.hexdigest()
