"""Parse the records of Breakpad's `.sym` text format, one line at a time.

A file starts with a MODULE line, then INFO, FILE, INLINE_ORIGIN, FUNC (each followed
by its line records and INLINE records), PUBLIC, STACK CFI INIT (each followed by its
STACK CFI deltas) and STACK WIN records. `parse_record` turns one line into one
record value; a malformed line raises SymFileError naming the line number, so an
upload can be refused with the reason. `validate` checks a whole file that way with
memory bounded by the longest line allowed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import IO, NamedTuple

MAX_LINE_BYTES = 1 << 20  # the longest real lines (template names, CFI) are far shorter
MAX_U32 = 0xFFFFFFFF


class SymFileError(ValueError):
    """A line that is not a valid record. `line_number` counts from 1."""

    def __init__(self, line_number: int, reason: str) -> None:
        super().__init__(f"line {line_number}: {reason}")
        self.line_number = line_number
        self.reason = reason


class ModuleLine(NamedTuple):
    os: str
    cpu: str
    debug_id: str
    debug_file: str


class InfoCodeId(NamedTuple):
    code_id: str
    code_file: str | None


class Info(NamedTuple):
    """Any other INFO line (INFO URL, INFO GENERATOR ...), kept as text."""

    text: str


class FileRecord(NamedTuple):
    id: int
    name: str


class InlineOrigin(NamedTuple):
    id: int
    name: str


class Func(NamedTuple):
    address: int
    size: int
    parameter_size: int
    name: str
    multiple: bool


class LineRecord(NamedTuple):
    address: int
    size: int
    line: int
    file: int


class Inline(NamedTuple):
    depth: int
    call_line: int
    call_file: int
    origin: int
    ranges: tuple[tuple[int, int], ...]   # (address, size)


class Public(NamedTuple):
    address: int
    parameter_size: int
    name: str
    multiple: bool


class CfiInit(NamedTuple):
    address: int
    size: int
    rules: str


class CfiDelta(NamedTuple):
    address: int
    rules: str


class StackWin(NamedTuple):
    type: int                       # 4: frame data with a program string; 0: FPO
    address: int
    size: int
    prologue_size: int
    epilogue_size: int
    parameter_size: int
    saved_register_size: int
    local_size: int
    max_stack_size: int
    program: str | None             # type 4 only
    allocates_base_pointer: bool    # type 0 only


Record = (
    ModuleLine | InfoCodeId | Info | FileRecord | InlineOrigin | Func | LineRecord | Inline
    | Public | CfiInit | CfiDelta | StackWin
)

_SP = r"[ \t]+"
_HEX = r"([0-9a-fA-F]{1,16})"
_HEX32 = r"([0-9a-fA-F]{1,8})"
_DEC = r"([0-9]{1,10})"
_REST = r"(.*)"

_MODULE = re.compile(rf"MODULE{_SP}(\S+){_SP}(\S+){_SP}([0-9a-fA-F]+){_SP}{_REST}")
_CODE_ID = re.compile(rf"INFO{_SP}CODE_ID{_SP}(\S+)(?:{_SP}{_REST})?")
_INFO = re.compile(rf"INFO{_SP}{_REST}")
_FILE = re.compile(rf"FILE{_SP}{_DEC}{_SP}{_REST}")
_ORIGIN = re.compile(rf"INLINE_ORIGIN{_SP}{_DEC}{_SP}{_REST}")
_FUNC = re.compile(rf"FUNC{_SP}(?:(m){_SP})?{_HEX}{_SP}{_HEX32}{_SP}{_HEX32}(?:{_SP}{_REST})?")
_PUBLIC = re.compile(rf"PUBLIC{_SP}(?:(m){_SP})?{_HEX}{_SP}{_HEX32}(?:{_SP}{_REST})?")
_LINE = re.compile(rf"{_HEX}{_SP}{_HEX32}{_SP}{_DEC}{_SP}{_DEC}")
_INLINE = re.compile(rf"INLINE{_SP}{_DEC}{_SP}{_DEC}{_SP}{_DEC}{_SP}{_DEC}((?:{_SP}\S+)+)")
_CFI_INIT = re.compile(rf"STACK{_SP}CFI{_SP}INIT{_SP}{_HEX}{_SP}{_HEX32}{_SP}{_REST}")
_CFI_DELTA = re.compile(rf"STACK{_SP}CFI{_SP}{_HEX}{_SP}{_REST}")
_WIN = re.compile(
    rf"STACK{_SP}WIN{_SP}([0-9a-fA-F]){_SP}{_HEX}" + rf"{_SP}{_HEX32}" * 7
    + rf"{_SP}([01]){_SP}{_REST}"
)
_HEX_WORD = re.compile(r"[0-9a-fA-F]{1,16}")


def _u32(text: str, line_number: int, what: str) -> int:
    value = int(text)
    if value > MAX_U32:
        raise SymFileError(line_number, f"{what} {text} out of range")
    return value


def read_module_line(first_line: str | bytes, line_number: int = 1) -> ModuleLine:
    """The MODULE record a `.sym` file starts with. Raises SymFileError."""
    if isinstance(first_line, bytes):
        first_line = first_line.decode("utf-8", "replace")
    m = _MODULE.fullmatch(first_line.rstrip("\r\n"))
    if not m or not m.group(4).strip():
        raise SymFileError(line_number, "expected MODULE <os> <cpu> <debug id> <debug file>")
    return ModuleLine(m.group(1), m.group(2), m.group(3).upper(), m.group(4).strip())


def parse_record(line: str, line_number: int) -> Record | None:
    """One record from one line (without its line ending); None for a blank line.

    Raises SymFileError when the line is not a well-formed record.
    """
    if not line or line.isspace():
        return None
    head = line[0]
    if head in "0123456789abcdefABCDEF":
        m = _LINE.fullmatch(line)
        if m:
            return LineRecord(int(m.group(1), 16), int(m.group(2), 16),
                              _u32(m.group(3), line_number, "line"),
                              _u32(m.group(4), line_number, "file id"))
        if not line.startswith("FUNC") and not line.startswith("FILE"):
            raise SymFileError(line_number, "malformed line record")
    word = line.split(None, 1)[0]
    if word == "FUNC":
        m = _FUNC.fullmatch(line)
        if not m:
            raise SymFileError(line_number, "malformed FUNC record")
        return Func(int(m.group(2), 16), int(m.group(3), 16), int(m.group(4), 16),
                    m.group(5) or "", m.group(1) is not None)
    if word == "STACK":
        return _parse_stack(line, line_number)
    if word == "INLINE":
        return _parse_inline(line, line_number)
    if word == "PUBLIC":
        m = _PUBLIC.fullmatch(line)
        if not m:
            raise SymFileError(line_number, "malformed PUBLIC record")
        return Public(int(m.group(2), 16), int(m.group(3), 16), m.group(4) or "",
                      m.group(1) is not None)
    if word == "FILE":
        m = _FILE.fullmatch(line)
        if not m:
            raise SymFileError(line_number, "malformed FILE record")
        return FileRecord(_u32(m.group(1), line_number, "file id"), m.group(2))
    if word == "INLINE_ORIGIN":
        m = _ORIGIN.fullmatch(line)
        if not m:
            raise SymFileError(line_number, "malformed INLINE_ORIGIN record")
        return InlineOrigin(_u32(m.group(1), line_number, "origin id"), m.group(2))
    if word == "INFO":
        m = _CODE_ID.fullmatch(line)
        if m:
            return InfoCodeId(m.group(1), m.group(2) or None)
        m = _INFO.fullmatch(line)
        if not m:
            raise SymFileError(line_number, "malformed INFO record")
        return Info(m.group(1))
    if word == "MODULE":
        return read_module_line(line, line_number)
    raise SymFileError(line_number, f"unknown record {word[:40]!r}")


def _parse_inline(line: str, line_number: int) -> Inline:
    m = _INLINE.fullmatch(line)
    words = m.group(5).split() if m else []
    if not m or len(words) % 2 or not all(_HEX_WORD.fullmatch(w) for w in words):
        raise SymFileError(line_number, "malformed INLINE record")
    ranges = tuple(
        (int(words[i], 16), int(words[i + 1], 16)) for i in range(0, len(words), 2)
    )
    if any(size > MAX_U32 for _, size in ranges):
        raise SymFileError(line_number, "INLINE range size out of range")
    return Inline(_u32(m.group(1), line_number, "depth"), _u32(m.group(2), line_number, "line"),
                  _u32(m.group(3), line_number, "file id"),
                  _u32(m.group(4), line_number, "origin id"), ranges)


def _parse_stack(line: str, line_number: int) -> CfiInit | CfiDelta | StackWin:
    m = _CFI_INIT.fullmatch(line)
    if m:
        return CfiInit(int(m.group(1), 16), int(m.group(2), 16), m.group(3).strip())
    m = _CFI_DELTA.fullmatch(line)
    if m:
        return CfiDelta(int(m.group(1), 16), m.group(2).strip())
    m = _WIN.fullmatch(line)
    if not m:
        raise SymFileError(line_number, "malformed STACK record")
    numbers = [int(m.group(i), 16) for i in range(3, 10)]
    has_program = m.group(10) == "1"
    rest = m.group(11).strip()
    kind = int(m.group(1), 16)
    program: str | None = None
    allocates = False
    if has_program:
        program = rest
    elif rest in ("0", "1"):
        allocates = rest == "1"
    else:
        raise SymFileError(line_number, "STACK WIN without a program needs 0 or 1 last")
    return StackWin(kind, int(m.group(2), 16), *numbers, program, allocates)


def iter_lines(stream: IO[bytes], max_line: int | None = None) -> Iterator[tuple[int, str]]:
    """(line number, text without its line ending) for each line of a binary stream.

    Raises SymFileError for a line longer than `max_line` bytes, so memory stays bounded.
    """
    max_line = max_line or MAX_LINE_BYTES
    number = 0
    while True:
        raw = stream.readline(max_line + 2)
        if not raw:
            return
        number += 1
        if len(raw) > max_line and not raw.endswith(b"\n"):
            raise SymFileError(number, f"line longer than {max_line} bytes")
        yield number, raw.decode("utf-8", "replace").rstrip("\r\n")


class RecordChecker:
    """Checks that records come in an order that gives each its owner: line and INLINE
    records after a FUNC, STACK CFI deltas after a STACK CFI INIT, MODULE first."""

    def __init__(self) -> None:
        self.seen_module = False
        self.in_func = False
        self.in_cfi = False

    def check(self, record: Record, line_number: int) -> None:
        if not self.seen_module:
            if not isinstance(record, ModuleLine):
                raise SymFileError(line_number, "the first record must be MODULE")
            self.seen_module = True
            return
        kind = type(record)
        if kind is ModuleLine:
            raise SymFileError(line_number, "a second MODULE record")
        if kind in (LineRecord, Inline):
            if not self.in_func:
                raise SymFileError(line_number, "line or INLINE record outside a FUNC")
            return
        if kind is CfiDelta:
            if not self.in_cfi:
                raise SymFileError(line_number, "STACK CFI record without STACK CFI INIT")
            return
        self.in_func = kind is Func
        self.in_cfi = kind is CfiInit


def iter_records(stream: IO[bytes], strict: bool = True) -> Iterator[tuple[int, Record]]:
    """(line number, record) for each record of a `.sym` file, in file order.

    Strict: a malformed or misplaced record raises SymFileError. Otherwise such lines
    are skipped (the MODULE line is still required).
    """
    checker = RecordChecker()
    for number, text in iter_lines(stream):
        try:
            record = parse_record(text, number)
            if record is None:
                continue
            checker.check(record, number)
        except SymFileError:
            if strict or not checker.seen_module:
                raise
            continue
        yield number, record


def validate(stream: IO[bytes]) -> ModuleLine:
    """Check a whole `.sym` file line by line; its MODULE record when valid.

    Raises SymFileError at the first malformed record (an empty file included).
    """
    module: ModuleLine | None = None
    for _, record in iter_records(stream, strict=True):
        if module is None:
            module = record  # type: ignore[assignment]
    if module is None:
        raise SymFileError(1, "empty file: expected a MODULE record")
    return module
