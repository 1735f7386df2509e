"""Look records up in a symbol index (index.py) through small range reads.

A RangeReader answers `read(offset, size)`: a local file (FileRangeReader) or an S3
object with a Range GET. SymbolIndex reads the preamble and header once, then one
block per tree level for each lookup, and keeps every block it read: an index object
lives for one crash, so the frames of one module share their upper blocks.
"""

from __future__ import annotations

import bisect
import json
import os
from typing import Any, NamedTuple, Protocol

from chalicelib.symfile.index import MAGIC, PREAMBLE, STRUCTS, VERSION

MAX_HEADER_BYTES = 4 << 20
_MISSING = object()


class RangeReader(Protocol):
    def read(self, offset: int, size: int) -> bytes:
        """`size` bytes at `offset` (fewer only at the end of the object)."""


class SymIndexError(ValueError):
    """The bytes are not a symbol index this reader knows, or are cut short."""


class FileRangeReader:
    """A local index file as a RangeReader; counts the reads and bytes it served."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._file = open(path, "rb")
        self.reads = 0
        self.bytes_read = 0

    def read(self, offset: int, size: int) -> bytes:
        self._file.seek(offset)
        data = self._file.read(size)
        self.reads += 1
        self.bytes_read += len(data)
        return data

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> FileRangeReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FuncEntry(NamedTuple):
    address: int
    size: int
    parameter_size: int
    name: str


class LineEntry(NamedTuple):
    address: int
    size: int
    line: int
    file: int


class InlineEntry(NamedTuple):
    depth: int
    address: int
    size: int
    call_line: int
    call_file: int
    origin: int


class PublicEntry(NamedTuple):
    address: int
    parameter_size: int
    name: str


class CfiEntry(NamedTuple):
    address: int
    size: int
    init: str
    deltas: tuple[tuple[int, str], ...]


class WinEntry(NamedTuple):
    address: int
    size: int
    prologue_size: int
    epilogue_size: int
    parameter_size: int
    saved_register_size: int
    local_size: int
    max_stack_size: int
    program: str | None
    allocates_base_pointer: bool


class _Table:
    def __init__(self, index: SymbolIndex, name: str, info: dict[str, Any],
                 tops: bytes) -> None:
        self.index = index
        self.struct = STRUCTS[name]
        self.width: int = info["width"]
        self.key_width: int = info["key"]
        self.count: int = info["count"]
        self.data: int = info["data"]
        self.levels: list[dict[str, int]] = info["levels"]
        kw = self.key_width
        first = info["top"]["offset"]
        top = tops[first:first + info["top"]["count"] * kw]
        self.top = [top[i:i + kw] for i in range(0, len(top), kw)]
        if self.width != self.struct.size:
            raise SymIndexError(f"table {name}: record width {self.width}")

    def _pick(self, block: bytes, width: int, key: bytes) -> int:
        kw = self.key_width
        keys = [block[i:i + kw] for i in range(0, len(block), width)]
        return bisect.bisect_right(keys, key) - 1

    def predecessor(self, key: bytes) -> tuple[int, tuple[Any, ...]] | None:
        """(index, fields) of the last record whose key is <= `key`, or None."""
        block = self.index.block_size
        position = bisect.bisect_right(self.top, key) - 1
        if position < 0:
            return None
        kw = self.key_width
        for level in reversed(self.levels):
            first = position * block
            n = min(block, level["count"] - first)
            data = self.index.read(level["offset"] + first * kw, n * kw)
            position = first + max(self._pick(data, kw, key), 0)
        first = position * block
        n = min(block, self.count - first)
        data = self.index.read(self.data + first * self.width, n * self.width)
        if len(data) != n * self.width:
            raise SymIndexError("index cut short")
        j = self._pick(data, self.width, key)
        if j < 0:
            return None
        return first + j, self.struct.unpack_from(data, j * self.width)

    def exact(self, key: bytes) -> tuple[Any, ...] | None:
        found = self.predecessor(key)
        if found is None:
            return None
        fields = found[1]
        packed = self.struct.pack(*fields)[: self.key_width]
        return fields if packed == key else None


class SymbolIndex:
    """The records of one symbol file, looked up through `reader`.

    Addresses are offsets from the module's base. Raises SymIndexError when the
    index is not one this reader knows.
    """

    def __init__(self, reader: RangeReader) -> None:
        self.reader = reader
        self.bytes_read = 0
        self.reads = 0
        self._cache: dict[tuple[int, int], bytes] = {}
        self._names: dict[tuple[str, int], str | None] = {}
        preamble = reader.read(0, PREAMBLE.size)
        if len(preamble) != PREAMBLE.size:
            raise SymIndexError("index cut short")
        magic, offset, json_length, tops_length = PREAMBLE.unpack(preamble)
        if magic != MAGIC or json_length + tops_length > MAX_HEADER_BYTES:
            raise SymIndexError("not a symbol index")
        raw = reader.read(offset, json_length + tops_length)
        self.bytes_read = len(preamble) + len(raw)
        self.reads = 2
        if len(raw) != json_length + tops_length:
            raise SymIndexError("index cut short")
        tops = raw[json_length:]
        try:
            header = json.loads(raw[:json_length])
        except ValueError as exc:
            raise SymIndexError("unreadable index header") from exc
        if header.get("version") != VERSION:
            raise SymIndexError(f"index version {header.get('version')}")
        self.header = header
        self.module: dict[str, str] = header["module"]
        self.block_size: int = header["block"]
        self.strings_offset: int = header["strings"]["offset"]
        self.tables = {
            name: _Table(self, name, info, tops) for name, info in header["tables"].items()
        }

    def read(self, offset: int, size: int) -> bytes:
        key = (offset, size)
        data = self._cache.get(key)
        if data is None:
            data = self.reader.read(offset, size)
            self.reads += 1
            self.bytes_read += len(data)
            self._cache[key] = data
        return data

    def string(self, offset: int, length: int) -> str:
        return self.read(self.strings_offset + offset, length).decode("utf-8", "replace")

    def _range(self, table: str, address: int) -> tuple[Any, ...] | None:
        if address < 0 or address > 0xFFFFFFFFFFFFFFFF:
            return None
        found = self.tables[table].predecessor(address.to_bytes(8, "big"))
        if found is None:
            return None
        fields = found[1]
        return fields if fields[0] <= address < fields[0] + fields[1] else None

    def find_func(self, address: int) -> FuncEntry | None:
        """The FUNC whose range holds `address`."""
        fields = self._range("func", address)
        if fields is None:
            return None
        return FuncEntry(fields[0], fields[1], fields[2], self.string(fields[3], fields[4]))

    def func_start_before(self, address: int) -> int | None:
        """Start of the last FUNC starting strictly before `address`."""
        if address <= 0:
            return None
        found = self.tables["func"].predecessor((address - 1).to_bytes(8, "big"))
        return None if found is None else found[1][0]

    def find_line(self, address: int) -> LineEntry | None:
        fields = self._range("line", address)
        return None if fields is None else LineEntry(*fields)

    def find_inline(self, depth: int, address: int) -> InlineEntry | None:
        """The INLINE range at `depth` holding `address`."""
        if address < 0 or address > 0xFFFFFFFFFFFFFFFF or depth > 0xFFFFFFFF:
            return None
        key = depth.to_bytes(4, "big") + address.to_bytes(8, "big")
        found = self.tables["inline"].predecessor(key)
        if found is None:
            return None
        entry = InlineEntry(*found[1])
        if entry.depth != depth or not entry.address <= address < entry.address + entry.size:
            return None
        return entry

    def find_public(self, address: int) -> PublicEntry | None:
        """The last PUBLIC at or before `address`."""
        if address < 0 or address > 0xFFFFFFFFFFFFFFFF:
            return None
        found = self.tables["public"].predecessor(address.to_bytes(8, "big"))
        if found is None:
            return None
        fields = found[1]
        return PublicEntry(fields[0], fields[1], self.string(fields[2], fields[3]))

    def find_cfi(self, address: int) -> CfiEntry | None:
        """The STACK CFI INIT range holding `address`, with all its deltas."""
        fields = self._range("cfi", address)
        if fields is None:
            return None
        lines = self.string(fields[2], fields[3]).split("\n")
        deltas = []
        for line in lines[1:]:
            if line:
                delta_address, _, rules = line.partition(" ")
                deltas.append((fields[0] + int(delta_address, 16), rules))
        return CfiEntry(fields[0], fields[1], lines[0], tuple(deltas))

    def find_win(self, address: int) -> WinEntry | None:
        """The STACK WIN record for `address`: one with a program string first."""
        fields = self._range("win_program", address)
        if fields is not None:
            return WinEntry(*fields[:8], self.string(fields[8], fields[9]), False)
        fields = self._range("win_fpo", address)
        if fields is not None:
            return WinEntry(*fields[:8], None, bool(fields[8]))
        return None

    def _name(self, table: str, ident: int) -> str | None:
        cached = self._names.get((table, ident), _MISSING)
        if cached is not _MISSING:
            return cached  # type: ignore[return-value]
        name = None
        if 0 <= ident <= 0xFFFFFFFF:
            fields = self.tables[table].exact(ident.to_bytes(4, "big"))
            if fields is not None:
                name = self.string(fields[1], fields[2])
        self._names[(table, ident)] = name
        return name

    def file_name(self, ident: int) -> str | None:
        return self._name("file", ident)

    def origin_name(self, ident: int) -> str | None:
        return self._name("origin", ident)
