"""Zawgyi detection and conversion on real Burmese text (UDHR article 1 and its title).

The Zawgyi samples are the same sentences typed with a Zawgyi keyboard; their
ICU conversion must give exactly the Unicode text, and Unicode text must come
back untouched (converting it would corrupt it).
"""

from __future__ import annotations

import pytest
from evidence_intake.service.intake.zawgyi import (
    MIN_MYANMAR_CHARS,
    ZAWGYI_THRESHOLD,
    classify,
    unicode_forms,
)

ARTICLE_1_ZAWGYI = (
    "လူတိုင္းသည္ တူညီ လြတ္လပ္ေသာ ဂုဏ္သိကၡာျဖင့္ လည္းေကာင္း၊ "
    "တူညီလြတ္လပ္ေသာ အခြင့္အေရးမ်ားျဖင့္ လည္းေကာင္း၊ ေမြးဖြားလာသူမ်ား ျဖစ္သည္။"
)
ARTICLE_1_UNICODE = (
    "လူတိုင်းသည် တူညီ လွတ်လပ်သော ဂုဏ်သိက္ခာဖြင့် လည်းကောင်း၊ "
    "တူညီလွတ်လပ်သော အခွင့်အရေးများဖြင့် လည်းကောင်း၊ မွေးဖွားလာသူများ ဖြစ်သည်။"
)
TITLE_ZAWGYI = "အျပည္ျပည္ဆိုင္ရာ လူ႔အခြင့္အေရး ေၾကညာစာတမ္း"
TITLE_UNICODE = "အပြည်ပြည်ဆိုင်ရာ လူ့အခွင့်အရေး ကြေညာစာတမ်း"


@pytest.mark.parametrize(("zawgyi", "unicode"), [
    (ARTICLE_1_ZAWGYI, ARTICLE_1_UNICODE),
    (TITLE_ZAWGYI, TITLE_UNICODE),
])
def test_zawgyi_text_is_detected_and_converted(zawgyi: str, unicode: str) -> None:
    forms = unicode_forms(zawgyi)
    assert forms.encoding == "zawgyi"
    assert forms.probability is not None and forms.probability >= ZAWGYI_THRESHOLD
    assert forms.unicode == unicode
    assert forms.transformations == ("zawgyi-to-unicode",)


@pytest.mark.parametrize("unicode", [ARTICLE_1_UNICODE, TITLE_UNICODE])
def test_unicode_burmese_is_left_alone(unicode: str) -> None:
    forms = unicode_forms(unicode)
    assert forms.encoding == "unicode"
    assert forms.probability is not None and forms.probability < ZAWGYI_THRESHOLD
    assert forms.unicode == unicode
    assert forms.transformations == ()


def test_mixed_english_and_zawgyi_statement_is_converted_only_in_its_burmese() -> None:
    text = f"Interview notes.\n{ARTICLE_1_ZAWGYI}\nEnd."
    forms = unicode_forms(text)
    assert forms.encoding == "zawgyi"
    assert forms.unicode == f"Interview notes.\n{ARTICLE_1_UNICODE}\nEnd."


def test_text_without_myanmar_characters_is_not_scored() -> None:
    # The detector answers -inf here; we report that as its own category.
    assert classify("The witness served in LIB 33 from 2017 to 2021.") == ("no-myanmar-text", None)
    assert unicode_forms("").encoding == "no-myanmar-text"


def test_too_few_myanmar_characters_are_undetermined_and_kept_as_typed() -> None:
    short = TITLE_ZAWGYI[:4]  # "အျပည" scores as Zawgyi, on too little evidence
    assert sum(0x1000 <= ord(c) <= 0x109F for c in short) < MIN_MYANMAR_CHARS
    forms = unicode_forms(short)
    assert forms.encoding == "undetermined"
    assert forms.unicode == short
    assert forms.transformations == ()


def test_detector_and_transliterator_are_built_once_for_all_threads() -> None:
    """Worker threads come and go; each must not rebuild the model (about 40 ms)."""
    import threading

    from evidence_intake.service.intake import zawgyi

    seen: list[tuple[object, object]] = []

    def convert() -> None:
        zawgyi.unicode_forms(ARTICLE_1_ZAWGYI)
        seen.append((zawgyi._detector(), zawgyi._transliterator()))

    threads = [threading.Thread(target=convert) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 4
    assert len({id(d) for d, _ in seen}) == 1
    assert len({id(t) for _, t in seen}) == 1
    assert zawgyi.unicode_forms(ARTICLE_1_ZAWGYI).unicode == ARTICLE_1_UNICODE
