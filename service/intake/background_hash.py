"""SHA-256 of a long stream, computed on a thread of its own while the caller goes on.

The upload's worker thread parses, hashes the plaintext and encrypts it; the
hash is about half of that work and releases the GIL, so once a stream has
passed :data:`INLINE_BYTES` its updates are queued, in order, to a thread that
only hashes. Only views that cannot change while queued are queued: views of
immutable ``bytes``, and views of a :class:`LendableBuffer`, which the hashing
thread gives back once it has hashed them and whose owner waits for that
before it refills the buffer. Anything else (the caller may reuse it as soon as
``update`` returns) is hashed at once, after the queue has drained. At most
:data:`QUEUED_UPDATES` updates wait, so memory stays bounded by a few received
chunks. ``hexdigest`` waits for the queue and stops the thread; so does
dropping the object (an aborted upload).
"""

from __future__ import annotations

import hashlib
import queue
import threading
import weakref
from typing import Any

INLINE_BYTES = 1 << 20
QUEUED_UPDATES = 16


class LendableBuffer(bytearray):
    """A reusable receive buffer that may be hashed later without a copy.

    :meth:`BackgroundSha256.update` lends itself a buffer it queues (views of
    it included) and gives it back once hashed. The owner calls
    :meth:`wait_until_returned` before it writes into the buffer again; until
    then the buffer's content must not change. Each loan is returned exactly
    once, whatever happens to the hash (an error, an abandoned upload).
    """

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self._loans = 0
        self._returned = threading.Condition(threading.Lock())

    def lend(self) -> None:
        with self._returned:
            self._loans += 1

    def give_back(self) -> None:
        with self._returned:
            self._loans -= 1
            if not self._loans:
                self._returned.notify_all()

    def wait_until_returned(self) -> None:
        """Block until no queued hash update refers to this buffer any more."""
        with self._returned:
            while self._loans:
                self._returned.wait()


def _hash_queued(updates: queue.Queue[memoryview | None], digest: Any,
                 errors: list[BaseException]) -> None:
    # Keeps taking updates after an error, so that a producer never blocks on
    # a full queue (and every lent buffer is given back); the error is raised
    # by hexdigest().
    while True:
        data = updates.get()
        lent = data.obj if data is not None and isinstance(data.obj, LendableBuffer) else None
        try:
            if data is None:
                return
            if not errors:
                digest.update(data)
        except BaseException as err:  # raised again by hexdigest() in the caller's thread
            errors.append(err)
        finally:
            if data is not None:
                data.release()
            del data
            if lent is not None:
                lent.give_back()
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
        owner = view.obj
        queueable = isinstance(owner, bytes | LendableBuffer)
        if not queueable or (self._updates is None and self._inline < INLINE_BYTES):
            if self._updates is not None:
                self._updates.join()  # after everything queued before it
            else:
                self._inline += len(view)
            self._digest.update(view)
            return
        if isinstance(owner, LendableBuffer):
            owner.lend()  # given back by the hashing thread, once hashed
        if self._updates is None:
            self._start(view)
        else:
            self._updates.put(view)

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
