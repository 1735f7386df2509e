"""The report key layout as pure functions: keys built, then read back from a listing."""

from __future__ import annotations

import datetime
import re

from hypothesis import given
from hypothesis import strategies as st

from chalicelib import report_keys
from chalicelib.keys import KEY_SEGMENT_BYTES

CLAIM = "0123456789abcdef0123456789abcdef"
WHEN = datetime.datetime(2026, 11, 26, tzinfo=datetime.timezone.utc)
FACTS = {"product": "Jami", "version": "1.0", "platform": "linux", "guid": "g-1"}


def item(key: str, size: int = 7) -> dict:
    return {"Key": key, "Size": size, "LastModified": WHEN}


def test_a_resumed_stem_is_the_claim_and_16_fresh_hex() -> None:
    stems = {report_keys.resumed_stem(CLAIM) for _ in range(50)}
    assert len(stems) == 50
    for stem in stems:
        assert re.fullmatch(CLAIM + "-[0-9a-f]{16}", stem)
        assert report_keys.base_claim(stem) == CLAIM
    assert report_keys.base_claim(CLAIM) == CLAIM


def test_report_keys_read_back_for_both_stems() -> None:
    resumed = f"{CLAIM}-{'9' * 16}"
    for stem in (CLAIM, resumed):
        key = report_keys.report_key("P/", "1a213eb976185d19", stem, FACTS, 11040)
        assert key.startswith(report_keys.report_prefix("P/", "1a213eb976185d19"))
        assert key == f"P/reports/e5dec14689e7a2e6~{stem}~Jami~1%2E0~linux~~~~g-1~11040.json"
        summary = report_keys.parse_report_item("P/", item(key, 321))
        assert (summary.id, summary.claim, summary.base_claim) == (
            "1a213eb976185d19", stem, CLAIM)
        assert summary.facts == {**dict.fromkeys(summary.facts, ""), **FACTS}
        assert (summary.dump_size, summary.meta_size) == (11040, 321)


@given(st.dictionaries(st.sampled_from(["product", "version", "platform", "build_id",
                                        "client_sha", "jamicore_sha", "guid"]),
                       st.text(max_size=400)))
def test_a_resumed_report_key_name_fits_a_key_part(facts: dict[str, str]) -> None:
    key = report_keys.report_key("", "ffffffffffffffff", f"{CLAIM}-{'a' * 16}", facts, 2**40)
    name = key.rsplit("/", 1)[1]
    assert len(name.encode()) <= KEY_SEGMENT_BYTES
    summary = report_keys.parse_report_name(name, key, 0)
    assert summary is not None and summary.claim == f"{CLAIM}-{'a' * 16}"
    for field, value in facts.items():
        # A cut may fall inside a character's UTF-8 bytes: it reads back as U+FFFD.
        assert value.startswith(summary.facts[field].rstrip("\ufffd"))
        assert (summary.facts[field] == value) == (field not in summary.truncated)


def test_parts_classify_by_stem_and_only_claims_are_claims() -> None:
    resumed = f"{CLAIM}-{'0' * 16}"
    cases = {
        f"P/parts/{CLAIM}.dmp": ("part", CLAIM, True),
        f"P/parts/{CLAIM}.a00.app.log": ("part", CLAIM, False),
        f"P/parts/{resumed}.dmp": ("part", resumed, False),
        f"P/parts/{resumed}.a12.x": ("part", resumed, False),
        f"P/parts/{CLAIM}-123.dmp": ("other", "", False),  # not a fixed-width attempt
        f"P/crashes/{CLAIM}.dmp": ("other", "", False),
        "P/summary.json": ("summary", "", False),
    }
    for key, (kind, stem, is_claim) in cases.items():
        stored = report_keys.classify("P/", item(key))
        assert (stored.kind, stored.claim, report_keys.is_claim_key(key)) == (
            kind, stem, is_claim), key
    assert report_keys.is_claim_key(f"parts/{CLAIM}.dmp")  # an empty prefix


def test_attachment_names_stay_inside_their_key_part() -> None:
    assert report_keys.attachment_key_name(3, "../../evil name%00;.txt") == "a03.evil_name_00_.txt"
    assert report_keys.attachment_key_name(0, "..") == "a00.attachment"
    assert report_keys.part_key("P/", CLAIM, "a00.x") == f"P/parts/{CLAIM}.a00.x"
