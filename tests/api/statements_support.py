"""Shared setup for the statements API tests: bodies, keys and uploads."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

import anyio
from evidence_intake.crypto.age import X25519Identity, decrypt
from evidence_intake.crypto.age.mlkem768x25519 import HybridIdentity
from evidence_intake.service.intake.blobstore import FilesystemBlobStore
from evidence_intake.service.recipient_sets import add_recipient, create_body
from intake_api_support import Api
from intake_samples import multipart, record_bytes


@dataclass
class Bodies:
    """Three receiving bodies: classical ``un``, post-quantum ``icc``, ``empty`` without keys."""

    un: str
    icc: str
    empty: str
    un_key: X25519Identity
    icc_key: HybridIdentity


def make_bodies(api: Api) -> Bodies:
    admin_id, _ = api.create_account("admin")
    un_key, icc_key = X25519Identity.generate(), HybridIdentity.generate()
    with api.database.session() as session:
        un = create_body(session, actor=admin_id, name=api.unique("UN mechanism"), description="")
        icc = create_body(session, actor=admin_id, name=api.unique("ICC OTP"), description="")
        empty = create_body(session, actor=admin_id, name=api.unique("No keys"), description="")
        session.flush()
        add_recipient(session, api.settings, actor=admin_id, body_id=un.id, organisation="UN",
                      person="Investigator", recipient=str(un_key.recipient))
        add_recipient(session, api.settings, actor=admin_id, body_id=icc.id, organisation="ICC",
                      person="Investigator", recipient=str(icc_key.recipient))
        ids = un.id, icc.id, empty.id
        session.commit()
    return Bodies(*ids, un_key=un_key, icc_key=icc_key)


def submit(api: Api, rec: dict[str, Any], text: bytes = b"statement",
           attachments: tuple[bytes, ...] = (), role: str = "counsellor",
           headers: dict[str, str] | None = None) -> Any:
    parts: list[tuple[str, str | None, str, bytes]] = [
        ("record", None, "application/json", record_bytes(rec)),
        ("text", None, "text/plain; charset=utf-8", text)]
    parts += [("attachment", f"evidence-{i}.bin", "application/octet-stream", a)
              for i, a in enumerate(attachments)]
    body, ctype = multipart(parts)
    return api.client.post("/api/v1/statements", content=body,
                           headers={**api.auth(role), "Content-Type": ctype, **(headers or {})})


def open_blob(api: Api, digest: str, identity: Any) -> bytes:
    store = FilesystemBlobStore(api.settings.blob_path)
    out = io.BytesIO()
    with store.open(digest) as src:
        decrypt(src, out, [identity])
    return out.getvalue()


def open_record(api: Api, digest: str, identity: Any) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(open_blob(api, digest, identity))
    return doc


def asgi_headers(api: Api, body: bytes, ctype: str, role: str = "counsellor") -> dict[str, str]:
    """The headers :func:`call_submit` sends: the role's credentials and the body's framing."""
    return {**api.auth(role), "content-type": ctype, "content-length": str(len(body)),
            "host": "testserver"}


def call_submit(app: Any, headers: dict[str, str], chunks: list[bytes], *,
                disconnect: bool = False) -> list[dict[str, Any]]:
    """``POST /api/v1/statements`` straight through the ASGI app; the messages it sent.

    The body arrives as ``chunks``; with ``disconnect`` the client vanishes
    after them instead of waiting for the answer.
    """
    sent: list[dict[str, Any]] = []
    queue = list(chunks)

    async def receive() -> dict[str, Any]:
        if queue:
            await anyio.sleep(0)
            chunk = queue.pop(0)
            return {"type": "http.request", "body": chunk,
                    "more_body": disconnect or bool(queue)}
        if not disconnect:
            await anyio.sleep(3600)  # a well-behaved client just waits for the answer
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "https", "path": "/api/v1/statements", "raw_path": b"/api/v1/statements",
        "root_path": "", "query_string": b"", "server": ("testserver", 443),
        "client": ("127.0.0.1", 50000),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    anyio.run(app, scope, receive, send)
    return sent
