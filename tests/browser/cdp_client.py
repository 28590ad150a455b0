"""A small Chrome DevTools Protocol client on the standard library alone.

Enough of RFC 6455 to talk to one DevTools target: the opening handshake,
masked client text frames, unmasked server frames (fragmented or not), ping
and close. Events that arrive while waiting for a command's answer are kept
in ``events``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import struct
import time
from typing import Any
from urllib.parse import urlparse


class CdpError(RuntimeError):
    """The browser answered a command with an error, or the socket broke."""


class Cdp:
    def __init__(self, ws_url: str, timeout: float = 30.0) -> None:
        url = urlparse(ws_url)
        if url.scheme != "ws" or url.hostname not in {"127.0.0.1", "localhost"}:
            raise CdpError("only a local ws:// DevTools endpoint is accepted")
        self.sock = socket.create_connection((url.hostname, url.port or 80), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        # No Origin header: Chromium then accepts the connection without
        # --remote-allow-origins.
        request = (f"GET {url.path} HTTP/1.1\r\nHost: {url.hostname}:{url.port}\r\n"
                   "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
        self.sock.sendall(request.encode("ascii"))
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise CdpError("the DevTools endpoint closed during the handshake")
            head += chunk
        status, _, rest = head.partition(b"\r\n\r\n")
        if not status.startswith(b"HTTP/1.1 101"):
            raise CdpError(f"handshake refused: {status.splitlines()[0]!r}")
        self._buffer = rest
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    # ------------------------------------------------------------- frames

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        length = len(payload)
        if length < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
        elif length < 1 << 16:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def _read_exact(self, n: int) -> bytes:
        while len(self._buffer) < n:
            chunk = self.sock.recv(max(65536, n - len(self._buffer)))
            if not chunk:
                raise CdpError("the DevTools connection closed")
            self._buffer += chunk
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out

    def _read_message(self) -> dict[str, Any]:
        parts: list[bytes] = []
        while True:
            first, second = self._read_exact(2)
            opcode, length = first & 0x0F, second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", self._read_exact(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", self._read_exact(8))
            mask = self._read_exact(4) if second & 0x80 else b""
            payload = self._read_exact(length)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 0x8:
                raise CdpError("the browser closed the DevTools connection")
            if opcode == 0x9:
                self._send_frame(0xA, payload)
                continue
            if opcode in (0x0, 0x1, 0x2):
                parts.append(payload)
                if first & 0x80:
                    message: dict[str, Any] = json.loads(b"".join(parts))
                    return message

    # ------------------------------------------------------------- commands

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        ident = self._next_id
        self._send_frame(0x1, json.dumps({"id": ident, "method": method,
                                          "params": params}).encode("utf-8"))
        while True:
            message = self._read_message()
            if message.get("id") == ident:
                if "error" in message:
                    raise CdpError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            if "method" in message:
                self.events.append(message)

    def evaluate(self, expression: str) -> Any:
        """The value of ``expression`` in the page (promises awaited); page errors raise."""
        answer = self.send("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in answer:
            raise CdpError(f"page exception: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.1)
        raise CdpError(f"timed out waiting for {expression}")

    def close(self) -> None:
        with contextlib.suppress(OSError):  # the browser may be gone already
            self._send_frame(0x8, b"")
        self.sock.close()
