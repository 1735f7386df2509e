"""Build the binary index of a `.sym` file, once, when it is uploaded.

The index answers every lookup the walker makes with a few small range reads, so a
crash never downloads or parses a whole symbol file. Layout (integers big-endian):

    preamble   MAGIC, header offset (u64), JSON and tops lengths (u32), padding to 32
    tables     per table: its records sorted by key, then its fence levels
    strings    names, file names, CFI rule texts, STACK WIN programs (UTF-8)
    header     JSON (the MODULE line, each table's place and shape), then the tops

A table is a static search tree: level 1 holds the first key of each block of BLOCK
records, level 2 the first key of each block of BLOCK level-1 keys, and so on up to a
top level of at most TOP_KEYS keys, read with the header. A lookup reads one block per
level below the top, each at most BLOCK records or keys: two reads for a table of
BLOCK * TOP_KEYS (262,144) records, three up to 16 million.

Range tables (FUNC, line, STACK CFI INIT, STACK WIN) keep, where records overlap, the
one starting first (the longer on a tie) and drop the others, so each address has one
answer. Input need not be sorted: out-of-order records go through the spool's bounded
external sort.
"""

from __future__ import annotations

import json
import struct
import tempfile
from collections.abc import Iterator
from typing import IO, Any

from chalicelib.symfile import records as rec
from chalicelib.symfile.spool import Spool, drop_overlaps

MAGIC = b"BPSYMIX1"
VERSION = 1
PREAMBLE = struct.Struct(">8sQII8x")
BLOCK = 64
TOP_KEYS = 4096
MAX_CFI_DELTAS = 1 << 16
# One function's CFI rules are read whole per lookup: bounded, like its string sharing.
MAX_CFI_TEXT = 1 << 20
SHARED_STRING_CHARS = 256

# name: (struct format, key width in bytes, is a range table)
TABLES: dict[str, tuple[str, int, bool]] = {
    "func": (">QIIQI", 8, True),        # address, size, parameter size, name ref
    "line": (">QIII", 8, True),         # address, size, line, file id
    "inline": (">IQIIII", 12, False),   # depth, address, size, call line, call file, origin
    "public": (">QIQI", 8, False),      # address, parameter size, name ref
    "cfi": (">QIQI", 8, True),          # address, size, rules ref
    "win_program": (">QIIIIIIIQI", 8, True),  # address, size, 6 sizes, program ref
    "win_fpo": (">QIIIIIIIB", 8, True),  # address, size, 6 sizes, allocates base pointer
    "file": (">IQI", 4, False),         # id, name ref
    "origin": (">IQI", 4, False),       # id, name ref
}
STRUCTS = {name: struct.Struct(fmt) for name, (fmt, _, _) in TABLES.items()}
_RANGE = struct.Struct(">QI")


class IndexBuildError(ValueError):
    """The symbol file cannot be indexed (beyond a malformed line: SymFileError)."""


class _Strings:
    """The strings section, written as it grows; identical recent strings are shared."""

    def __init__(self, directory: str | None) -> None:
        self.file = tempfile.TemporaryFile(dir=directory)
        self.size = 0
        self._recent: dict[str, tuple[int, int]] = {}

    def add(self, text: str, share: bool = False) -> tuple[int, int]:
        share = share and len(text) <= SHARED_STRING_CHARS  # the cache stays small
        if share and text in self._recent:
            return self._recent[text]
        data = text.encode("utf-8", "surrogateescape")
        ref = (self.size, len(data))
        self.file.write(data)
        self.size += len(data)
        if share:
            if len(self._recent) >= 4096:
                self._recent.clear()
            self._recent[text] = ref
        return ref


