"""SHA-256 of a long stream, computed on a thread of its own while the caller goes on.

The upload's worker thread parses, hashes the plaintext and encrypts it; the
hash is about half of that work and releases the GIL, so once a stream has
passed :data:`INLINE_BYTES` its updates are queued, in order, to a thread that
only hashes. Only views of immutable ``bytes`` are queued (the caller may
reuse anything else as soon as ``update`` returns); anything else is hashed at
once, after the queue has drained. At most :data:`QUEUED_UPDATES` updates wait,
so memory stays bounded by a few received chunks. ``hexdigest`` waits for the
queue and stops the thread; so does dropping the object (an aborted upload).
"""

from __future__ import annotations

import hashlib
import queue
import threading
import weakref
from typing import Any

INLINE_BYTES = 1 << 20
QUEUED_UPDATES = 16


def _hash_queued(updates: queue.Queue[memoryview | None], digest: Any,
                 errors: list[BaseException]) -> None:
    # Keeps taking updates after an error, so that a producer never blocks on
    # a full queue; the error is raised by hexdigest().
    while True:
        data = updates.get()
        try:
            if data is None:
                return
            if not errors:
                digest.update(data)
        except BaseException as err:  # raised again by hexdigest() in the caller's thread
            errors.append(err)
        finally:
            del data
            updates.task_done()


class BackgroundSha256:
    """``update`` / ``hexdigest`` like :func:`hashlib.sha256`, large streams hashed aside."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self._inline = 0
        self._updates: queue.Queue[memoryview | None] | None = None
        self._stop: Any = None  # a weakref.finalize once the thread runs
        self._errors: list[BaseException] = []

    def update(self, data: bytes | bytearray | memoryview, /) -> None:
        view = memoryview(data)
        if self._updates is None:
            if self._inline < INLINE_BYTES or not isinstance(view.obj, bytes):
                self._inline += len(view)
                self._digest.update(view)
                return
            self._start(view)
            return
        if isinstance(view.obj, bytes):
            self._updates.put(view)
        else:
            self._updates.join()
            self._digest.update(view)

    def _start(self, first: memoryview) -> None:
        updates: queue.Queue[memoryview | None] = queue.Queue(QUEUED_UPDATES)
        updates.put(first)
        threading.Thread(target=_hash_queued, args=(updates, self._digest, self._errors),
                         name="plaintext-sha256", daemon=True).start()
        self._updates = updates
        self._stop = weakref.finalize(self, updates.put, None)

    def hexdigest(self) -> str:
        """The digest of everything updated so far (waits for the queue, stops the thread)."""
        updates, self._updates = self._updates, None
        if updates is not None and self._stop is not None:
            self._stop.detach()
            updates.put(None)
            updates.join()
        if self._errors:
            raise self._errors[0]
        return self._digest.hexdigest()
