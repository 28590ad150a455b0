"""From a consent record to the keys a statement is sealed to. Pure policy, no I/O.

Rules (docs/intake.md, "Consent and keys"):

1. No consent, no seal. Storage, the explanation of risks and the explanation
   of withdrawal must each be answered ``yes``; otherwise nothing is sealed.
2. The receiving bodies are exactly those answered ``yes`` in ``sharing``; at
   least one is needed. A body named twice is an error, not a guess.
3. Every consented body must have at least one active key; a body without one
   could never open its copy, so the statement is refused (422 no-active-key)
   rather than silently sent to fewer bodies than the witness chose.
4. A body's kind is post-quantum (``mlkem768x25519``) if it has any active
   post-quantum key; then only its post-quantum keys are used, because adding
   a classical stanza would reduce the copy to classical security. Otherwise
   its X25519 keys are used.
5. One sealed copy per kind, each to the union of the keys of the bodies of
   that kind. A body receives exactly the copy of its kind; nothing is ever
   downgraded to classical-only security.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from ...schemas.statements import Consent
from ..models.recipients import KeyKind
from .errors import InvalidStatementError, NoActiveKeyError, NoConsentError


class RecipientRow(Protocol):
    """What this module reads of a recipient row (``models.recipients.Recipient``)."""

    @property
    def id(self) -> str: ...

    @property
    def body_id(self) -> str: ...

    @property
    def recipient(self) -> str: ...

    @property
    def kind(self) -> KeyKind: ...

    @property
    def fingerprint(self) -> str: ...


@dataclass(frozen=True)
class PlannedKey:
    recipient_id: str
    body_id: str
    recipient: str
    fingerprint: str
    kind: KeyKind


@dataclass(frozen=True)
class KeyGroup:
    """One sealed copy: the bodies that receive it and the keys it is sealed to."""

    kind: KeyKind
    bodies: tuple[str, ...]
    keys: tuple[PlannedKey, ...]

    def recipient_strings(self) -> list[str]:
        """The distinct recipient strings, in a stable order (a key in two bodies wraps once)."""
        return sorted({key.recipient for key in self.keys})


@dataclass(frozen=True)
class SealPlan:
    bodies: Mapping[str, KeyKind]
    groups: tuple[KeyGroup, ...]


def consented_bodies(consent: Consent) -> list[str]:
    """The body ids answered ``yes``, after checking the consent allows a seal at all."""
    if consent.storage.answer != "yes":
        raise NoConsentError("the witness did not consent to storage",
                             field="record.sealed.consent.storage")
    if consent.risks_explained.answer != "yes":
        raise NoConsentError("the risks were not explained to the witness",
                             field="record.sealed.consent.risks_explained")
    if consent.withdrawal_explained.answer != "yes":
        raise NoConsentError("withdrawal and its limits were not explained to the witness",
                             field="record.sealed.consent.withdrawal_explained")
    seen: set[str] = set()
    for index, item in enumerate(consent.sharing):
        if item.body_id in seen:
            raise InvalidStatementError(
                f"receiving body {item.body_id} is answered twice",
                field=f"record.sealed.consent.sharing.{index}.body_id")
        seen.add(item.body_id)
    bodies = [item.body_id for item in consent.sharing if item.answer == "yes"]
    if not bodies:
        raise NoConsentError("the witness consented to no receiving body",
                             field="record.sealed.consent.sharing")
    return bodies


def plan_seal(bodies: Sequence[str], active: Mapping[str, Sequence[RecipientRow]]) -> SealPlan:
    """Group the active keys of ``bodies`` into one copy per key kind (rules 3 to 5)."""
    without_keys = [body for body in bodies if not active.get(body)]
    if without_keys:
        raise NoActiveKeyError(
            "no active key for receiving body " + ", ".join(sorted(without_keys))
            + "; ask an administrator to register one, or record consent for other bodies",
            field="record.sealed.consent.sharing",
        )
    kinds: dict[str, KeyKind] = {}
    members: dict[KeyKind, list[str]] = {}
    keys: dict[KeyKind, list[PlannedKey]] = {}
    for body in sorted(bodies):
        rows = active[body]
        kind = (KeyKind.mlkem768x25519
                if any(KeyKind(row.kind) is KeyKind.mlkem768x25519 for row in rows)
                else KeyKind.x25519)
        kinds[body] = kind
        members.setdefault(kind, []).append(body)
        for row in rows:
            if KeyKind(row.kind) is kind:
                keys.setdefault(kind, []).append(
                    PlannedKey(row.id, body, row.recipient, row.fingerprint, kind))
    groups = tuple(
        KeyGroup(kind, tuple(members[kind]), tuple(keys[kind]))
        for kind in sorted(members, key=lambda k: k.value)
    )
    return SealPlan(kinds, groups)
