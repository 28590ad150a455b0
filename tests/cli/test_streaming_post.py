"""The streamed POST under ``intake submit``: exact bytes, early answers, changed files, proxies."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from pathlib import Path

import pytest

from evidence_intake.cli import streaming_post
from evidence_intake.cli.streaming_post import FileChangedError, FileRange, body_length, post


class _OneShotServer:
    """Accepts one connection, reads the request (or only its head), answers, closes."""

    def __init__(self, answer: bytes, *, read_body: bool = True) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.answer = answer
        self.read_body = read_body
        self.head = b""
        self.body = b""
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            self._answer_one()
        finally:
            self.sock.close()

    def _answer_one(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            self.head, _, rest = data.partition(b"\r\n\r\n")
            length = int(next((line.split(b":", 1)[1] for line in self.head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), b"0"))
            body = bytearray(rest)
            while self.read_body and len(body) < length:
                chunk = conn.recv(1 << 20)
                if not chunk:
                    break
                body += chunk
            self.body = bytes(body)
            conn.sendall(self.answer)


def test_the_body_is_the_pieces_in_order_with_their_exact_length(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 * (1 << 20) + 17))  # several sendfile and read rounds
    small = tmp_path / "small.txt"
    small.write_bytes(b"statement")
    pieces = [b"--b\r\n", FileRange(small, 9), b"\r\n--b\r\n", FileRange(big, big.stat().st_size),
              b"\r\n--b--\r\n"]
    server = _OneShotServer(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}")
    seen: list[int] = []

    response = post(f"http://127.0.0.1:{server.port}/api/v1/statements", pieces,
                    {"Content-Type": "multipart/form-data; boundary=b"}, progress=seen.append)

    server.thread.join(10)
    assert (response.status, response.body) == (201, b"{}")
    assert server.head.startswith(b"POST /api/v1/statements HTTP/1.1\r\n")
    assert f"Content-Length: {body_length(pieces)}".encode() in server.head
    assert server.body == (b"--b\r\nstatement\r\n--b\r\n" + big.read_bytes() + b"\r\n--b--\r\n")
    assert sum(seen) == 9 + big.stat().st_size


def test_an_answer_before_the_body_is_read_is_returned(tmp_path: Path) -> None:
    big = tmp_path / "video.mp4"
    big.write_bytes(b"\0" * (64 << 20))
    problem = b'{"detail": "too large"}'
    server = _OneShotServer(b"HTTP/1.1 413 Content Too Large\r\nConnection: close\r\n"
                            b"Content-Length: %d\r\n\r\n%s" % (len(problem), problem),
                            read_body=False)

    response = post(f"http://127.0.0.1:{server.port}/x", [FileRange(big, 64 << 20)], {})

    assert (response.status, response.body) == (413, problem)


@pytest.mark.parametrize(("answer", "expected"), [
    (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}",
     (201, b"{}")),
    (b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"3;x=1\r\n{\"a\r\n4\r\n\": 1\r\n1\r\n}\r\n0\r\nX-Trailer: y\r\n\r\n", (201, b'{"a": 1}')),
    (b"HTTP/1.0 500 Oops\r\nConnection: close\r\n\r\nno length", (500, b"no length")),
    (b"HTTP/1.1 204 No Content\r\n\r\n", (204, b"")),
])
def test_answers_are_read_by_their_framing(answer: bytes, expected: tuple[int, bytes]) -> None:
    server = _OneShotServer(answer)
    response = post(f"http://127.0.0.1:{server.port}/x?a=1", [b"body"], {"X-A": "b"})
    server.thread.join(10)
    assert (response.status, response.body) == expected
    assert server.head.startswith(b"POST /x?a=1 HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{server.port}\r\n".encode() in server.head + b"\r\n"
    assert b"X-A: b" in server.head and server.body == b"body"


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 201 Created\r\nContent-Length: 10\r\n\r\n{}",
    b"SMTP ready\r\n\r\n",
    b"",
])
def test_a_truncated_or_foreign_answer_is_an_oserror(answer: bytes) -> None:
    server = _OneShotServer(answer)
    with pytest.raises(streaming_post.ProtocolError):
        post(f"http://127.0.0.1:{server.port}/x", [b"body"], {})


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 9999999999\r\n\r\n{}",
    b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"x" * (17 << 20),
])
def test_an_answer_too_long_to_be_a_receipt_is_refused(answer: bytes) -> None:
    server = _OneShotServer(answer)
    with pytest.raises(streaming_post.ProtocolError, match="longer than 16 MiB"):
        post(f"http://127.0.0.1:{server.port}/x", [b"body"], {})


def test_a_header_with_a_line_break_is_refused() -> None:
    with pytest.raises(ValueError):
        streaming_post._head("POST / HTTP/1.1", {"Authorization": "Bearer x\r\nX-Evil: 1"})


def test_https_through_a_proxy_opens_a_connect_tunnel(monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = _OneShotServer(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n",
                           read_body=False)
    for name in ("NO_PROXY", "no_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", f"http://u:p@127.0.0.1:{proxy.port}")
    with pytest.raises(OSError, match="Tunnel connection failed: 407"):
        post("https://node.example/api", [b"x"], {})
    proxy.thread.join(10)
    assert proxy.head.startswith(b"CONNECT node.example:443 HTTP/1.1\r\nHost: node.example:443")
    assert b"Proxy-Authorization: Basic dTpw" in proxy.head


def test_a_file_that_shrank_since_its_length_was_declared_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    path.write_bytes(b"x" * 1000)
    server = _OneShotServer(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
                            read_body=False)
    with pytest.raises(FileChangedError):
        post(f"http://127.0.0.1:{server.port}/x", [FileRange(path, 5000)], {})


def test_the_tls_path_sends_a_file_in_reads_not_sendfile(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    data = os.urandom((1 << 20) + 5)
    path.write_bytes(data)
    left, right = socket.socketpair()
    received = bytearray()

    def drain() -> None:
        while chunk := right.recv(1 << 20):
            received.extend(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    streaming_post._send_file(left, FileRange(path, len(data)), lambda n: None, tls=True)
    left.close()
    reader.join(10)
    right.close()
    assert bytes(received) == data


@pytest.mark.parametrize(("env", "url", "expected"), [
    ({}, "https://node.example/", None),
    ({"HTTPS_PROXY": "http://proxy:3128"}, "https://node.example/", ("proxy", 3128)),
    ({"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "node.example"},
     "https://node.example/", None),
    ({"HTTP_PROXY": "proxy:8080"}, "http://node.example/", ("proxy", 8080)),
    ({"ALL_PROXY": "http://proxy:1"}, "https://node.example/", ("proxy", 1)),
])
def test_proxies_come_from_the_environment(monkeypatch: pytest.MonkeyPatch,
                                           env: dict[str, str], url: str,
                                           expected: tuple[str, int] | None) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy",
                 "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    proxy = streaming_post._proxy_for(streaming_post.urllib.parse.urlsplit(url))
    assert (None if proxy is None else (proxy.hostname, proxy.port)) == expected


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class _TlsServer(_OneShotServer):
    def __init__(self, answer: bytes, cert: Path, key: Path) -> None:
        import ssl

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        self._context = context
        super().__init__(answer)

    def _serve(self) -> None:
        self.sock = self._context.wrap_socket(self.sock, server_side=True)
        with contextlib.suppress(OSError):  # the client refused the certificate
            super()._serve()


def test_https_checks_the_certificate_unless_told_not_to(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = _self_signed(tmp_path)
    data = os.urandom((1 << 20) + 3)
    path = tmp_path / "a.bin"
    path.write_bytes(data)
    answer = b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}"

    untrusted = _TlsServer(answer, cert, key)
    with pytest.raises(OSError):  # ssl.SSLCertVerificationError
        post(f"https://127.0.0.1:{untrusted.port}/x", [FileRange(path, len(data))], {})

    insecure = _TlsServer(answer, cert, key)
    response = post(f"https://127.0.0.1:{insecure.port}/x", [b"<", FileRange(path, len(data))],
                    {}, verify=False)
    insecure.thread.join(10)
    assert response.status == 201 and insecure.body == b"<" + data

    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the node's CA in the trust store
    trusted = _TlsServer(answer, cert, key)
    response = post(f"https://127.0.0.1:{trusted.port}/x", [FileRange(path, len(data))], {})
    trusted.thread.join(10)
    assert response.status == 201 and trusted.body == data


class _TunnelProxy:
    """Accepts one CONNECT, answers 200, then relays bytes both ways."""

    def __init__(self, target_port: int) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.target_port = target_port
        self.head = b""
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        with self.sock, self.sock.accept()[0] as client:
            while b"\r\n\r\n" not in self.head:
                self.head += client.recv(65536)
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            with socket.create_connection(("127.0.0.1", self.target_port)) as upstream:
                back = threading.Thread(target=self._relay, args=(upstream, client), daemon=True)
                back.start()
                self._relay(client, upstream)
                back.join(10)

    @staticmethod
    def _relay(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(1 << 16):
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)


def test_https_through_a_connect_tunnel_reaches_the_node(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = _self_signed(tmp_path)
    node = _TlsServer(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}", cert, key)
    proxy = _TunnelProxy(node.port)
    for name in ("NO_PROXY", "no_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    path = tmp_path / "a.bin"
    path.write_bytes(data := os.urandom((1 << 20) + 1))

    response = post(f"https://127.0.0.1:{node.port}/x", [FileRange(path, len(data))], {})

    node.thread.join(10)
    assert (response.status, response.body) == (201, b"{}") and node.body == data
    assert proxy.head.startswith(f"CONNECT 127.0.0.1:{node.port} HTTP/1.1\r\n".encode())

