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

A large body can also bypass the event loop altogether. A request with a
``Content-Length`` on a plain (not TLS) connection carries a
:class:`SocketBody` in ``scope["extensions"][SOCKET_BODY]``. An app that calls
:meth:`SocketBody.take_over` before it receives anything gets the chunks
already parsed and then reads the rest of the body straight from the socket,
in a worker thread (:meth:`SocketBody.recv_into`), while the event loop stops
reading that connection. The intake's upload path uses it: each byte is
copied once (by the kernel) instead of three times, with no event-loop work
per chunk and no thread hop per MiB (docs/intake.md, "Throughput").
:meth:`SocketBody.release` hands the connection back: after a whole body it
reads the next request with a fresh parser (keep-alive); after a partial one
it closes once the response is sent.

A response's status line and headers are held until its first body bytes
and written with them (:class:`_HeldHead`): one write, and for a small
response one TCP segment, where uvicorn makes two.

Used by ``intake serve`` when httptools is installed (the ``server`` extra);
with h11 uvicorn runs unchanged.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
from collections import deque
from typing import Any, cast

import httptools
from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from .intake.upload import SOCKET_BODY


class SocketBody:
    """The rest of one request's body, read from the socket in a worker thread.

    Call :meth:`take_over` on the event loop before receiving anything; then
    :attr:`prefix` holds the body bytes already parsed and :meth:`recv_into`
    (blocking, in any one thread) reads the next bytes until :attr:`remaining`
    is 0. Call :meth:`release` on the event loop once done,
    whole body or not, before the response is sent.
    """

    def __init__(self, protocol: ChunkPassingProtocol, cycle: _ChunkCycle, length: int) -> None:
        self._protocol = protocol
        self._cycle = cycle
        self._length = length
        self._sock: socket.socket | None = None
        self._readable: select.poll | None = None  # made by take_over, with the socket
        self._idle_ms = 0
        self.prefix: list[bytes] = []
        self.remaining = 0
        self.active = False

    def take_over(self, idle_seconds: float) -> bool:
        """Take the body from the connection; False (and nothing changed) if it cannot be.

        :meth:`recv_into` gives up once the client has sent nothing for
        ``idle_seconds``: a stalled client holds a worker thread.
        """
        protocol, cycle = self._protocol, self._cycle
        if (self.active or cycle.receiving or cycle.disconnected or cycle.response_complete
                or protocol.cycle is not cycle or protocol.transport.is_closing()):
            return False
        remaining = self._length - cycle.body_seen
        if remaining > 0:
            raw = protocol.transport.get_extra_info("socket")
            if raw is None:
                return False
            if cycle.waiting_for_100_continue:
                protocol.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                cycle.waiting_for_100_continue = False
            protocol.flow.pause_reading()
            self._sock = socket.socket(fileno=os.dup(raw.fileno()))
            self._sock.setblocking(False)  # waits are poll()'s, with the idle timeout
            self._readable = select.poll()
            self._readable.register(self._sock, select.POLLIN)
            self._idle_ms = max(1, round(idle_seconds * 1000))
        self.prefix = list(cycle.chunks)
        cycle.chunks.clear()
        cycle.queued = 0
        cycle.message_event.clear()
        self.remaining = remaining
        self.active = True
        return True

    def recv_into(self, buffer: memoryview, *, wait: bool = True) -> int:
        """Read the body's next bytes into ``buffer``; raise ConnectionError if the client left.

        Returns how many, never past the body's end. With ``wait`` it blocks
        (without the GIL) until bytes arrive, and a client silent for the
        ``idle_seconds`` given to :meth:`take_over` raises TimeoutError;
        without, it returns 0 when no bytes are there yet. Bytes already
        there cost one ``recv`` and no ``poll``.
        """
        readable = self._readable
        if self._sock is None or readable is None or self.remaining <= 0:
            raise EOFError("no body left to read")
        size = min(self.remaining, len(buffer))
        while True:
            try:
                count = self._sock.recv_into(buffer, size)
                break
            except BlockingIOError:
                if not wait:
                    return 0
                if not readable.poll(self._idle_ms):
                    raise TimeoutError("the client sent nothing for the idle timeout") from None
        if not count:
            raise ConnectionError("the client closed the connection before the end of the body")
        self.remaining -= count
        return count

    def release(self) -> None:
        """Give the connection back to the event loop (idempotent)."""
        if not self.active:
            return
        self.active = False
        sock, self._sock, self._readable = self._sock, None, None
        if sock is None:
            return  # the body had been parsed whole: the parser is where it should be
        sock.close()
        protocol, cycle = self._protocol, self._cycle
        if protocol.transport.is_closing() or protocol.cycle is not cycle:
            return
        if self.remaining:
            # Part of the body is still unread: the stream cannot be parsed
            # again, so the connection closes once the response is sent.
            cycle.keep_alive = False
            return
        cycle.more_body = False
        protocol.renew_parser()
        protocol.flow.resume_reading()


