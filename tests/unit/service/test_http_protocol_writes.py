"""service/http_protocol.py: a response's head goes out with its first body bytes.

uvicorn writes the status line and headers in one write and the body in
another; ``intake serve``'s protocol joins them (one system call, one TCP
segment for a small response). Driven here with a recording transport and
tiny ASGI apps; the protocol against real sockets is tested in
tests/api/test_http_protocol_server.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from evidence_intake.service.http_protocol import ChunkPassingProtocol
from uvicorn.config import Config
from uvicorn.server import ServerState


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, bytes]] = []
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.events.append(("write", bytes(data)))

    def close(self) -> None:
        self.events.append(("close", b""))
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(
            name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def _serve(app: Any, request: bytes, served: dict[str, Any] | None = None
           ) -> list[tuple[str, bytes]]:
    async def main() -> list[tuple[str, bytes]]:
        config = Config(app=app, lifespan="off", log_level="warning", proxy_headers=False)
        protocol = ChunkPassingProtocol(config, ServerState(), app_state={})
        if served is not None:
            served["protocol"] = protocol
        transport = _Transport()
        protocol.connection_made(transport)
        protocol.data_received(request)
        for _ in range(100):  # let the request's task run to its end
            await asyncio.sleep(0)
            if protocol.cycle is None or protocol.cycle.response_complete:
                break
        await asyncio.sleep(0)
        return transport.events

    return asyncio.run(main())


def _app(*bodies: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-length", str(sum(map(len, bodies))).encode())]
            if headers is None else headers})
        for index, body in enumerate(bodies):
            await send({"type": "http.response.body", "body": body,
                        "more_body": index < len(bodies) - 1})
    return app


def _writes(events: list[tuple[str, bytes]]) -> list[bytes]:
    return [data for kind, data in events if kind == "write"]


def test_a_small_response_is_one_write() -> None:
    events = _serve(_app(b'{"ok":true}'), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    (write,) = _writes(events)
    assert write.startswith(b"HTTP/1.1 200 OK\r\n") and write.endswith(b'\r\n\r\n{"ok":true}')


def test_the_head_goes_with_the_first_body_bytes_only() -> None:
    events = _serve(_app(b"first", b"second", b"third"), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    writes = _writes(events)
    assert len(writes) == 3
    assert writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and writes[0].endswith(b"\r\n\r\nfirst")
    assert writes[1:] == [b"second", b"third"]


@pytest.mark.parametrize("request_line", [b"HEAD / HTTP/1.1", b"GET / HTTP/1.1"])
def test_a_response_without_body_bytes_still_sends_its_head(request_line: bytes) -> None:
    app = _app(b"", headers=[(b"content-length", b"0")])
    events = _serve(app, request_line + b"\r\nHost: x\r\n\r\n")
    (write,) = _writes(events)
    assert write.startswith(b"HTTP/1.1 200 OK\r\n") and write.endswith(b"\r\n\r\n")


def test_a_closing_connection_sends_head_and_body_before_it_closes() -> None:
    events = _serve(_app(b"bye"), b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert [kind for kind, _ in events] == ["write", "close"]
    assert events[0][1].endswith(b"\r\n\r\nbye")


def test_a_chunked_response_keeps_its_framing() -> None:
    events = _serve(_app(b"abc", b"", headers=[]), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    joined = b"".join(_writes(events))
    assert b"transfer-encoding: chunked\r\n" in joined
    assert joined.endswith(b"\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
    assert _writes(events)[0].endswith(b"\r\n\r\n3\r\nabc\r\n")


def test_nothing_is_written_to_a_client_gone_before_the_body() -> None:
    served: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"2")]})
        served["protocol"].connection_lost(None)  # the client hangs up
        await send({"type": "http.response.body", "body": b"ok"})

    events = _serve(app, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", served)
    assert _writes(events) == []
