"""IndexedSymbols: the walker's SymbolProvider over symbol indexes (index.py).

One instance serves one crash: it opens each module's index at most once (through
`open_index`, which finds it in the bucket or on disk), keeps the blocks it read, and
remembers the modules that had no symbols so the processed crash can list them.
Addresses in the index are offsets from `module.base`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chalicelib.processing.context import POINTER_SIZE
from chalicelib.symfile import cfi
from chalicelib.symfile.reader import RangeReader, SymbolIndex

if TYPE_CHECKING:
    from chalicelib.processing.minidump import Memory, Module
    from chalicelib.processing.unwind import Frame

logger = logging.getLogger(__name__)
MAX_INLINE_DEPTH = 64


class IndexedSymbols:
    """Answers fill_symbol / walk_frame / has_symbols from per-module indexes.

    `open_index(module)` returns a RangeReader over the module's index, or None when
    there is none; a lazy reader may instead raise one of `absent` on its first read.
    An index that cannot be read counts as missing too (never raises into the walker),
    and `failed` keeps why, for logs.
    """

    def __init__(
        self, open_index: Callable[[Module], RangeReader | None],
        absent: tuple[type[Exception], ...] = (),
    ) -> None:
        self._open_index = open_index
        self._absent = absent
        self._indexes: dict[Module, SymbolIndex | None] = {}
        self.missing: list[Module] = []
        self.failed: dict[Module, str] = {}

    def index_for(self, module: Module) -> SymbolIndex | None:
        if module in self._indexes:
            return self._indexes[module]
        index = None
        try:
            reader = self._open_index(module)
            if reader is not None:
                index = SymbolIndex(reader)
        except MemoryError:
            raise  # the processing's memory budget, not a broken index
        except self._absent:
            pass  # no symbols uploaded for it: the usual case, not worth a warning
        except Exception as exc:  # a broken index must not stop the walk
            logger.warning("symbol index for %s unreadable: %s", module.code_file, exc)
            self.failed[module] = type(exc).__name__
            index = None
        if index is None:
            self.missing.append(module)
        self._indexes[module] = index
        return index

    def has_symbols(self, module: Module) -> bool:
        return self.index_for(module) is not None

    @property
    def bytes_read(self) -> int:
        return sum(ix.bytes_read for ix in self._indexes.values() if ix is not None)

    @property
    def reads(self) -> int:
        return sum(ix.reads for ix in self._indexes.values() if ix is not None)

    def fill_symbol(self, module: Module, frame: Frame) -> None:
        index = self.index_for(module)
        if index is None or frame.lookup_address < module.base:
            return
        try:
            _fill(index, module, frame)
        except MemoryError:
            raise
        except Exception as exc:
            logger.warning("symbol lookup failed in %s: %s", module.code_file, exc)

    def walk_frame(self, module: Module, frame: Frame, memory: Memory | None,
                   grand_callee_parameter_size: int = 0) -> dict[str, int] | None:
        """The caller's registers from STACK WIN (x86, tried first) or STACK CFI.

        `grand_callee_parameter_size` is the parameter size of the frame `frame`
        called (its FUNC's, or STACK WIN's); only STACK WIN uses it.
        """
        index = self.index_for(module)
        if index is None or memory is None or frame.lookup_address < module.base:
            return None
        try:
            return _walk(index, module, frame, memory, grand_callee_parameter_size)
        except MemoryError:
            raise
        except Exception as exc:
            logger.warning("CFI evaluation failed in %s: %s", module.code_file, exc)
            return None

    def parameter_size(self, module: Module, frame: Frame) -> int:
        """The stack bytes of parameters of the function at `frame` (STACK WIN, else
        FUNC), which the walker hands to walk_frame for the frame's caller's callee."""
        index = self.index_for(module)
        if index is None or frame.lookup_address < module.base:
            return 0
        address = frame.lookup_address - module.base
        try:
            win = index.find_win(address)
            if win is not None:
                return win.parameter_size
            func = index.find_func(address)
        except MemoryError:
            raise
        except Exception as exc:  # a corrupt index must not stop the walk
            logger.warning("parameter size lookup failed in %s: %s", module.code_file, exc)
            return 0
        return func.parameter_size if func is not None else 0


def _fill(index: SymbolIndex, module: Module, frame: Frame) -> None:
    address = frame.lookup_address - module.base
    func = index.find_func(address)
    if func is None:
        _fill_public(index, module, frame, address)
        return
    frame.function = func.name
    frame.function_base = module.base + func.address
    frame.function_offset = address - func.address
    outer = index.find_inline(0, address)
    if outer is None:
        line = index.find_line(address)
        if line is not None:
            _set_source(frame, index.file_name(line.file), line.line)
        return
    _set_source(frame, index.file_name(outer.call_file), outer.call_line)
    # Outermost first: each INLINE names where the next deeper function was called.
    chain: list[dict[str, Any]] = []
    origin = outer.origin
    for depth in range(1, MAX_INLINE_DEPTH):
        inner = index.find_inline(depth, address)
        if inner is None:
            break
        chain.append({"function": index.origin_name(origin),
                      "file": index.file_name(inner.call_file), "line": inner.call_line})
        origin = inner.origin
    line = index.find_line(address)
    chain.append({"function": index.origin_name(origin),
                  "file": index.file_name(line.file) if line else None,
                  "line": line.line if line and line.line else None})
    frame.inlines = [entry for entry in reversed(chain) if entry["function"] is not None]


def _set_source(frame: Frame, file: str | None, line: int) -> None:
    if file is not None:
        frame.file = file
        frame.line = line


def _fill_public(index: SymbolIndex, module: Module, frame: Frame, address: int) -> None:
    public = index.find_public(address)
    if public is None:
        return
    # A PUBLIC before the previous FUNC belongs to code the FUNC records already cover.
    previous = index.func_start_before(address)
    if previous is not None and public.address <= previous:
        return
    frame.function = public.name
    frame.function_base = module.base + public.address
    frame.function_offset = address - public.address


def _walk(index: SymbolIndex, module: Module, frame: Frame, memory: Memory,
          grand_callee_parameter_size: int) -> dict[str, int] | None:
    context = frame.context
    cpu = context.cpu
    if cpu not in POINTER_SIZE:
        return None
    size = POINTER_SIZE[cpu]
    registers = {name: value for name, value in context.registers.items()
                 if context.is_valid(name)}
    address = frame.lookup_address - module.base

    def read_pointer(at: int) -> int | None:
        data = memory.read(at, size)
        return int.from_bytes(data, "little") if data and len(data) == size else None

    if cpu == "x86":
        win = index.find_win(address)
        if win is not None:
            sizes = cfi.WinFrame(win.parameter_size, win.saved_register_size, win.local_size)
            if win.program is not None:
                caller = cfi.evaluate_win_program(win.program, sizes, registers, read_pointer,
                                                  grand_callee_parameter_size)
            else:
                caller = cfi.walk_win_fpo(sizes, win.allocates_base_pointer, registers,
                                          read_pointer, frame.trust == "context",
                                          grand_callee_parameter_size)
            if caller is not None and "eip" in caller and "esp" in caller:
                return caller
    entry = index.find_cfi(address)
    if entry is None:
        return None
    rules = cfi.rules_at(entry.init, entry.deltas, address)
    if rules is None:
        return None
    return cfi.evaluate_cfi(rules, cpu, registers, read_pointer)
