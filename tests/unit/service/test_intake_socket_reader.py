"""The upload's socket reader: pieces as large as the socket holds, buffers reused safely.

``_read_socket`` is driven here by a scripted stand-in for
:class:`~evidence_intake.service.http_protocol.SocketBody` (the real one is
covered end to end in tests/api/test_http_protocol_server.py): each script
step is bytes arriving on the socket, a silence (the idle timeout) or a reset.
"""

from __future__ import annotations

import os
import threading
from collections import deque

import pytest
from evidence_intake.service.intake import upload
from evidence_intake.service.intake.background_hash import LendableBuffer
from evidence_intake.service.intake.errors import UploadAbortedError

SILENCE = "silence"
RESET = "reset"


class ScriptedBody:
    """Bytes arrive as the script says, each step when the reader waits for more."""

    def __init__(self, prefix: list[bytes], script: list[bytes | str]) -> None:
        self.prefix = list(prefix)
        self.remaining = sum(len(step) for step in script if isinstance(step, bytes))
        self._script = deque(script)
        self._arrived = bytearray()
        self.refilled_while_lent = 0

    def recv_into(self, buffer: memoryview, *, wait: bool = True) -> int:
        assert self.remaining > 0
        owner = buffer.obj
        if isinstance(owner, LendableBuffer) and owner._loans:
            self.refilled_while_lent += 1
        if not self._arrived and wait:
            step = self._script.popleft()
            if step == SILENCE:
                raise TimeoutError("idle")
            if step == RESET:
                raise ConnectionResetError("reset by peer")
            assert isinstance(step, bytes)
            self._arrived += step
        count = min(len(buffer), len(self._arrived))
        buffer[:count] = self._arrived[:count]
        del self._arrived[:count]
        self.remaining -= count
        return count


@pytest.fixture(autouse=True)
def small_buffers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upload, "SOCKET_FEED_BYTES", 4096)


def test_whole_buffers_are_fed_as_they_are_and_only_the_last_piece_is_copied() -> None:
    body = os.urandom(9 * 4096 + 1000)
    # The whole body has arrived, in small segments: the reader gathers them.
    socket_body = ScriptedBody([b"parsed-by-httptools"], [body])
    pieces: list[tuple[type, bytes]] = []
    upload._read_socket(socket_body, lambda data: pieces.append((type(data), bytes(data))))
    assert pieces[0] == (bytes, b"parsed-by-httptools")
    assert b"".join(data for _kind, data in pieces[1:]) == body
    assert [len(data) for _kind, data in pieces[1:]] == [4096] * 9 + [1000]
    # Whole buffers go to the parser as they are (no copy); the last piece is copied.
    assert [kind for kind, _data in pieces[1:]] == [LendableBuffer] * 9 + [bytes]
    assert socket_body.remaining == 0


def test_a_piece_is_fed_when_the_socket_runs_dry_not_when_its_buffer_is_full() -> None:
    # A client that sends a little and then waits (for an early error answer,
    # say) must have that little parsed now, not after the idle timeout.
    socket_body = ScriptedBody([], [b"first", b"second", SILENCE, b"never sent"])
    fed: list[bytes] = []
    with pytest.raises(UploadAbortedError, match="stopped sending"):
        upload._read_socket(socket_body, lambda data: fed.append(bytes(data)))
    assert fed == [b"first", b"second"]


def test_a_buffer_the_hash_still_holds_is_not_refilled_until_given_back() -> None:
    body = os.urandom(4096 * 12)
    socket_body = ScriptedBody([], [body[i:i + 4096] for i in range(0, len(body), 4096)])
    held: list[LendableBuffer] = []
    fed: list[bytes] = []

    def feed(data: bytes | bytearray) -> None:
        fed.append(bytes(data))
        if isinstance(data, LendableBuffer):
            data.lend()  # as BackgroundSha256 does; given back later, on another thread
            held.append(data)
            threading.Timer(0.02, data.give_back).start()

    upload._read_socket(socket_body, feed)
    assert b"".join(fed) == body
    assert len({id(buffer) for buffer in held}) == upload.SOCKET_BUFFERS  # reused in turn
    assert socket_body.refilled_while_lent == 0


@pytest.mark.parametrize(("step", "message"),
                         [(RESET, "disconnected"), (SILENCE, "stopped sending")])
def test_a_client_that_disconnects_or_falls_silent_aborts_the_upload(step: str,
                                                                     message: str) -> None:
    socket_body = ScriptedBody([], [b"x" * 5000, step, b"rest"])
    fed: list[bytes] = []
    with pytest.raises(UploadAbortedError, match=message):
        upload._read_socket(socket_body, lambda data: fed.append(bytes(data)))
    assert b"".join(fed) == b"x" * 5000
