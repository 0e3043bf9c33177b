"""jsproj's String.prototype.normalize and localeCompare (js/lib/unicode.js) against Python's unicodedata.

The same JavaScript runs in every host (the conformance case
unicode-normalize shows the answers are the same everywhere); here it is
checked against the reference: every code point that has a decomposition
or a combining class, and generated strings, in the four forms.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import unicodedata
from pathlib import Path

from jsproj.engine.projections import Projections

ROOT = Path(__file__).resolve().parents[2]
NOW = "2026-01-01T00:00:00.000Z"
FORMS = ("NFC", "NFD", "NFKC", "NFKD")
NORMALIZER = """
projections.aggregate('Normal').by({ Go: function (state, evt) {
  state.out = evt.texts.map(function (t) { return evt.forms.map(function (f) { return t.normalize(f); }); });
  state.order = evt.texts.slice().sort(function (a, b) { return a.localeCompare(b); });
} });
"""


def interesting() -> list[str]:
    """Every code point with a decomposition or a combining class, Hangul's bounds, and strings made of them."""
    points = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF
              and (unicodedata.decomposition(chr(c)) or unicodedata.combining(chr(c)))]  # fmt: skip
    points += ["\uac00", "\ud7a3", "\u1100\u1161", "\u1100\u1161\u11a8", "\uac00\u11a8", "a", "\u00e9"]
    rng = random.Random(26)
    pool = points[:3000] + [chr(c) for c in range(0x41, 0x7B)]
    strings = ["".join(rng.choice(pool) for _ in range(rng.randint(2, 7))) for _ in range(3000)]
    return points + strings


def normalized(texts: list[str]) -> dict[str, object]:
    record = {"position": 1, "streamId": "s", "streamType": "S", "version": 1, "timestamp": NOW,
              "event": {"$type": "Go", "$id": "e1", "texts": texts, "forms": list(FORMS)}}  # fmt: skip
    with Projections([{"file": "Normal.js", "source": NORMALIZER}], timeout=60) as loaded:
        page = json.dumps([record])
        result = loaded.apply(page, {"Normal": dict.fromkeys(loaded.route(page)["Normal"])})
    assert not result.errors, result.errors
    return dict(result.changes["Normal"].upserts["Normal"])


def test_the_tables_are_this_pythons_unicodedata() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "pin_unicode.py"), "--check"], capture_output=True,
                          text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_normalize_agrees_with_unicodedata_on_every_code_point_and_their_strings() -> None:
    texts = interesting()
    out = normalized(texts)["out"]
    wrong = [(t, form) for t, got in zip(texts, out, strict=True) for form, g in zip(FORMS, got, strict=True)
             if g != unicodedata.normalize(form, t)]  # fmt: skip
    assert wrong == [], f"{len(wrong)} differ, e.g. {[(ascii(t), f) for t, f in wrong[:5]]}"


def test_normalize_and_localecompare_on_a_sample() -> None:
    texts = [
        "\u1e9b\u0323",
        "e\u0301cole",
        "\u00e9cole",
        "\uac00\u11a8",
        "\ufb01",
        "\u212b",
        "Zoë",
        "zoe",
        "Zoe",
        "b",
        "B",
    ]
    got = normalized(texts)
    for text, forms in zip(texts, got["out"], strict=True):
        assert forms == [unicodedata.normalize(form, text) for form in FORMS], ascii(text)
    order = got["order"]
    assert order.index("b") < order.index("B"), "lower case before upper case"
    assert order.index("zoe") < order.index("Zoe") < order.index("Zoë"), "case, then accents, at a lower level"
    assert abs(order.index("e\u0301cole") - order.index("\u00e9cole")) == 1, "canonically equivalent strings meet"
