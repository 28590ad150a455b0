"""Receive one ``POST /api/v1/statements`` body as a stream and commit it.

The HTTP layer hands over the body as an async iterator of chunks. Sizes are
checked here before any parsing: the declared ``Content-Length`` first, then
the bytes actually received. Parsing and sealing are CPU work, so they run in
a worker thread, fed in batches of about :data:`FEED_BYTES` so the event loop
stays free for other requests while memory stays bounded. A body declared
at most :data:`SMALL_BODY_BYTES` long (a typed statement) is read whole first
and then handled in a single worker-thread call: fewer thread hops per request.

Failure handling (docs/intake.md, "Atomicity"): any exception, cancellation
or disconnect before the database commit deletes every blob of the upload.
Once the commit has been *attempted*, a failure can no longer tell whether
the transaction landed, so renamed blobs are left to garbage collection,
which deletes them only if no statement references them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import anyio
import structlog

from ...schemas.statements import Receipt, StatementInput
from .. import threads
from ..db import Database
from ..models.types import new_id
from . import records
from .background_hash import LendableBuffer
from .blobstore import FilesystemBlobStore
from .committer import committer_for
from .errors import MalformedBodyError, TooLargeError, UnsupportedMediaError, UploadAbortedError
from .multipart import MultipartError, StreamingFormParser, boundary_from_content_type
from .routing import SealPlan, plan_seal
from .submission import Limits, Submission

if TYPE_CHECKING:
    from ..http_protocol import SocketBody

log = structlog.get_logger("evidence_intake.service.intake")

FEED_BYTES = 1 << 20
QUEUED_BATCHES = 2
# A body declared at most this long is read whole on the event loop, then
# parsed, sealed and committed in one worker-thread call (a small statement).
SMALL_BODY_BYTES = 1 << 20
# The ASGI scope extension under which ``intake serve``'s HTTP protocol offers
# a :class:`~evidence_intake.service.http_protocol.SocketBody`.
SOCKET_BODY = "evidence_intake.socket_body"
# A body read from the socket is received into this many buffers of this size,
# reused in turn (12 MiB per upload).
SOCKET_FEED_BYTES = 4 << 20
SOCKET_BUFFERS = 3
# What a client silent for the idle timeout in mid-body is told, on every path.
_STALLED = "the client stopped sending in mid-body; nothing was stored"


@dataclass(frozen=True)
class Caller:
    account_id: str
    is_admin: bool


def _planner(database: Database, caller: Caller) -> Callable[[StatementInput, list[str]], SealPlan]:
    def plan_for(record: StatementInput, bodies: list[str]) -> SealPlan:
        # Reads only, in a short transaction of its own (an upload can be
        # long): on SQLite it does not wait for the write lock behind other
        # statements' commits. commit_submissions re-checks the amended one.
        with database.read_connection() as reader:
            if record.routing.amends is not None:
                records.check_amendable(reader, record.routing.amends,
                                        account_id=caller.account_id, is_admin=caller.is_admin)
            return plan_seal(bodies, records.active_keys(reader, bodies))
    return plan_for


def _commit(database: Database, submission: Submission, caller: Caller) -> Receipt:
    sealed = submission.seal_statement()
    submission.publish()
    def committing() -> None:
        submission.commit_attempted = True

    # Several requests' statements may share the transaction (group commit).
    receipt = committer_for(database).commit(sealed, actor=caller.account_id,
                                             before_commit=committing)
    routing = sealed.routing
    # Ids, kinds, sizes and digests only: never names, text or file names.
    log.info("statement_sealed", statement_id=receipt.statement_id,
             audit_seq=receipt.audit.seq, amends=receipt.amends,
             key_kinds=[copy.key_kind for copy in receipt.copies],
             attachments=len(routing.sizes.attachment_bytes),
             plaintext_bytes=routing.sizes.text_bytes + sum(routing.sizes.attachment_bytes),
             text_encoding=routing.text_encoding)
    return receipt


async def receive_statement(
    *,
    body: AsyncIterator[bytes],
    content_type: str,
    content_length: str | None,
    limits: Limits,
    store: FilesystemBlobStore,
    database: Database,
    caller: Caller,
    socket_body: SocketBody | None = None,
) -> Receipt:
    """Parse, seal and commit one statement; raise an :class:`IntakeError` on refusal.

    ``socket_body``, offered by ``intake serve``'s HTTP protocol, lets a large
    body with a ``Content-Length`` be read from the socket by the parsing
    thread itself instead of through ``body``.
    """
    try:
        boundary = boundary_from_content_type(content_type)
    except MultipartError as err:
        raise UnsupportedMediaError(f"send multipart/form-data ({err})") from None
    declared: int | None = None
    if content_length is not None:
        try:
            declared = int(content_length)
        except ValueError:
            raise MalformedBodyError("Content-Length is not a number") from None
        if declared > limits.max_request_bytes:
            raise TooLargeError(f"the request exceeds {limits.max_request_bytes} bytes")

    submission = Submission(
        store=store, limits=limits, record_id=new_id(), counsellor_id=caller.account_id,
        created_at=datetime.now(UTC), plan_for=_planner(database, caller),
    )
    parser = StreamingFormParser(boundary, submission.open_part)

    def feed(data: bytes | bytearray) -> None:
        try:
            parser.feed(data)
        except MultipartError as err:
            raise MalformedBodyError(str(err)) from None

    def finish() -> None:
        try:
            parser.finish()
        except MultipartError as err:
            raise MalformedBodyError(str(err)) from None

    def finish_and_commit() -> Receipt:
        # One worker-thread hop for the end of the body and the commit.
        finish()
        return _commit(database, submission, caller)

    try:
        if declared is not None and declared <= min(SMALL_BODY_BYTES, limits.max_request_bytes):
            chunks = await _read_whole(body, declared, limits.idle_seconds)

            def parse_and_commit() -> Receipt:
                # One worker-thread hop for the whole small statement: parse,
                # consent lookup, sealing, blob fsyncs and the commit.
                for data in chunks:
                    feed(data)
                return finish_and_commit()

            return await anyio.to_thread.run_sync(parse_and_commit)
        if not (declared is not None and socket_body is not None
                and await _take_from_socket(socket_body, feed, limits.idle_seconds)):
            # The event loop's reads give up on a silent client as the socket
            # path does.
            await _pump(_until_idle(body, limits.idle_seconds), feed, limits.max_request_bytes)
        return await anyio.to_thread.run_sync(finish_and_commit)
    except BaseException as err:
        # Shielded: a cancelled request (client gone) must still clean up.
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(submission.abort)
        log.info("statement_not_stored", record_id=submission.record_id,
                 reason=getattr(err, "slug", type(err).__name__),
                 after_commit_attempt=submission.commit_attempted)
        raise


async def _take_from_socket(socket_body: SocketBody, feed: Callable[[bytes | bytearray], None],
                            idle_seconds: float) -> bool:
    """Read and feed the whole body in one worker-thread call; False if the server cannot.

    The declared length was checked against the limit by the caller, and
    exactly that many bytes are read. Whatever happens, the connection goes
    back to the event loop before the response is sent.
    """
    # Such a read holds its thread for the whole upload: at most
    # threads.SOCKET_READERS at once per process (others wait for a turn), on
    # threads of their own, never those authentication and statements need.
    async with threads.socket_admission():
        if not socket_body.take_over(idle_seconds):
            return False
        try:
            await anyio.to_thread.run_sync(_read_socket, socket_body, feed,
                                           limiter=threads.socket_threads())
        finally:
            socket_body.release()
    return True


def _read_socket(socket_body: SocketBody, feed: Callable[[bytes | bytearray], None]) -> None:
    """Feed the parser the body's parsed chunks, then the rest in pieces of up to 4 MiB.

    Each piece is everything the socket holds when the parser is ready for
    more, up to SOCKET_FEED_BYTES: while the upload outruns parsing and
    sealing, pieces are whole buffers, and fewer, larger pieces cost less CPU
    per byte than one per ``recv`` (docs/intake.md, "Throughput"). The
    SOCKET_BUFFERS buffers are received into and reused in turn, never
    allocated per read; the plaintext hash may still hold one it queued
    (:class:`LendableBuffer`), so each is refilled only once given back.
    """
    for data in socket_body.prefix:
        feed(data)
    socket_body.prefix = []
    buffers: list[LendableBuffer] = []
    turn = 0
    while socket_body.remaining:
        if len(buffers) < SOCKET_BUFFERS:
            buffer = LendableBuffer(min(SOCKET_FEED_BYTES, socket_body.remaining))
            buffers.append(buffer)
        else:
            buffer = buffers[turn % SOCKET_BUFFERS]
            buffer.wait_until_returned()
        turn += 1
        filled = _fill_from_socket(socket_body, buffer)
        # The parser takes whole objects: a piece that fills its buffer only
        # in part (the body's last, or a client slower than the server) is
        # copied out.
        feed(buffer if filled == len(buffer) else bytes(memoryview(buffer)[:filled]))


def _fill_from_socket(socket_body: SocketBody, buffer: bytearray) -> int:
    """Wait for bytes, then receive into ``buffer`` all there are, up to full; the count."""
    with memoryview(buffer) as view:
        try:
            filled = socket_body.recv_into(view)
            while filled < len(view) and socket_body.remaining:
                count = socket_body.recv_into(view[filled:], wait=False)
                if not count:
                    break
                filled += count
        except TimeoutError:
            raise UploadAbortedError(_STALLED) from None
        except OSError:  # ConnectionError included: reset, or closed before the end
            raise UploadAbortedError("the client disconnected; nothing was stored") from None
    return filled


async def _until_idle(body: AsyncIterator[bytes], idle_seconds: float) -> AsyncIterator[bytes]:
    """``body``'s chunks; UploadAbortedError once the client has sent nothing for ``idle_seconds``.

    Such a client holds no thread here, but it holds its connection, the
    upload's buffers and its temporary blobs for as long as it stays silent.
    """
    chunks = aiter(body)
    while True:
        with anyio.move_on_after(idle_seconds) as waiting:
            try:
                chunk = await anext(chunks)
            except StopAsyncIteration:
                return
        if waiting.cancelled_caught:
            raise UploadAbortedError(_STALLED)
        yield chunk


async def _read_whole(body: AsyncIterator[bytes], declared: int,
                      idle_seconds: float) -> list[bytes]:
    """The chunks of a body of ``declared`` bytes, never more (memory stays bounded).

    As :func:`_until_idle`, it gives up once the client has sent nothing for
    ``idle_seconds``, with one cancel scope whose deadline each chunk moves on.
    """
    chunks: list[bytes] = []
    received = 0
    with anyio.CancelScope() as waiting:
        waiting.deadline = anyio.current_time() + idle_seconds
        async for chunk in body:
            received += len(chunk)
            if received > declared:
                raise MalformedBodyError("the body is longer than its Content-Length")
            chunks.append(chunk)
            waiting.deadline = anyio.current_time() + idle_seconds
    if waiting.cancelled_caught:
        raise UploadAbortedError(_STALLED)
    return chunks


async def _pump(body: AsyncIterator[bytes], feed: Callable[[bytes], None], limit: int) -> None:
    """Read the body and feed it to the parser in a worker thread, overlapping the two.

    The reader collects about FEED_BYTES per batch; at most QUEUED_BATCHES wait
    while the thread parses and seals the previous one, so the network and the
    cipher work in parallel and memory stays bounded (a few MiB per upload).
    """
    send, receive = anyio.create_memory_object_stream[list[bytes]](
        max_buffer_size=QUEUED_BATCHES)

    def feed_all(batch: list[bytes]) -> None:
        # The chunks are fed one by one rather than joined: a join would copy
        # every byte of the upload once more on the event loop's thread.
        for data in batch:
            feed(data)

    async def consume() -> None:
        async with receive:
            async for batch in receive:
                await anyio.to_thread.run_sync(feed_all, batch)

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(consume)
            async with send:
                received = 0
                pending: list[bytes] = []
                pending_size = 0
                async for chunk in body:
                    received += len(chunk)
                    if received > limit:
                        raise TooLargeError(f"the request exceeds {limit} bytes")
                    pending.append(chunk)
                    pending_size += len(chunk)
                    if pending_size >= FEED_BYTES:
                        await send.send(pending)
                        pending = []
                        pending_size = 0
                if pending:
                    await send.send(pending)
    except BaseExceptionGroup as group:
        raise _root_cause(group) from None


def _root_cause(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first real error of a task group (not the cancellations it caused)."""
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            return _root_cause(error)
        if not isinstance(error, anyio.get_cancelled_exc_class()):
            return error
    return group.exceptions[0]
