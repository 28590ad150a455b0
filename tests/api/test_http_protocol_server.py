"""The body-passing HTTP protocol of ``intake serve`` (service/http_protocol.py), for real.

A real ``intake serve`` receives requests written by hand on a socket, in
small and odd-sized writes: with Content-Length, chunked, with ``Expect:
100-continue``, two on one keep-alive connection, pipelined, and cut off by
the client. Every byte must reach the sealer in order (the attachment
decrypts to what was sent), and a cut-off upload must leave nothing behind.

Bodies over 1 MiB with a Content-Length are read from the socket by the
parsing thread (``SocketBody``): those tests also check that the connection
is handed back intact (keep-alive, pipelining) or closed after an error in
mid-body, and that a client that stalls in mid-body is dropped.
"""

from __future__ import annotations

import io
import json
import os
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from evidence_intake.crypto.age import X25519Identity, decrypt
from intake_samples import multipart, record, record_bytes, stored_files
from live_node_support import Server, accounts_and_body, live_node


@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[Server, str, str, X25519Identity]]:
    identity = X25519Identity.generate()
    with live_node(tmp_path) as (server, _env):
        token, body_id = accounts_and_body(server.data, identity)
        server.start()
        yield server, token, body_id, identity


def _request(token: str, body_id: str, attachment: bytes, *, chunked: bool = False,
             expect_continue: bool = False) -> tuple[bytes, bytes]:
    body, ctype = multipart([
        ("record", None, "application/json", record_bytes(record([body_id]))),
        ("text", None, "text/plain", b"statement over the wire"),
        ("attachment", "video.mp4", "video/mp4", attachment),
    ])
    head = (f"POST /api/v1/statements HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: {ctype}\r\n")
    if chunked:
        head += "Transfer-Encoding: chunked\r\n"
    else:
        head += f"Content-Length: {len(body)}\r\n"
    if expect_continue:
        head += "Expect: 100-continue\r\n"
    return (head + "\r\n").encode(), body


def _send_odd_sizes(sock: socket.socket, data: bytes) -> None:
    """In writes of 1 byte to about 200 KB, so chunks straddle every boundary."""
    sizes = [1, 7, 4096, 65535, 65537, 200_003, 13]
    offset, turn = 0, 0
    while offset < len(data):
        size = sizes[turn % len(sizes)]
        sock.sendall(data[offset:offset + size])
        offset += size
        turn += 1


def _chunked(data: bytes) -> bytes:
    out = bytearray()
    for start in range(0, len(data), 300_007):
        piece = data[start:start + 300_007]
        out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    return bytes(out + b"0\r\n\r\n")


