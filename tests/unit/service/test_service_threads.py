"""service/threads.py: the worker-thread limit, and lanes that long work cannot overflow.

A large upload read from the socket holds its thread for the whole upload,
an export for as long as it writes: with the default pool down to a handful
of threads, they must not take the threads that authentication and
statements need, and must not be refused when their own lane is full.
That the app applies ``INTAKE_WORKER_THREADS`` is tested in
tests/api/test_service_threads_app.py.
"""

from __future__ import annotations

import threading
from typing import Any

import anyio
import anyio.to_thread
import pytest
from evidence_intake.service import threads
from evidence_intake.service.intake import upload
from evidence_intake.service.settings import Settings


class _BlockedSocketBody:
    """A socket body whose bytes arrive only once ``arrive`` is set."""

    def __init__(self, data: bytes) -> None:
        self.prefix: list[bytes] = []
        self.remaining = len(data)
        self.data = data
        self.arrive = threading.Event()
        self.reading = threading.Event()
        self.released = False

    def take_over(self, idle_seconds: float) -> bool:
        return True

    def release(self) -> None:
        self.released = True

    def recv_into(self, buffer: memoryview, *, wait: bool = True) -> int:
        self.reading.set()
        if not wait:
            return 0
        assert self.arrive.wait(30)
        count = min(len(buffer), self.remaining)
        buffer[:count] = self.data[:count]
        self.data = self.data[count:]
        self.remaining -= count
        return count


def test_socket_reads_have_threads_of_their_own() -> None:
    async def main() -> tuple[bool, bytes]:
        threads.apply_thread_limit(1)  # one default thread, as busy as it gets
        body = _BlockedSocketBody(b"x" * 100)
        fed: list[bytes] = []
        outcome: dict[str, Any] = {}
        async with anyio.create_task_group() as group:
            async def read() -> None:
                outcome["taken"] = await upload._take_from_socket(
                    body, lambda data: fed.append(bytes(data)), 30)
            group.start_soon(read)
            await anyio.to_thread.run_sync(body.reading.wait, 30,
                                           limiter=anyio.CapacityLimiter(1))
            # The reader blocks in its thread; the default thread is still free
            # (were it taken, this would wait for ever: the timeout fails it).
            with anyio.fail_after(10):
                assert await anyio.to_thread.run_sync(lambda: "default pool answers") \
                    == "default pool answers"
            assert threads.socket_admission().borrowed_tokens == 1
            body.arrive.set()
        assert body.released
        return outcome["taken"], b"".join(fed)

    assert anyio.run(main) == (True, b"x" * 100)


def test_more_readers_than_the_lane_holds_wait_for_a_turn(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads, "SOCKET_READERS", 2)

    async def main() -> list[bool]:
        bodies = [_BlockedSocketBody(b"y" * 10) for _ in range(3)]
        taken: list[bool] = []
        async with anyio.create_task_group() as group:
            for body in bodies:
                async def read(body: _BlockedSocketBody = body) -> None:
                    taken.append(await upload._take_from_socket(body, lambda _d: None, 30))
                group.start_soon(read)
            for body in bodies[:2]:
                await anyio.to_thread.run_sync(body.reading.wait, 30)
            await anyio.sleep(0.2)
            assert not bodies[2].reading.is_set()  # queued, not refused
            assert threads.socket_admission().borrowed_tokens == 2
            for body in bodies:
                body.arrive.set()
        return taken

    assert anyio.run(main) == [True, True, True]


@pytest.mark.parametrize("value", [0, 257])
def test_worker_threads_are_bounded(value: int) -> None:
    with pytest.raises(ValueError, match="worker_threads"):
        Settings(worker_threads=value)
