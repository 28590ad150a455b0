"""A push parser for ``multipart/form-data`` that never buffers a part on disk.

Starlette's ``request.form()`` spools large parts to temporary files, which
would put plaintext on disk; this module drives python-multipart's low-level
:class:`python_multipart.MultipartParser` with callbacks instead. Each part is
handed to a :class:`PartSink` chosen by the caller from the part's headers, and
its bytes are pushed to that sink as they arrive. The parser itself holds at
most one header block (bounded by python-multipart) and the current chunk.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, cast

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

MAX_HEADER_BYTES = 4096


class MultipartError(ValueError):
    """The body is not well-formed multipart/form-data."""


@dataclass(frozen=True)
class PartInfo:
    """A part's headers: form field name, optional file name and content type."""

    name: str
    filename: str | None
    content_type: str


class PartSink(Protocol):
    """Receives one part's bytes; ``close`` is called at the end of the part.

    ``write`` gets a view into the parser's input chunk (no copy): it must use
    or copy the bytes before returning and never keep the view.
    """

    def write(self, data: memoryview, /) -> None: ...

    def close(self) -> None: ...


def boundary_from_content_type(value: str) -> bytes:
    """The boundary of a ``multipart/form-data`` content type, or :class:`MultipartError`."""
    ctype, options = parse_options_header(value)
    if ctype != b"multipart/form-data":
        raise MultipartError("expected multipart/form-data")
    boundary = options.get(b"boundary")
    if not boundary or len(boundary) > 70:
        raise MultipartError("multipart/form-data needs a boundary of 1 to 70 characters")
    return boundary


class StreamingFormParser:
    """Feed the body with :meth:`feed`; call :meth:`finish` at its end.

    ``open_part(info)`` is called once the headers of a part are complete and
    returns the sink for its data. Exceptions raised by a sink propagate out of
    :meth:`feed` unchanged, so the caller sees limit and validation errors as
    they happen.
    """

    def __init__(self, boundary: bytes, open_part: Callable[[PartInfo], PartSink]) -> None:
        self._open_part = open_part
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._headers: dict[str, str] = {}
        self._header_bytes = 0
        self._sink: PartSink | None = None
        self._ended = False
        self._parser = MultipartParser(
            boundary,
            callbacks={
                "on_part_begin": self._on_part_begin,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished,
                "on_part_data": self._on_part_data,
                "on_part_end": self._on_part_end,
                "on_end": self._on_end,
            },
        )

    # -- callbacks (python-multipart calls them with slices of its input) --

    def _on_part_begin(self) -> None:
        self._headers = {}
        self._header_bytes = 0

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > MAX_HEADER_BYTES:
            raise MultipartError("part headers are too long")

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._count(end - start)
        self._header_field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._count(end - start)
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        name = self._header_field.decode("latin-1").strip().lower()
        self._headers[name] = self._header_value.decode("latin-1").strip()
        self._header_field.clear()
        self._header_value.clear()

    def _on_headers_finished(self) -> None:
        disposition, options = parse_options_header(self._headers.get("content-disposition", ""))
        if disposition != b"form-data" or b"name" not in options:
            raise MultipartError("each part needs Content-Disposition: form-data; name=...")
        raw_filename = options.get(b"filename")
        info = PartInfo(
            name=options[b"name"].decode("utf-8", "replace"),
            filename=None if raw_filename is None else _decode_filename(raw_filename),
            content_type=self._headers.get("content-type", "text/plain").strip(),
        )
        self._sink = self._open_part(info)

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._sink is None:
            raise MultipartError("part data before its headers")
        self._sink.write(memoryview(data)[start:end])

    def _on_part_end(self) -> None:
        sink, self._sink = self._sink, None
        if sink is not None:
            sink.close()

    def _on_end(self) -> None:
        self._ended = True

    # -- driving --

    def feed(self, chunk: bytes | bytearray) -> None:
        """Parse ``chunk``; sinks get views of it, so it must not change during the call.

        A ``bytearray`` (the upload's reusable receive buffers) is parsed as it
        is: python-multipart only searches, indexes and slices its input,
        which bytes and bytearray do alike (tests/unit/service/
        test_intake_multipart.py feeds both).
        """
        try:
            self._parser.write(cast(bytes, chunk))
        except MultipartParseError as err:
            raise MultipartError("malformed multipart body") from err

    def finish(self) -> None:
        """Check that the closing boundary was seen (a truncated body is an error)."""
        try:
            self._parser.finalize()
        except MultipartParseError as err:
            raise MultipartError("malformed multipart body") from err
        if not self._ended:
            raise MultipartError("the multipart body ends before its closing boundary")


def _decode_filename(raw: bytes) -> str:
    # Browsers and httpx send UTF-8 in the quoted filename; python-multipart
    # hands it to us as latin-1 bytes of the header, i.e. the raw octets.
    name = raw.decode("utf-8", "replace")
    return name.replace("\\", "/").rsplit("/", 1)[-1][:255]