class _Builder:
    def __init__(self, directory: str | None) -> None:
        self.spools = {name: Spool(STRUCTS[name].size, directory) for name in TABLES}
        self.strings = _Strings(directory)
        self.module: rec.ModuleLine | None = None
        self.code_id: rec.InfoCodeId | None = None
        self._cfi: rec.CfiInit | None = None
        self._deltas: list[tuple[int, str]] = []
        self._delta_chars = 0

    def add(self, record: rec.Record, line_number: int) -> None:
        put, strings = self._put, self.strings
        match record:
            case rec.LineRecord():
                if record.size:
                    put("line", *record)
            case rec.Inline():
                for address, size in record.ranges:
                    put("inline", record.depth, address, size, record.call_line,
                        record.call_file, record.origin)
            case rec.Func():
                if record.size:
                    put("func", record.address, record.size, record.parameter_size,
                        *strings.add(record.name))
            case rec.CfiDelta():
                if len(self._deltas) >= MAX_CFI_DELTAS:
                    raise IndexBuildError(f"line {line_number}: too many STACK CFI records")
                self._delta_chars += len(record.rules)
                if self._delta_chars > MAX_CFI_TEXT:
                    raise IndexBuildError(
                        f"line {line_number}: over {MAX_CFI_TEXT} characters of STACK CFI "
                        "rules for one function"
                    )
                self._deltas.append((record.address, record.rules))
            case rec.CfiInit():
                self._flush_cfi()
                self._cfi = record
            case rec.StackWin():
                self._add_win(record)
            case rec.Public():
                put("public", record.address, record.parameter_size, *strings.add(record.name))
            case rec.FileRecord():
                put("file", record.id, *strings.add(record.name))
            case rec.InlineOrigin():
                put("origin", record.id, *strings.add(record.name))
            case rec.ModuleLine():
                self.module = record
            case rec.InfoCodeId():
                self.code_id = record

    def _put(self, table: str, *values: Any) -> None:
        try:
            self.spools[table].append(STRUCTS[table].pack(*values))
        except struct.error as exc:
            raise IndexBuildError(f"{table} record out of range: {values[:3]}") from exc

    def _add_win(self, record: rec.StackWin) -> None:
        sizes = record[1:9]
        if record.type == 4 and record.program is not None and record.size:
            ref = self.strings.add(record.program, share=True)
            self._put("win_program", *sizes, *ref)
        elif record.type == 0 and record.program is None and record.size:
            self._put("win_fpo", *sizes, int(record.allocates_base_pointer))

    def _flush_cfi(self) -> None:
        init, self._cfi = self._cfi, None
        if init is None or not init.size:
            self._deltas, self._delta_chars = [], 0
            return
        deltas = sorted(self._deltas, key=lambda d: d[0])
        self._deltas, self._delta_chars = [], 0
        # Delta addresses relative to the INIT's make most rule texts repeat: shared.
        text = init.rules + "\n" + "".join(
            f"{a - init.address:x} {rules}\n" for a, rules in deltas
        )
        self._put("cfi", init.address, init.size, *self.strings.add(text, share=True))

    def finish(self) -> None:
        self._flush_cfi()


def _start_end(record: bytes) -> tuple[int, int]:
    address, size = _RANGE.unpack_from(record)
    return address, address + size


def _write_table(out: IO[bytes], base: int, name: str, spool: Spool,
                 tops: bytearray) -> dict[str, Any]:
    fmt, key_width, is_range = TABLES[name]
    width = STRUCTS[name].size
    records: Iterator[bytes] = iter(spool)
    if is_range:
        records = drop_overlaps(records, _start_end)
    data_offset = out.tell() - base
    level1 = bytearray()
    count = 0
    buffer = bytearray()
    for record in records:
        if count % BLOCK == 0:
            level1 += record[:key_width]
        buffer += record
        count += 1
        if len(buffer) >= 1 << 20:
            out.write(buffer)
            buffer.clear()
    out.write(buffer)
    levels = []
    keys = bytes(level1)
    tops_start = len(tops)
    while len(keys) > TOP_KEYS * key_width:
        levels.append({"offset": out.tell() - base, "count": len(keys) // key_width})
        out.write(keys)
        keys = b"".join(
            keys[i:i + key_width] for i in range(0, len(keys), BLOCK * key_width)
        )
    tops += keys
    return {
        "format": fmt, "width": width, "key": key_width, "count": count,
        "data": data_offset, "levels": levels,
        "top": {"offset": tops_start, "count": len(keys) // key_width},
        "input_sorted": spool.sorted,
    }


def build_index(stream: IO[bytes], out: IO[bytes], strict: bool = True,
                tmp_dir: str | None = None) -> dict[str, Any]:
    """Index the `.sym` file read from `stream` into `out` (a seekable binary file).

    Memory stays bounded whatever the input size: records are spooled to temporary
    files in `tmp_dir`. Returns the header written. Raises SymFileError (malformed
    line, strict) or IndexBuildError.
    """
    builder = _Builder(tmp_dir)
    try:
        for number, record in rec.iter_records(stream, strict=strict):
            builder.add(record, number)
        builder.finish()
        if builder.module is None:
            raise rec.SymFileError(1, "empty file: expected a MODULE record")
        start = out.tell()
        out.write(PREAMBLE.pack(MAGIC, 0, 0, 0))
        tops = bytearray()
        tables = {
            name: _write_table(out, start, name, builder.spools[name], tops) for name in TABLES
        }
        strings_offset = out.tell() - start
        builder.strings.file.seek(0)
        while chunk := builder.strings.file.read(1 << 20):
            out.write(chunk)
        module = builder.module
        header = {
            "version": VERSION, "block": BLOCK,
            "module": {"os": module.os, "cpu": module.cpu, "debug_id": module.debug_id,
                       "debug_file": module.debug_file},
            "code_id": builder.code_id.code_id if builder.code_id else None,
            "code_file": builder.code_id.code_file if builder.code_id else None,
            "strings": {"offset": strings_offset, "size": builder.strings.size},
            "tables": tables,
        }
        header_bytes = json.dumps(header, separators=(",", ":")).encode()
        header_offset = out.tell()
        out.write(header_bytes)
        out.write(tops)
        end = out.tell()
        out.seek(start)
        out.write(PREAMBLE.pack(MAGIC, header_offset - start, len(header_bytes), len(tops)))
        out.seek(end)
        return header
    finally:
        for spool in builder.spools.values():
            spool.close()
        builder.strings.file.close()
