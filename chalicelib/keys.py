"""Key parts every key layout here shares: inverted ids that list newest first, and
values percent-encoded into one `~`-separated part, cut to a bounded length.

SeaweedFS refuses a key whose `/`-separated part is over 255 bytes (AWS allows 1,024
for the whole key), and orders listings part by part: so every part is fixed width or
bounded, and every key name stays within KEY_SEGMENT_BYTES.
"""

from __future__ import annotations

import urllib.parse

FACT_KEY_CHARS = 96
KEY_SEGMENT_BYTES = 255
_MAX_ID = 2**64 - 1


def inverted(report_id: str) -> str:
    return f"{_MAX_ID - int(report_id, 16):016x}"


def _quote(value: str) -> str:
    return urllib.parse.quote(value, safe="").replace("~", "%7E").replace(".", "%2E")


def encode_key_part(value: str, limit: int = FACT_KEY_CHARS) -> str:
    """A value made safe for one `~`-separated key part, cut to `limit` characters with a
    trailing `*` when cut, between whole characters (never inside a %XX escape or a
    character's UTF-8 bytes)."""
    encoded = _quote(value)
    if len(encoded) <= limit:
        return encoded
    pieces, used = [], 0
    for char in value:
        piece = _quote(char)
        if used + len(piece) > limit:
            break
        pieces.append(piece)
        used += len(piece)
    return "".join(pieces) + "*"


def encode_within(values: list[str], budget: int) -> str:
    """The values encoded and joined by `~` in at most `budget` characters: each cut to
    the same largest length (at most FACT_KEY_CHARS) that lets the whole fit, so short
    values stay whole and long ones share what is left."""
    for limit in range(FACT_KEY_CHARS, -1, -1):
        joined = "~".join(encode_key_part(value, limit) for value in values)
        if len(joined) <= budget:
            return joined
    return "~".join("*" if value else "" for value in values)


def decode_key_part(encoded: str) -> tuple[str, bool]:
    """The value of an encoded key part, and whether it was cut."""
    truncated = encoded.endswith("*")
    raw = encoded[:-1] if truncated else encoded
    return urllib.parse.unquote(raw, errors="replace"), truncated
