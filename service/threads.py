"""Worker threads of one server process: how many, and which work has a lane of its own.

Blocking work (authentication, a statement's parsing, sealing and commit,
sync routes) runs in anyio's worker threads. Their number per process is
``Settings.worker_threads`` (:func:`apply_thread_limit`), far below anyio's
default of 40: each thread holds the GIL in turn, and a thread that wakes up
from the database (the statement commit, holding the audit log's head until
its COMMIT) may wait up to the interpreter's switch interval for it behind
every other busy thread. Fewer threads make those waits shorter and the
process faster; docs/intake.md ("Throughput") has the figures.

Work that may hold a thread for minutes takes a lane of its own, so that it
never takes the threads that authentication and statements need:

- a large upload read from the socket (``service/intake/upload.py``): at most
  :data:`SOCKET_READERS` at once;
- export bundles and the audit log export: at most :data:`LONG_WORK` at once.

Work beyond a lane's limit waits for its turn; it is never refused. Each
limiter belongs to the event loop that made it (anyio ``RunVar``), as
anyio's own default limiter does.
"""

from __future__ import annotations

import anyio
import anyio.to_thread
from anyio.lowlevel import RunVar

# Large bodies read straight from the socket each hold a worker thread for the
# whole upload (a stalled client until the idle timeout).
SOCKET_READERS = 8
# Export bundles and the audit log export: each holds a thread while it writes.
LONG_WORK = 2

_SOCKET_ADMISSION: RunVar[anyio.CapacityLimiter] = RunVar("intake_socket_admission")
_SOCKET_THREADS: RunVar[anyio.CapacityLimiter] = RunVar("intake_socket_threads")
_LONG_WORK: RunVar[anyio.CapacityLimiter] = RunVar("intake_long_work")


def apply_thread_limit(worker_threads: int) -> None:
    """Set the running event loop's default worker-thread limit (call it at start-up)."""
    anyio.to_thread.current_default_thread_limiter().total_tokens = worker_threads


def _limiter(slot: RunVar[anyio.CapacityLimiter], tokens: int) -> anyio.CapacityLimiter:
    try:
        return slot.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(tokens)
        slot.set(limiter)
        return limiter


def socket_admission() -> anyio.CapacityLimiter:
    """Held by a request for the whole time its body is read from the socket."""
    return _limiter(_SOCKET_ADMISSION, SOCKET_READERS)


def socket_threads() -> anyio.CapacityLimiter:
    """The thread of a socket read (its request already holds :func:`socket_admission`)."""
    return _limiter(_SOCKET_THREADS, SOCKET_READERS)


def long_work() -> anyio.CapacityLimiter:
    """Threads for exports: bundles and the audit log."""
    return _limiter(_LONG_WORK, LONG_WORK)
