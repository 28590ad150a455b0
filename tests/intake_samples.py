"""Sample statement records for the intake tests (unit, API, CLI, bench).

Everything here is invented; ``CANARY`` marks content that must never be
found in clear anywhere on disk or in logs.
"""

from __future__ import annotations

import copy
import json
import os
from typing import Any

CANARY = "CANARY-7f3a9c-WITNESS-ZAW-MIN-HTET"

ZAWGYI_ARTICLE_1 = (
    "လူတိုင္းသည္ တူညီ လြတ္လပ္ေသာ ဂုဏ္သိကၡာျဖင့္ လည္းေကာင္း၊ "
    "တူညီလြတ္လပ္ေသာ အခြင့္အေရးမ်ားျဖင့္ လည္းေကာင္း၊ ေမြးဖြားလာသူမ်ား ျဖစ္သည္။"
)
UNICODE_ARTICLE_1 = (
    "လူတိုင်းသည် တူညီ လွတ်လပ်သော ဂုဏ်သိက္ခာဖြင့် လည်းကောင်း၊ "
    "တူညီလွတ်လပ်သော အခွင့်အရေးများဖြင့် လည်းကောင်း၊ မွေးဖွားလာသူများ ဖြစ်သည်။"
)

T = "2026-11-20T09:30:00Z"


def stored_files(blob_dir: str | os.PathLike[str]) -> list[str]:
    """The blob store's files, sorted, without the leases living processes hold on it.

    Each worker process holds one lease file (``.lease-ID``) on the store from
    its first upload until it exits; it is not part of any upload.
    """
    return sorted(n for n in os.listdir(blob_dir) if not n.startswith(".lease-"))


def _yes() -> dict[str, str]:
    return {"answer": "yes", "answered_at": T}


def record(bodies_yes: list[str], bodies_no: list[str] | None = None, *,
           witness: str = "Witness A", amends: str | None = None,
           recording: int | None = None) -> dict[str, Any]:
    """A valid StatementInput for ``bodies_yes`` (consented) and ``bodies_no`` (refused)."""
    sharing = [{"body_id": b, "answer": "yes", "onward_to_courts": "yes", "answered_at": T}
               for b in bodies_yes]
    sharing += [{"body_id": b, "answer": "no", "onward_to_courts": "no", "answered_at": T}
                for b in bodies_no or []]
    consent: dict[str, Any] = {
        "storage": _yes(),
        "sharing": sharing,
        "publication_or_advocacy": {"answer": "no", "answered_at": T},
        "identity_disclosure_to_court": _yes(),
        "willingness_to_testify": _yes(),
        "risks_explained": _yes(),
        "withdrawal_explained": _yes(),
        "explained_in_language": "my",
        "taken_by": ["Counsellor One"],
    }
    if recording is not None:
        consent["recording_attachment"] = recording
    routing: dict[str, Any] = {"language": "my", "script": "Mymr", "priority": "urgent",
                               "restricted": True}
    if amends is not None:
        routing["amends"] = amends
    return {
        "schema": "statement-record/v1",
        "sealed": {
            "witness": {"name": witness, "aliases": ["Ko Lay"], "date_of_birth": "1994",
                        "contact": "via the shelter", "alias_identity_link": "alias used in unit"},
            "service": {"former_unit": "LIB 000", "rank": "Corporal", "service_number": "00000",
                        "role": "radio operator", "served_from": "2016-04",
                        "served_to": "2021-03"},
            "interview": {"started_at": T, "place": "Shelter room 2", "mode": "in_person",
                          "interviewers": ["Interviewer One"], "persons_present": [],
                          "interpreter": "Interpreter One", "language_pair": "my-en"},
            "incidents": [{"occurred": "2021-02", "place": "Village X",
                           "description": "Orders received by radio.", "units_involved": []}],
            "follow_up": {"willing_to_testify": "yes", "may_be_contacted": True,
                          "safe_channel": "through the shelter only"},
            "risk": {"level": "high", "assessment": "Family still in the area.",
                     "protection_needs": ["relocation"]},
            "consent": consent,
            "translation": {"language": "en", "text": "All human beings are born free.",
                            "translator": "Interpreter One"},
        },
        "routing": routing,
    }


def record_bytes(rec: dict[str, Any]) -> bytes:
    return json.dumps(rec, ensure_ascii=False).encode("utf-8")


def with_change(rec: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``rec`` with the dotted ``path`` set to ``value`` (None deletes)."""
    out = copy.deepcopy(rec)
    node: Any = out
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    last = keys[-1]
    if value is None:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return out


def multipart(parts: list[tuple[str, str | None, str, bytes]],
              boundary: str = "intake-test-boundary-91c2") -> tuple[bytes, str]:
    """Encode ``(name, filename, content_type, data)`` parts; returns (body, content type)."""
    out = bytearray()
    for name, filename, ctype, data in parts:
        out += f"--{boundary}\r\n".encode()
        disp = f'form-data; name="{name}"'
        if filename is not None:
            disp += f'; filename="{filename}"'
        out += f"Content-Disposition: {disp}\r\nContent-Type: {ctype}\r\n\r\n".encode()
        out += data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"
