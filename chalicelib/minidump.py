"""Minidump files: what we check about them before storing one."""

SIGNATURE = b"MDMP"


def has_signature(head: bytes) -> bool:
    """True when `head` (the file's first bytes) starts with the minidump magic."""
    return head[:4] == SIGNATURE
