"""Bounded reads from a minidump file: every offset and length is checked first.

The stream parsers never touch the file themselves; they ask a DumpFile for
`length` bytes at `offset`, and anything outside the file (or past a sanity limit)
raises StreamError, which the reader turns into a warning on the dump.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

# Largest string (in bytes) any stream may point at: paths, annotations, CSD text.
MAX_STRING_BYTES = 1 << 20
# Most entries a thread, module or name list may claim; real dumps stay far below.
MAX_LIST_ENTRIES = 65536


# What one read costs against the budget at least, however few bytes it returns.
MIN_READ_COST = 64


class StreamError(Exception):
    """One stream, or one record in it, cannot be read. The message is safe to show."""


class DumpFile:
    """A seekable file of known size and byte order ("<" or ">")."""

    def __init__(self, file: BinaryIO, size: int, endian: str = "<") -> None:
        self.file = file
        self.size = size
        self.endian = endian
        # Records may point at the same bytes many times over; a sound dump is read
        # about once, so reading stops well before a hostile one could make it loop.
        self.budget = 4 * size + (64 << 20)

    def contains(self, offset: int, length: int) -> bool:
        return 0 <= offset and 0 <= length and offset + length <= self.size

    def read(self, offset: int, length: int, what: str = "data") -> bytes:
        """Exactly `length` bytes at `offset`, or StreamError."""
        if not self.contains(offset, length):
            raise StreamError(
                f"{what} at offset 0x{offset:x} ({length} bytes) lies outside the file"
            )
        if length == 0:
            return b""
        if length > self.budget:
            raise StreamError(f"{what}: the dump points at far more data than it holds")
        self.budget -= max(length, MIN_READ_COST)  # many tiny reads cost time too
        self.file.seek(offset)
        data = self.file.read(length)
        if len(data) != length:
            raise StreamError(f"{what} at offset 0x{offset:x}: short read")
        return data

    def location(self, size: int, rva: int, what: str, limit: int | None = None) -> bytes:
        """The bytes a (size, rva) location descriptor points at, at most `limit` long."""
        if limit is not None and size > limit:
            raise StreamError(f"{what} is {size} bytes, more than the {limit} allowed")
        return self.read(rva, size, what)

    def unpack(self, fmt: str, data: bytes, offset: int = 0) -> tuple:
        """struct.unpack_from in the dump's byte order; StreamError when `data` is short."""
        full = self.endian + fmt
        if offset < 0 or offset + struct.calcsize(full) > len(data):
            raise StreamError("record shorter than its fixed fields")
        return struct.unpack_from(full, data, offset)

    def unpack_at(self, fmt: str, offset: int, what: str) -> tuple:
        full = self.endian + fmt
        return struct.unpack(full, self.read(offset, struct.calcsize(full), what))

    def utf16_string(self, rva: int, what: str = "string") -> str:
        """A MINIDUMP_STRING: u32 byte length, then UTF-16 text (no terminator needed)."""
        (length,) = self.unpack_at("I", rva, what)
        if length > MAX_STRING_BYTES or length % 2:
            raise StreamError(f"{what} at offset 0x{rva:x} has a bad length ({length})")
        raw = self.read(rva + 4, length, what)
        codec = "utf-16-le" if self.endian == "<" else "utf-16-be"
        return raw.decode(codec, errors="replace")

    def utf8_string(self, rva: int, what: str = "string", terminated: bool = True) -> str:
        """A u32 length then UTF-8 bytes (Crashpad's MinidumpUTF8String, NUL after the
        text when `terminated`; a MinidumpByteArray when not)."""
        (length,) = self.unpack_at("I", rva, what)
        if length > MAX_STRING_BYTES:
            raise StreamError(f"{what} at offset 0x{rva:x} is too long ({length} bytes)")
        raw = self.read(rva + 4, length + (1 if terminated else 0), what)
        if terminated:
            if raw[-1:] != b"\0":
                raise StreamError(f"{what} at offset 0x{rva:x} is not NUL-terminated")
            raw = raw[:-1]
        return raw.decode("utf-8", errors="replace")


def list_count(
    df: DumpFile, data: bytes, entry_size: int, what: str, limit: int = MAX_LIST_ENTRIES
) -> int:
    """The entry count at the start of a list stream, checked to fit in the stream."""
    (count,) = df.unpack("I", data)
    if count > limit:
        raise StreamError(f"{what} claims {count} entries, more than the {limit} allowed")
    if count * entry_size + 4 > len(data):
        raise StreamError(
            f"{what} claims {count} entries of {entry_size} bytes, more than its "
            f"{len(data)} bytes hold"
        )
    return count


def list_start(data: bytes, count: int, entry_size: int) -> int:
    """Where a counted list's entries begin: some writers pad the u32 count to 8 bytes."""
    return 8 if len(data) == 8 + count * entry_size else 4


def cstring(data: bytes, offset: int, limit: int) -> tuple[str, int]:
    """The NUL-terminated text at `offset` (at most `limit` bytes) and the offset after it."""
    end = data.find(b"\0", offset, offset + limit + 1)
    if end < 0:
        raise StreamError("string without a terminator")
    return data[offset:end].decode("utf-8", errors="replace"), end + 1
