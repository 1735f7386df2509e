"""Key parts: percent-encoding, cutting within a budget, and reading back."""

from hypothesis import given
from hypothesis import strategies as st

from chalicelib.keys import decode_key_part, encode_key_part, encode_within, inverted


def test_inverted_ids_list_newest_first():
    assert inverted("0000000000000001") > inverted("0000000000000002")
    assert inverted("ffffffffffffffff") == "0" * 16


def test_a_short_value_is_kept_whole_and_safe():
    encoded = encode_key_part("Jami 1.0~beta/x.y")
    assert encoded == "Jami%201%2E0%7Ebeta%2Fx%2Ey"
    assert decode_key_part(encoded) == ("Jami 1.0~beta/x.y", False)


def test_a_cut_never_splits_a_character():
    # "é" is two UTF-8 bytes, six key characters: a cut after 7 keeps "a" and one "é".
    encoded = encode_key_part("aééé", 9)
    assert encoded == "a%C3%A9*"
    assert decode_key_part(encoded) == ("aé", True)


@given(st.text(min_size=1, max_size=60), st.integers(min_value=0, max_value=120))
def test_a_cut_value_reads_back_as_a_prefix(value, limit):
    encoded = encode_key_part(value, limit)
    decoded, cut = decode_key_part(encoded)
    assert len(encoded) <= (limit + 1 if cut else limit)
    assert "\ufffd" not in decoded or "\ufffd" in value
    assert value.startswith(decoded)
    assert cut == (decoded != value)


def test_values_share_the_budget_evenly():
    joined = encode_within(["short", "x" * 300, "y" * 300], 120)
    parts = joined.split("~")
    assert len(joined) <= 120
    assert parts[0] == "short"
    assert parts[1].endswith("*") and parts[2].endswith("*")
    assert len(parts[1]) == len(parts[2])
