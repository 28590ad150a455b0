"""The recipient stanza and the two interfaces that carry the age design.

A :class:`Recipient` wraps a file key into one or more stanzas; an
:class:`Identity` unwraps a file key from the stanzas of a header. Every other
part of the format (header encoding, STREAM payload, armor) is independent of
the recipient types.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol, runtime_checkable


# A NamedTuple rather than a dataclass: `intake seal` imports this module on
# every run, and dataclasses pulls in inspect, ast and tokenize (about 7 ms).
class Stanza(NamedTuple):
    """One ``-> type arg…`` stanza of an age header, with its raw body bytes."""

    type: str
    args: tuple[str, ...] = ()
    body: bytes = b""


@runtime_checkable
class Recipient(Protocol):
    """Something a file key can be sealed to.

    ``wrap`` returns the stanzas for ``file_key`` (16 bytes). It raises
    :class:`~evidence_intake.crypto.errors.CryptoError` only for a programming
    or environment fault; a valid recipient always wraps.

    ``labels`` follow the age spec: a file may only combine recipients whose
    label sets are equal (e.g. ``{"postquantum"}`` never mixes with ``set()``).
    """

    @property
    def labels(self) -> frozenset[str]: ...

    def wrap(self, file_key: bytes) -> list[Stanza]: ...


@runtime_checkable
class Identity(Protocol):
    """Something that can open a file sealed to its recipient.

    ``unwrap`` returns the 16-byte file key, or ``None`` if none of the
    stanzas is addressed to this identity. It raises
    :class:`~evidence_intake.crypto.errors.HeaderError` if a stanza of its own
    type is malformed, and :class:`~evidence_intake.crypto.errors.NoIdentityMatchError`
    never (the caller decides that after trying every identity).
    """

    def unwrap(self, stanzas: Sequence[Stanza]) -> bytes | None: ...
