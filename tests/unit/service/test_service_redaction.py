"""The redaction processor's rules, one by one (the end-to-end canary is in tests/api)."""

from __future__ import annotations

from typing import Any

from evidence_intake.service.logging import REDACTED, redact


def _run(**fields: Any) -> dict[str, Any]:
    return dict(redact(None, "info", {"event": "e", **fields}))


def test_secret_and_content_fields_are_masked() -> None:
    out = _run(password="p", api_token="t", Authorization="a", statement="s", text="x",
               filename="witness.mp3", nested={"passphrase": "q", "size": 3})
    for key in ("password", "api_token", "Authorization", "statement", "text", "filename"):
        assert out[key] == REDACTED, key
    assert out["nested"] == {"passphrase": REDACTED, "size": 3}


def test_ids_sizes_and_digests_pass() -> None:
    out = _run(token_id="0b4c", account_id="a1", size=12, sha256="ab" * 32, route="/x")
    assert out == {"event": "e", "token_id": "0b4c", "account_id": "a1", "size": 12,
                   "sha256": "ab" * 32, "route": "/x"}


def test_secret_values_are_masked_anywhere() -> None:
    out = _run(note="key AGE-SECRET-KEY-1QQQQ and eit_" + "A" * 43 + " and Bearer abc.def")
    assert "AGE-SECRET-KEY" not in out["note"]
    assert "eit_A" not in out["note"]
    assert "abc.def" not in out["note"]
    assert out["note"].count(REDACTED) == 3


def test_long_strings_and_bytes_are_dropped() -> None:
    out = _run(pasted="x" * 600, raw=b"\x00" * 10)
    assert out["pasted"] == "[dropped: 600 chars]"
    assert out["raw"] == "[dropped: 10 bytes]"


def test_exceptions_keep_type_and_frames_but_not_message() -> None:
    try:
        raise ValueError("the witness said CANARY")
    except ValueError as err:
        out = _run(exc_info=err)
    assert out["exception"]["type"] == "builtins.ValueError"
    assert "CANARY" not in repr(out)
    assert out["exception"]["frames"]
