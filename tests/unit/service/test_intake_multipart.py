"""The push multipart parser: parts are streamed to sinks, whatever the chunking."""

from __future__ import annotations

import os

import pytest
from evidence_intake.service.intake.multipart import (
    MultipartError,
    PartInfo,
    StreamingFormParser,
    boundary_from_content_type,
)

BOUNDARY = b"----evidence-test-boundary"


def _body(parts: list[tuple[str, str | None, str, bytes]]) -> bytes:
    out = bytearray()
    for name, filename, ctype, data in parts:
        out += b"--" + BOUNDARY + b"\r\n"
        disp = f'form-data; name="{name}"'
        if filename is not None:
            disp += f'; filename="{filename}"'
        out += f"Content-Disposition: {disp}\r\nContent-Type: {ctype}\r\n\r\n".encode()
        out += data + b"\r\n"
    out += b"--" + BOUNDARY + b"--\r\n"
    return bytes(out)


class _Collect:
    def __init__(self, info: PartInfo, done: list[tuple[PartInfo, bytes]]) -> None:
        self.info, self.data, self.done, self.writes = info, bytearray(), done, 0

    def write(self, data: bytes, /) -> None:
        self.writes += 1
        self.data += data

    def close(self) -> None:
        self.done.append((self.info, bytes(self.data)))


@pytest.mark.parametrize("reused_buffer", [False, True], ids=["bytes", "reused-bytearray"])
@pytest.mark.parametrize("chunk", [1, 7, 4096, 1 << 20])
def test_parts_arrive_intact_whatever_the_chunk_size(chunk: int, reused_buffer: bool) -> None:
    # The upload's socket reader feeds one bytearray, refilled after each feed.
    payload = os.urandom(40_000) + b"\r\n--" + BOUNDARY[:-1]  # boundary-like bytes inside
    body = _body([
        ("record", None, "application/json", b'{"a": 1}'),
        ("attachment", "phöto.jpg", "image/jpeg", payload),
    ])
    done: list[tuple[PartInfo, bytes]] = []
    parser = StreamingFormParser(BOUNDARY, lambda info: _Collect(info, done))
    buffer = bytearray(chunk)
    for start in range(0, len(body), chunk):
        piece = body[start:start + chunk]
        if reused_buffer and len(piece) == chunk:
            buffer[:] = piece
            parser.feed(buffer)
        else:
            parser.feed(piece)
    parser.finish()
    assert [(i.name, i.content_type) for i, _ in done] == [
        ("record", "application/json"), ("attachment", "image/jpeg")]
    assert done[0][1] == b'{"a": 1}'
    assert done[1][1] == payload
    assert done[1][0].filename == "phöto.jpg"


def test_a_truncated_body_is_an_error() -> None:
    body = _body([("record", None, "application/json", b"{}")])
    parser = StreamingFormParser(BOUNDARY, lambda info: _Collect(info, []))
    parser.feed(body[: len(body) // 2])
    with pytest.raises(MultipartError):
        parser.finish()


def test_a_part_without_a_name_is_refused() -> None:
    body = (b"--" + BOUNDARY + b"\r\nContent-Disposition: form-data\r\n\r\nx\r\n--"
            + BOUNDARY + b"--\r\n")
    parser = StreamingFormParser(BOUNDARY, lambda info: _Collect(info, []))
    with pytest.raises(MultipartError):
        parser.feed(body)


def test_sink_errors_propagate_out_of_feed() -> None:
    class RefusedError(Exception):
        pass

    def open_part(info: PartInfo) -> _Collect:
        raise RefusedError

    parser = StreamingFormParser(BOUNDARY, open_part)
    with pytest.raises(RefusedError):
        parser.feed(_body([("text", None, "text/plain", b"x")]))


def test_path_components_are_stripped_from_file_names() -> None:
    done: list[tuple[PartInfo, bytes]] = []
    parser = StreamingFormParser(BOUNDARY, lambda info: _Collect(info, done))
    parser.feed(_body([("attachment", "../../etc/passwd", "text/plain", b"x")]))
    parser.finish()
    assert done[0][0].filename == "passwd"


@pytest.mark.parametrize("value", ["application/json", "multipart/form-data",
                                   "multipart/mixed; boundary=abc"])
def test_only_multipart_form_data_with_a_boundary_is_accepted(value: str) -> None:
    with pytest.raises(MultipartError):
        boundary_from_content_type(value)


def test_boundary_is_read_from_the_content_type() -> None:
    assert boundary_from_content_type('multipart/form-data; boundary="abc"') == b"abc"
