"""One streamed HTTP/1.1 POST for ``intake submit``, on the standard library alone.

The body is a sequence of pieces, each either bytes in memory or a byte range
of a file, with a length known in advance (the request declares it). File
ranges go out with ``sendfile`` on a plain connection, straight from the page
cache to the socket, and in 1 MiB reads on a TLS one; the client never holds
more than that of a file in memory.

Threat model: the body carries a witness's statement and recordings. Over
``https`` the server's certificate is checked against the system's trust
store (``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` override it) unless the caller
explicitly turns checking off. A proxy named by ``HTTPS_PROXY``,
``HTTP_PROXY`` or ``ALL_PROXY`` (``NO_PROXY`` excepted) is used as a plain
HTTP proxy; an ``https`` request goes through it in a ``CONNECT`` tunnel, so
the proxy sees ciphertext only.
"""

from __future__ import annotations

import os
import socket
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

# http.client, urllib.request (only when a proxy variable is set) and
# dataclasses are not imported: with the email package behind http.client
# they were about half of the client's start-up, which every submit waits
# for. The request is written and the answer read here (HTTP/1.1, one request
# per connection).

READ_CHUNK = 1 << 20
# sendfile is called for this much at a time, so progress can be reported.
SENDFILE_CHUNK = 8 << 20
# Bounds on the answer's head: the status line and each header, and their number.
MAX_LINE = 65536
MAX_HEADERS = 100
# The answers are receipts and problem documents of a few KiB; a server (or
# someone in its place) that sends more is refused before it fills memory.
MAX_ANSWER = 16 << 20


class FileRange(NamedTuple):
    """``size`` bytes of ``path`` from its start (the size checked when it was chosen)."""

    path: Path
    size: int


Piece = bytes | FileRange


class FileChangedError(OSError):
    """A file was shorter when sent than when the request declared its length."""


class ProtocolError(OSError):
    """The server's answer is not well-formed HTTP/1.1, or it ended early."""


class Response(NamedTuple):
    status: int
    body: bytes


def body_length(pieces: Sequence[Piece]) -> int:
    return sum(piece.size if isinstance(piece, FileRange) else len(piece) for piece in pieces)


