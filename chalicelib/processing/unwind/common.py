"""What every CPU's unwinder shares: the stack memory it may read, the state of one
walk, CFI through the symbol provider, and the stack scan for return addresses.

A CPU module (amd64, x86, arm64, arm) exposes `caller(walk, frame)`, which returns the
caller's Context and how it was found ("cfi", "frame_pointer", "scan"), or None. The
walker in __init__ decides whether that caller ends the walk.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import TYPE_CHECKING

from chalicelib.processing.context import PC, SP, Context

if TYPE_CHECKING:
    from chalicelib.processing.minidump import Memory, Module, Modules
    from chalicelib.processing.symbols import SymbolProvider
    from chalicelib.processing.unwind import Frame

SCAN_WORDS = 40
# The context frame (and a CFI frame, whose registers we trust) may sit on a messy
# stack, such as a signal handler's or JIT code's, so its scan looks further.
SCAN_WORDS_EXTENDED = SCAN_WORDS * 4

# Register names as symbol files' CFI rules spell them, mapped to the Context's names.
CFI_ALIASES = {
    "arm64": {"x29": "fp", "x30": "lr", "x31": "sp"},
    "arm": {"r11": "fp", "r13": "sp", "r14": "lr", "r15": "pc"},
}


class StackMemory:
    """The memory a walk may read: the thread's stack when its range (start, end) is
    known, else every captured range. Reads outside it, or of addresses that do not
    fit the CPU's pointer width, answer None; so does the absence of memory. It offers
    Memory's reads, so symbol providers can take it for the dump's memory."""

    def __init__(
        self, memory: Memory | None, stack_range: tuple[int, int] | None, pointer_size: int
    ) -> None:
        self.memory = memory
        self.pointer_size = pointer_size
        self.limit = 1 << (8 * pointer_size)
        self.low, self.high = stack_range if stack_range is not None else (0, self.limit)
        self.high = min(self.high, self.limit)

    def contains(self, address: int) -> bool:
        return self.low <= address < self.high

    def read_pointer(self, address: int, size: int | None = None) -> int | None:
        size = size or self.pointer_size
        if self.memory is None or not self.low <= address <= self.high - size:
            return None
        return self.memory.read_pointer(address, size)

    def read(self, address: int, size: int) -> bytes | None:
        if self.memory is None or size < 0 or not self.low <= address <= self.high - size:
            return None
        return self.memory.read(address, size)

    def read_u32(self, address: int) -> int | None:
        data = self.read(address, 4)
        return None if data is None else int.from_bytes(data, "little")

    def read_u64(self, address: int) -> int | None:
        data = self.read(address, 8)
        return None if data is None else int.from_bytes(data, "little")

    def range_at(self, address: int) -> tuple[int, int] | None:
        if self.memory is None or not self.contains(address):
            return None
        return self.memory.range_at(address)


@dataclasses.dataclass
class Walk:
    """One thread's walk: what the CPU modules may consult."""

    cpu: str
    os: str
    memory: StackMemory
    modules: Modules
    symbols: SymbolProvider
    code_end: int = 0  # the highest address any module occupies
    frames: list[Frame] = dataclasses.field(default_factory=list)  # so far, frame 0 first

    @property
    def pointer_size(self) -> int:
        return self.memory.pointer_size

    def seems_code(self, address: int) -> bool:
        """Whether `address` may be a return address: the instruction before it lies
        in a loaded module and, when that module has symbols, inside a function."""
        if address <= 1 or address >= self.memory.limit:
            return False
        module = self.modules.module_at(address - 1)
        if module is None:
            return False
        if not self.symbols.has_symbols(module):
            return True
        from chalicelib.processing.unwind import Frame

        probe = Frame(context=make_context(self.cpu, {PC[self.cpu]: address}), trust="scan")
        self.symbols.fill_symbol(module, probe)
        return bool(probe.function)


def make_context(cpu: str, registers: dict[str, int]) -> Context:
    """A caller's Context: every register given is valid, none other."""
    return Context(cpu=cpu, registers=dict(registers), valid=frozenset(registers))


def register(context: Context, name: str) -> int | None:
    return context.registers[name] if context.is_valid(name) else None


def valid_registers(context: Context, names: Iterable[str]) -> dict[str, int]:
    return {name: context.registers[name] for name in names if context.is_valid(name)}


def caller_by_cfi(
    walk: Walk, frame: Frame, callee_saved: tuple[str, ...]
) -> dict[str, int] | None:
    """The caller's registers from the module's CFI: the callee-saved registers carry
    over unless a rule recovers them, the rest are unknown. None without CFI, or when
    the rules give no pc and sp."""
    if frame.module is None or not frame.context.is_valid(SP[walk.cpu]):
        return None
    recovered = _ask_cfi(walk, frame, frame.module)
    if not recovered:
        return None
    aliases = CFI_ALIASES.get(walk.cpu, {})
    registers = valid_registers(frame.context, callee_saved)
    for name, value in recovered.items():
        registers[aliases.get(name, name)] = value
    if ".cfa" in registers:
        registers.setdefault(SP[walk.cpu], registers[".cfa"])
    if ".ra" in registers:
        registers.setdefault(PC[walk.cpu], registers[".ra"])
    registers = {name: value for name, value in registers.items() if not name.startswith(".")}
    if PC[walk.cpu] not in registers or SP[walk.cpu] not in registers:
        return None
    return registers


def _ask_cfi(walk: Walk, frame: Frame, module: Module) -> dict[str, int] | None:
    """walk_frame, telling a provider that can use it (x86 STACK WIN programs) the
    parameter size of the function this frame called."""
    sizer = getattr(walk.symbols, "parameter_size", None)
    if sizer is None:
        return walk.symbols.walk_frame(module, frame, walk.memory)  # type: ignore[arg-type]
    size = 0
    if len(walk.frames) >= 2 and walk.frames[-1] is frame:
        grand_callee = walk.frames[-2]
        if grand_callee.module is not None:
            size = sizer(grand_callee.module, grand_callee)
    return walk.symbols.walk_frame(  # type: ignore[call-arg]
        module, frame, walk.memory, grand_callee_parameter_size=size,  # type: ignore[arg-type]
    )


def scan_for_return(walk: Walk, frame: Frame) -> tuple[int, int] | None:
    """(where, return address): the first word up from the frame's sp that seems a
    return address, within a bounded number of words."""
    sp = register(frame.context, SP[walk.cpu])
    if sp is None:
        return None
    words = SCAN_WORDS_EXTENDED if frame.trust in ("context", "cfi") else SCAN_WORDS
    for index in range(words):
        where = sp + index * walk.pointer_size
        value = walk.memory.read_pointer(where)
        if value is None:
            return None
        if walk.seems_code(value):
            return where, value
    return None


def module_end(modules: Iterable[Module]) -> int:
    return max((module.end for module in modules), default=0)
