"""Both ways a statement body is received: read whole (small) or streamed.

A body whose ``Content-Length`` is at most ``SMALL_BODY_BYTES`` is read whole
and handled in one worker-thread call; a larger one, or one sent without a
length (chunked), goes through the streaming pump. Both must store the same
thing, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import anyio
import pytest
from evidence_intake.schemas.statements import Receipt
from evidence_intake.service.intake.errors import MalformedBodyError, UploadAbortedError
from evidence_intake.service.intake.upload import SMALL_BODY_BYTES, _read_whole
from intake_api_support import Api
from intake_samples import multipart, record, record_bytes
from statements_support import Bodies, make_bodies, open_blob, open_record


@pytest.fixture
def bodies(api: Api) -> Bodies:
    return make_bodies(api)


def _body(bodies: Bodies, attachment: bytes) -> tuple[bytes, str]:
    return multipart([
        ("record", None, "application/json", record_bytes(record([bodies.un]))),
        ("text", None, "text/plain; charset=utf-8", b"small or streamed"),
        ("attachment", "a.bin", "application/octet-stream", attachment)])


def _check(api: Api, bodies: Bodies, response: object, attachment: bytes) -> None:
    assert response.status_code == 201, response.text  # type: ignore[attr-defined]
    receipt = Receipt.model_validate(response.json())  # type: ignore[attr-defined]
    copy = receipt.copies[0]
    doc = open_record(api, copy.statement.sha256, bodies.un_key)
    assert doc["routing"]["record_id"] == receipt.statement_id
    assert open_blob(api, copy.attachments[0].sha256, bodies.un_key) == attachment
    assert api.audit_actions()[receipt.audit.seq] == "statement.sealed"


def test_a_chunked_body_without_length_is_streamed_and_stored(api: Api, bodies: Bodies) -> None:
    attachment = os.urandom(1000)
    body, ctype = _body(bodies, attachment)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 700):
            yield body[start:start + 700]

    response = api.client.post("/api/v1/statements", content=chunks(),
                               headers={**api.auth("counsellor"), "Content-Type": ctype})
    _check(api, bodies, response, attachment)


def test_a_body_over_the_small_size_is_streamed_and_stored(api: Api, bodies: Bodies) -> None:
    attachment = os.urandom(SMALL_BODY_BYTES + 1000)
    body, ctype = _body(bodies, attachment)
    response = api.client.post("/api/v1/statements", content=body,
                               headers={**api.auth("counsellor"), "Content-Type": ctype})
    _check(api, bodies, response, attachment)


def test_read_whole_refuses_more_than_the_declared_length() -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"x" * 10
        yield b"y" * 10

    async def main() -> None:
        assert await _read_whole(body(), 20, 30) == [b"x" * 10, b"y" * 10]
        with pytest.raises(MalformedBodyError):
            await _read_whole(body(), 19, 30)

    anyio.run(main)


def test_read_whole_gives_up_on_a_client_silent_between_chunks() -> None:
    async def body() -> AsyncIterator[bytes]:
        for _ in range(4):  # each chunk in time: the deadline moves on
            await anyio.sleep(0.1)
            yield b"x" * 10
        await anyio.sleep(30)  # then silence
        yield b"never"

    async def main() -> None:
        with anyio.fail_after(10), pytest.raises(UploadAbortedError, match="stopped sending"):
            await _read_whole(body(), 100, 0.3)

    anyio.run(main)