class _HeldHead:
    """The transport as uvicorn's ``send`` sees it: the response head waits for the body.

    uvicorn writes the status line and headers as soon as the app starts the
    response, and the body in a second write: two system calls and, on a
    small response, two TCP segments, each of which wakes the client. Here
    the head is held until the first body bytes (or the end of the response,
    or a close) and goes out in the same write. Everything else is the
    transport's.
    """

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self.head: bytes | None = None

    def write(self, data: bytes) -> None:
        if self.head is None:
            self.head = data  # the first write of a response: its head
            return
        head, self.head = self.head, b""
        self._transport.write(head + data if head else data)

    def flush(self) -> None:
        if self.head:
            self._transport.write(self.head)
        self.head = b""

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _ChunkCycle(RequestResponseCycle):
    """A request whose body arrives as a queue of the parser's chunks.

    Its response head goes out with the first body bytes (:class:`_HeldHead`).
    """

    chunks: deque[bytes]
    queued: int
    body_seen: int  # body bytes the parser has delivered
    receiving: bool  # the app has called receive()
    held: _HeldHead | None

    async def send(self, message: Any) -> None:
        held = self.held
        if held is None:
            if message["type"] != "http.response.start" or self.response_started:
                await super().send(message)
                return
            held = self.held = _HeldHead(self.transport)
        real = self.transport
        self.transport = cast(Any, held)
        try:
            await super().send(message)
        finally:
            self.transport = real
        if message["type"] != "http.response.start":
            # The first body message has gone through: the head went with
            # its bytes (or goes now, for a response without any; not to a
            # client that has gone).
            if not self.disconnected:
                held.flush()
            self.held = None

    async def receive(self) -> Any:
        self.receiving = True
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
            chunked.body_seen = 0
            chunked.receiving = False
            chunked.held = None
            length = self._plain_content_length()
            if length is not None:
                extensions = cast(dict[str, Any], cycle.scope.setdefault("extensions", {}))
                extensions[SOCKET_BODY] = SocketBody(self, chunked, length)

    def _plain_content_length(self) -> int | None:
        """The body's declared length, if its bytes can be read raw from the socket."""
        if self.scheme != "http" or self.parser.should_upgrade():
            return None
        length: int | None = None
        for name, value in self.headers:
            if name == b"transfer-encoding":
                return None
            if name == b"content-length":
                if length is not None or not value.isdigit():
                    return None  # httptools refuses such requests; never read them raw
                length = int(value)
        return length

    def renew_parser(self) -> None:
        """A parser for the next request, after a body read past this one's."""
        self.parser = httptools.HttpRequestParser(self)
        with contextlib.suppress(AttributeError):  # httptools < 0.6.3, as in uvicorn
            self.parser.set_dangerous_leniencies(lenient_data_after_close=True)

    def on_body(self, body: bytes) -> None:
        cycle = self.cycle
        if not isinstance(cycle, _ChunkCycle):
            super().on_body(body)
            return
        if (self.parser.should_upgrade() and self._should_upgrade()) or cycle.response_complete:
            return
        cycle.chunks.append(body)
        cycle.queued += len(body)
        cycle.body_seen += len(body)
        if cycle.queued > HIGH_WATER_LIMIT:
            self.flow.pause_reading()
        cycle.message_event.set()
