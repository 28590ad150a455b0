"""Detect Burmese typed on a Zawgyi keyboard and add its Unicode form, in memory.

Zawgyi is a font hack that reuses Myanmar code points for other glyphs; text
typed with it is valid UTF-8 but unreadable in a Unicode font, and a Unicode
converter applied to Unicode text corrupts it. So we convert only when the
detector is confident, and we always keep the bytes exactly as typed.

Decision rule (documented in docs/intake.md):

1. Count the Myanmar code points (U+1000-U+109F, U+AA60-U+AA7F, U+A9E0-U+A9FF).
   None: ``no-myanmar-text`` (the detector would answer ``-inf``).
2. Fewer than :data:`MIN_MYANMAR_CHARS`: ``undetermined``. The detector is
   unreliable on a few characters (a lone consonant scores about 0.5), and a
   wrong conversion would damage the witness's words; the text is kept as typed.
3. Otherwise ``zawgyi`` if the probability is at least :data:`ZAWGYI_THRESHOLD`
   (the threshold Google's myanmar-tools documentation recommends), else
   ``unicode``.

Only ``zawgyi`` text is transliterated, with ICU's ``Zawgyi-my`` transform.
Nothing here touches the disk or logs; callers must not log the text either.
"""

from __future__ import annotations

import itertools
import math
import re
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import icu  # type: ignore[import-untyped]  # PyICU ships no type information
from myanmartools import ZawgyiDetector  # type: ignore[import-untyped]  # no stubs

ZAWGYI_THRESHOLD = 0.95
MIN_MYANMAR_CHARS = 10

Encoding = Literal["unicode", "zawgyi", "undetermined", "no-myanmar-text"]


@dataclass(frozen=True)
class TextForms:
    """The detection outcome and the Unicode form of one text."""

    encoding: Encoding
    probability: float | None
    unicode: str
    transformations: tuple[Literal["zawgyi-to-unicode"], ...]


_MYANMAR = re.compile("[\u1000-\u109f\uaa60-\uaa7f\ua9e0-\ua9ff]")


# The detector and the transliterator are built once per process, on first
# use (about 15 ms and 27 ms), and shared by every thread. Per-thread copies
# were rebuilt by every new worker thread, and the thread pool retires idle
# threads, so with sparse traffic nearly every Burmese statement paid for both.
# The detector only reads its model after construction. ICU transliterators
# are not documented as thread-safe, so the shared one is used under a lock.
_build_lock = threading.Lock()
_transliterate_lock = threading.Lock()
_shared: dict[str, Any] = {}


def _shared_instance(name: str, build: Callable[[], Any]) -> Any:
    """The process's one ``name`` object, built by ``build`` on first use."""
    found = _shared.get(name)
    if found is None:
        with _build_lock:
            found = _shared.get(name)
            if found is None:
                found = _shared[name] = build()
    return found


def _new_detector() -> ZawgyiDetector:
    # myanmartools 1.2 loads its model with the deprecated
    # importlib.resources.open_binary; the warning is theirs, not ours.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning,
                                message="open_binary is deprecated")
        return ZawgyiDetector()


def _detector() -> ZawgyiDetector:
    return _shared_instance("detector", _new_detector)


def _transliterator() -> icu.Transliterator:
    return _shared_instance("transliterator",
                            lambda: icu.Transliterator.createInstance("Zawgyi-my"))


def classify(text: str) -> tuple[Encoding, float | None]:
    """Return the detected encoding of ``text`` and the detector's probability."""
    # Only "none", "fewer than the minimum" or "enough" matters: stop counting there.
    myanmar = sum(1 for _ in itertools.islice(_MYANMAR.finditer(text), MIN_MYANMAR_CHARS))
    if myanmar == 0:
        return "no-myanmar-text", None
    probability = float(_detector().get_zawgyi_probability(text))
    if math.isinf(probability) or math.isnan(probability):
        return "no-myanmar-text", None
    if myanmar < MIN_MYANMAR_CHARS:
        return "undetermined", probability
    return ("zawgyi" if probability >= ZAWGYI_THRESHOLD else "unicode"), probability


def unicode_forms(text: str) -> TextForms:
    """Detect Zawgyi in ``text`` and return its Unicode form (``text`` itself if not Zawgyi)."""
    encoding, probability = classify(text)
    if encoding != "zawgyi":
        return TextForms(encoding, probability, text, ())
    trans = _transliterator()
    with _transliterate_lock:
        converted = str(trans.transliterate(text))
    return TextForms(encoding, probability, converted, ("zawgyi-to-unicode",))