def _proxy_for(url: urllib.parse.SplitResult) -> urllib.parse.SplitResult | None:
    # urllib.request reads only variables whose name ends in "_proxy" (any
    # case); without one there is no proxy, and no need to import it.
    if not any(name.lower().endswith("_proxy") for name in os.environ):
        return None
    import urllib.request

    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(url.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(url.hostname or ""):
        return None
    parsed = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    if parsed.scheme != "http":
        raise OSError(f"unsupported proxy scheme {parsed.scheme!r} (use an http:// proxy)")
    return parsed


def _proxy_headers(proxy: urllib.parse.SplitResult) -> dict[str, str]:
    if proxy.username is None:
        return {}
    user = urllib.parse.unquote(proxy.username)
    password = urllib.parse.unquote(proxy.password or "")
    import base64

    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return {"Proxy-Authorization": f"Basic {token}"}


def _host_header(host: str, port: int, default_port: int) -> str:
    name = f"[{host}]" if ":" in host else host
    try:
        name.encode("ascii")
    except UnicodeEncodeError:
        name = name.encode("idna").decode("ascii")
    return name if port == default_port else f"{name}:{port}"


def _head(first_line: str, headers: dict[str, str]) -> bytes:
    lines = [first_line]
    for name, value in headers.items():
        if any(c in name for c in ":\r\n\0 \t") or any(c in value for c in "\r\n\0"):
            raise ValueError(f"invalid header {name!r}")
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _connect(url: urllib.parse.SplitResult, *, verify: bool, timeout: float
             ) -> tuple[socket.socket, str, str]:
    """A connected socket for ``url``, the request target and the Host header to send."""
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValueError(f"expected an http:// or https:// URL, not {url.geturl()!r}")
    default_port = 443 if url.scheme == "https" else 80
    port = url.port or default_port
    target = url.path or "/"
    if url.query:
        target += "?" + url.query
    host = _host_header(url.hostname, port, default_port)
    proxy = _proxy_for(url)
    address = (proxy.hostname or "", proxy.port or 80) if proxy else (url.hostname, port)
    sock = socket.create_connection(address, timeout=timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if url.scheme == "http":
            if proxy:
                target = urllib.parse.urlunsplit(("http", url.netloc, target, "", ""))
            return sock, target, host
        if proxy:
            # A CONNECT tunnel: the proxy relays the TLS bytes it cannot read.
            authority = f"{host}:{port}" if port == default_port else host
            sock.sendall(_head(f"CONNECT {authority} HTTP/1.1",
                               {"Host": authority, **_proxy_headers(proxy)}))
            reader = _Reader(sock)
            status = reader.status_and_headers()[0]
            if status != 200:
                raise OSError(f"Tunnel connection failed: {status}")
            if reader.buffered:
                raise ProtocolError("the proxy sent data before the TLS handshake")
        import ssl

        context = ssl.create_default_context()
        context.set_alpn_protocols(["http/1.1"])
        if not verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        tls = context.wrap_socket(sock, server_hostname=url.hostname)
        return tls, target, host
    except BaseException:
        sock.close()
        raise


class _Reader:
    """Reads one HTTP/1.1 answer from a socket."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buf = bytearray()
        self._received = 0

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def _fill(self) -> bool:
        chunk = self._sock.recv(READ_CHUNK)
        self._buf += chunk
        self._received += len(chunk)
        if self._received > MAX_ANSWER:
            raise ProtocolError(f"the answer is longer than {MAX_ANSWER >> 20} MiB")
        return bool(chunk)

    def _line(self) -> bytes:
        start = 0
        while (end := self._buf.find(b"\n", start)) < 0:
            if len(self._buf) > MAX_LINE:
                raise ProtocolError("a line of the answer is too long")
            start = len(self._buf)
            if not self._fill():
                raise ProtocolError("the server closed the connection without a full answer")
        line = bytes(self._buf[: end + 1])
        del self._buf[: end + 1]
        return line

    def _exactly(self, size: int) -> bytes:
        while len(self._buf) < size:
            if not self._fill():
                raise ProtocolError("the answer ended before its declared length")
        data = bytes(self._buf[:size])
        del self._buf[:size]
        return data

    def status_and_headers(self) -> tuple[int, dict[bytes, bytes]]:
        """The final status and headers (names in lower case); 1xx answers are skipped."""
        while True:
            parts = self._line().split(None, 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not (
                    len(parts[1]) == 3 and parts[1].isdigit()):
                raise ProtocolError("the answer does not start with an HTTP/1.x status line")
            status = int(parts[1])
            headers: dict[bytes, bytes] = {}
            while (line := self._line()) not in (b"\r\n", b"\n"):
                name, colon, value = line.partition(b":")
                if not colon or len(headers) >= MAX_HEADERS:
                    raise ProtocolError("malformed headers in the answer")
                key = name.strip().lower()
                value = value.strip()
                if key in headers and key != b"content-length":
                    value = headers[key] + b", " + value
                elif key in headers and headers[key] != value:
                    raise ProtocolError("conflicting Content-Length headers in the answer")
                headers[key] = value
            if not 100 <= status < 200:
                return status, headers

    def body(self, status: int, headers: dict[bytes, bytes]) -> bytes:
        if status in (204, 304):
            return b""
        if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
            return self._chunked()
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                raise ProtocolError("the answer's Content-Length is not a number")
            if int(length) > MAX_ANSWER:
                raise ProtocolError(f"the answer is longer than {MAX_ANSWER >> 20} MiB")
            return self._exactly(int(length))
        while self._fill():  # Connection: close delimits the body
            pass
        data, self._buf = bytes(self._buf), bytearray()
        return data

    def _chunked(self) -> bytes:
        body = bytearray()
        while True:
            size_text = self._line().split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise ProtocolError("malformed chunk size in the answer") from None
            if size == 0:
                while self._line() not in (b"\r\n", b"\n"):  # trailers
                    pass
                return bytes(body)
            body += self._exactly(size)
            if self._line() not in (b"\r\n", b"\n"):
                raise ProtocolError("malformed chunk in the answer")


def _answer(sock: socket.socket) -> Response:
    reader = _Reader(sock)
    status, headers = reader.status_and_headers()
    return Response(status, reader.body(status, headers))


def _send_file(sock: socket.socket, piece: FileRange, progress: Callable[[int], None], *,
               tls: bool) -> None:
    with open(piece.path, "rb") as src:
        sent = 0
        if tls:  # sendfile would bypass the encryption; socket.sendfile falls back to 8 KiB

            buffer = memoryview(bytearray(READ_CHUNK))
            while sent < piece.size:
                n = src.readinto(buffer[: min(READ_CHUNK, piece.size - sent)])
                if not n:
                    break
                sock.sendall(buffer[:n])
                sent += n
                progress(n)
        else:
            while sent < piece.size:
                n = sock.sendfile(src, sent, min(SENDFILE_CHUNK, piece.size - sent))
                if not n:
                    break
                sent += n
                progress(n)
    if sent != piece.size:
        raise FileChangedError(f"{piece.path} changed while it was being sent")


def post(url: str, pieces: Sequence[Piece], headers: dict[str, str], *, verify: bool = True,
         connect_timeout: float = 60.0, io_timeout: float = 600.0,
         progress: Callable[[int], None] = lambda n: None) -> Response:
    """POST the concatenated ``pieces``; raise OSError (ValueError for a bad URL) on failure.

    A server may answer before it has read the whole body (413 on the declared
    length, 401): a send that fails then is not the error, the answer is.
    """
    parsed = urllib.parse.urlsplit(url)
    sock, target, host = _connect(parsed, verify=verify, timeout=connect_timeout)
    with sock:
        head = _head(f"POST {target} HTTP/1.1",
                     {"Host": host, **headers, "Content-Length": str(body_length(pieces)),
                      "Connection": "close"})
        sock.settimeout(io_timeout)
        try:
            pending = bytearray(head)  # the head goes out with the first small pieces
            for piece in pieces:
                if isinstance(piece, bytes):
                    pending += piece
                    continue
                if pending:
                    sock.sendall(pending)
                    pending.clear()
                _send_file(sock, piece, progress, tls=parsed.scheme == "https")
            if pending:
                sock.sendall(pending)
        except (BrokenPipeError, ConnectionResetError) as err:
            try:
                return _answer(sock)
            except OSError:
                raise err from None
        return _answer(sock)