class _Responses:
    """Responses read off one connection in order (pipelined ones included)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.settimeout(60)  # a server that never answers fails the test, not hangs it
        self.buffer = b""
        self.headers: dict[str, str] = {}

    def _more(self) -> None:
        data = self.sock.recv(65536)
        assert data, "the server closed the connection before a whole response"
        self.buffer += data

    def next(self) -> tuple[int, dict[str, Any]]:
        while b"\r\n\r\n" not in self.buffer:
            self._more()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        self.headers = {k.lower(): v.strip()
                        for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(self.headers["content-length"])
        while len(self.buffer) < length:
            self._more()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return status, json.loads(body)

    def closed(self) -> bool:
        """True once the server has closed the connection, with nothing more sent."""
        self.sock.settimeout(20)
        return self.buffer == b"" and self.sock.recv(65536) == b""


def _read_response(sock: socket.socket) -> tuple[int, dict[str, Any]]:
    return _Responses(sock).next()


def _opened(server: Server, digest: str, identity: X25519Identity) -> bytes:
    out = io.BytesIO()
    with open(server.data / "blobs" / digest, "rb") as src:
        decrypt(src, out, [identity])
    return out.getvalue()


def test_bodies_in_odd_writes_arrive_whole_with_length_chunked_and_keep_alive(
        node: tuple[Server, str, str, X25519Identity]) -> None:
    server, token, body_id, identity = node
    attachments = [os.urandom(3 << 20), os.urandom(1 << 20)]
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        for attachment, chunked in zip(attachments, (False, True), strict=True):
            head, body = _request(token, body_id, attachment, chunked=chunked)
            _send_odd_sizes(sock, head + (_chunked(body) if chunked else body))
            status, receipt = _read_response(sock)  # the same connection, kept alive
            assert status == 201, receipt
            digest = receipt["copies"][0]["attachments"][0]["sha256"]
            assert _opened(server, digest, identity) == attachment


@pytest.mark.parametrize("size", [500_000, 3 << 20], ids=["read-whole", "from-socket"])
def test_expect_100_continue_is_answered_before_the_body(
        node: tuple[Server, str, str, X25519Identity], size: int) -> None:
    server, token, body_id, identity = node
    attachment = os.urandom(size)
    head, body = _request(token, body_id, attachment, expect_continue=True)
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(head)
        assert sock.recv(64).startswith(b"HTTP/1.1 100 Continue")
        _send_odd_sizes(sock, body)
        status, receipt = _read_response(sock)
    assert status == 201, receipt
    assert _opened(server, receipt["copies"][0]["attachments"][0]["sha256"], identity) == \
        attachment


def test_a_client_gone_mid_body_leaves_nothing(
        node: tuple[Server, str, str, X25519Identity]) -> None:
    server, token, body_id, _identity = node
    head, body = _request(token, body_id, os.urandom(8 << 20))
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        _send_odd_sizes(sock, head + body[: len(body) // 2])
        deadline = time.monotonic() + 20
        while not any(n.startswith(".tmp-") for n in os.listdir(server.data / "blobs")):
            assert time.monotonic() < deadline, "the upload never reached the blob store"
            time.sleep(0.02)
    deadline = time.monotonic() + 20
    while any(n.startswith(".tmp-") for n in os.listdir(server.data / "blobs")):
        assert time.monotonic() < deadline, "the cut-off upload's temporary file stayed"
        time.sleep(0.05)
    assert stored_files(server.data / "blobs") == []


def test_pipelined_requests_after_bodies_read_from_the_socket_are_answered_in_order(
        node: tuple[Server, str, str, X25519Identity]) -> None:
    """The socket reader takes exactly Content-Length bytes; what follows is the next request."""
    server, token, body_id, identity = node
    attachments = [os.urandom(3 << 20), os.urandom((2 << 20) + 5)]
    stream = b""
    for attachment in attachments:
        head, body = _request(token, body_id, attachment)
        stream += head + body
    stream += b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        _send_odd_sizes(sock, stream)
        responses = _Responses(sock)
        for attachment in attachments:
            status, receipt = responses.next()
            assert status == 201, receipt
            digest = receipt["copies"][0]["attachments"][0]["sha256"]
            assert _opened(server, digest, identity) == attachment
        status, health = responses.next()
        assert status == 200 and health["status"] == "ok"


def test_an_error_in_mid_body_is_answered_then_the_connection_closes(
        node: tuple[Server, str, str, X25519Identity]) -> None:
    """The rest of the body is never read, so the connection cannot serve another request."""
    server, token, body_id, _identity = node
    head, body = _request(token, body_id, os.urandom(2 << 20))
    closing = body.rindex(b"--intake-test-boundary-91c2--")
    # A part without Content-Disposition, then 2 MiB more that are never sent.
    bad = (b"--intake-test-boundary-91c2\r\nContent-Type: text/plain\r\n\r\n"
           + b"x" * (2 << 20) + b"\r\n")
    body = body[:closing] + bad + body[closing:]
    head = re.sub(rb"Content-Length: \d+", b"Content-Length: %d" % len(body), head)
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        _send_odd_sizes(sock, head + body[: closing + 1000])
        responses = _Responses(sock)
        status, problem = responses.next()
        assert status == 400, problem
        assert problem["type"].endswith(":malformed-multipart")
        assert responses.headers["connection"] == "close"
        assert responses.closed()
    assert stored_files(server.data / "blobs") == []


@pytest.mark.parametrize(("size", "chunked"), [(4 << 20, False), (500_000, False), (4 << 20, True)],
                         ids=["from-socket", "read-whole", "chunked"])
def test_a_client_silent_in_mid_body_is_dropped_after_the_idle_timeout(
        tmp_path: Path, size: int, chunked: bool) -> None:
    """Every way a body is read gives up on a silent client, answers, and closes."""
    identity = X25519Identity.generate()
    with live_node(tmp_path, INTAKE_UPLOAD_IDLE_SECONDS="1") as (server, _env):
        token, body_id = accounts_and_body(server.data, identity)
        server.start()
        head, body = _request(token, body_id, os.urandom(size), chunked=chunked)
        if chunked:
            body = _chunked(body)
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(head + body[: len(body) // 2])
            started = time.monotonic()
            responses = _Responses(sock)
            status, problem = responses.next()
            assert status == 400, problem
            assert problem["type"].endswith(":upload-aborted")
            assert 0.9 < time.monotonic() - started < 15
            assert responses.headers["connection"] == "close"
            assert responses.closed()
        assert stored_files(server.data / "blobs") == []
