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

import base64
import http.client
import socket
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

READ_CHUNK = 1 << 20
# sendfile is called for this much at a time, so progress can be reported.
SENDFILE_CHUNK = 8 << 20


@dataclass(frozen=True)
class FileRange:
    """``size`` bytes of ``path`` from its start (the size checked when it was chosen)."""

    path: Path
    size: int


Piece = bytes | FileRange


class FileChangedError(OSError):
    """A file was shorter when sent than when the request declared its length."""


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes


def body_length(pieces: Sequence[Piece]) -> int:
    return sum(piece.size if isinstance(piece, FileRange) else len(piece) for piece in pieces)


def _proxy_for(url: urllib.parse.SplitResult) -> urllib.parse.SplitResult | None:
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
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return {"Proxy-Authorization": f"Basic {token}"}


def _connection(url: urllib.parse.SplitResult, *, verify: bool, timeout: float
                ) -> tuple[http.client.HTTPConnection, str]:
    """A connection for ``url`` and the request target to send on it."""
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValueError(f"expected an http:// or https:// URL, not {url.geturl()!r}")
    port = url.port or (443 if url.scheme == "https" else 80)
    target = url.path or "/"
    if url.query:
        target += "?" + url.query
    proxy = _proxy_for(url)
    host, connect_port = (proxy.hostname or "", proxy.port or 80) if proxy else (url.hostname,
                                                                                port)
    conn: http.client.HTTPConnection
    if url.scheme == "https":
        import ssl

        context = ssl.create_default_context()
        if not verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection(host, connect_port, timeout=timeout, context=context)
        if proxy:
            conn.set_tunnel(url.hostname, port, headers=_proxy_headers(proxy))
    else:
        conn = http.client.HTTPConnection(host, connect_port, timeout=timeout)
        if proxy:
            target = urllib.parse.urlunsplit(("http", url.netloc, target, "", ""))
    return conn, target


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
    """POST the concatenated ``pieces``; raise OSError or HTTPException on failure.

    A server may answer before it has read the whole body (413 on the declared
    length, 401): a send that fails then is not the error, the answer is.
    """
    parsed = urllib.parse.urlsplit(url)
    conn, target = _connection(parsed, verify=verify, timeout=connect_timeout)
    try:
        conn.putrequest("POST", target, skip_accept_encoding=True)
        for name, value in {**headers, "Content-Length": str(body_length(pieces)),
                            "Connection": "close"}.items():
            conn.putheader(name, value)
        conn.endheaders()
        sock = conn.sock
        if sock is None:
            raise http.client.NotConnected("no connection after sending the headers")
        sock.settimeout(io_timeout)
        # The last small piece must not wait for the ACK of the file before it.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            pending = bytearray()
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
                response = conn.getresponse()
            except (OSError, http.client.HTTPException):
                raise err from None
            return Response(response.status, response.read())
        response = conn.getresponse()
        return Response(response.status, response.read())
    finally:
        conn.close()

