"""uvicorn's httptools protocol, handing request bodies to the app without copying them.

uvicorn gathers a request's body in a ``bytearray`` (``+=`` per chunk the
parser delivers) and gives it to the app as ``bytes(...)``: two copies of every
byte, on the event loop's thread, which for a large upload is the busiest one
(the kernel's copy and the parser's are unavoidable). Here the chunks the
parser delivers are queued as they are, and each ``receive()`` hands the app
the next one. Everything else is uvicorn's: flow control (reading pauses while
more than ``HIGH_WATER_LIMIT`` bytes wait, resumes when the app takes them),
``Expect: 100-continue``, disconnects (reported at once, pending chunks
dropped), keep-alive and pipelining.

Used by ``intake serve`` when httptools is installed (the ``server`` extra);
with h11 uvicorn runs unchanged.
"""

from __future__ import annotations

from collections import deque
from typing import Any, cast

from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle


class _ChunkCycle(RequestResponseCycle):
    """A request whose body arrives as a queue of the parser's chunks."""

    chunks: deque[bytes]
    queued: int

    async def receive(self) -> Any:
        if self.waiting_for_100_continue and not self.transport.is_closing():
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.waiting_for_100_continue = False

        if not self.disconnected and not self.response_complete and not self.chunks:
            self.flow.resume_reading()
            await self.message_event.wait()
            self.message_event.clear()

        if self.disconnected or self.response_complete:
            return {"type": "http.disconnect"}
        body = b""
        if self.chunks:
            body = self.chunks.popleft()
            self.queued -= len(body)
            if not self.chunks:
                self.message_event.clear()
            if self.queued <= HIGH_WATER_LIMIT:
                self.flow.resume_reading()
        return {"type": "http.request", "body": body,
                "more_body": self.more_body or bool(self.chunks)}


class ChunkPassingProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` whose requests are :class:`_ChunkCycle` (see the module doc)."""

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        cycle = getattr(self, "cycle", None)
        if cycle is not None and type(cycle) is RequestResponseCycle:
            # The request's task is scheduled, not started: it looks up
            # ``receive`` when it runs, on the class set here.
            cycle.__class__ = _ChunkCycle
            chunked = cast(_ChunkCycle, cycle)
            chunked.chunks = deque()
            chunked.queued = 0

    def on_body(self, body: bytes) -> None:
        cycle = self.cycle
        if not isinstance(cycle, _ChunkCycle):
            super().on_body(body)
            return
        if (self.parser.should_upgrade() and self._should_upgrade()) or cycle.response_complete:
            return
        cycle.chunks.append(body)
        cycle.queued += len(body)
        if cycle.queued > HIGH_WATER_LIMIT:
            self.flow.pause_reading()
        cycle.message_event.set()
