"""CPU contexts: the register state a minidump records for a thread or an exception.

The raw CONTEXT structures differ per CPU and writer (x86, amd64, arm, the old
Breakpad arm64 layout and the Windows-style ARM64 one, each with extended forms);
parse_context turns any of them into a Context of named registers, in the names and
order minidump-stackwalk's JSON uses.
"""

from __future__ import annotations

import dataclasses
import struct

# Register names per CPU in the order the JSON lists them.
REGISTER_NAMES: dict[str, tuple[str, ...]] = {
    "amd64": (
        "rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp", "rsp",
        "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip",
    ),
    "x86": ("eip", "esp", "ebp", "ebx", "esi", "edi", "eax", "ecx", "edx", "eflags"),
    "arm64": tuple(f"x{i}" for i in range(29)) + ("fp", "lr", "sp", "pc"),
    # r11 is "fp" and r13..r15 are sp, lr, pc; r7 keeps its name (the iOS frame pointer).
    "arm": tuple(f"r{i}" for i in range(11)) + ("r12", "fp", "sp", "lr", "pc"),
}
POINTER_SIZE = {"amd64": 8, "arm64": 8, "x86": 4, "arm": 4}
PC = {"amd64": "rip", "x86": "eip", "arm64": "pc", "arm": "pc"}
SP = {"amd64": "rsp", "x86": "esp", "arm64": "sp", "arm": "sp"}
FP = {"amd64": "rbp", "x86": "ebp", "arm64": "fp", "arm": "fp"}


@dataclasses.dataclass
class Context:
    """Registers of one frame. `valid` names the registers known to hold their value
    (all of them for a context read from the dump; fewer for an unwound caller)."""

    cpu: str
    registers: dict[str, int]
    valid: frozenset[str] | None = None  # None: every register in `registers`

    @property
    def pc(self) -> int:
        return self.registers.get(PC[self.cpu], 0)

    @property
    def sp(self) -> int:
        return self.registers.get(SP[self.cpu], 0)

    @property
    def fp(self) -> int:
        return self.registers.get(FP[self.cpu], 0)

    @property
    def pointer_size(self) -> int:
        return POINTER_SIZE[self.cpu]

    def is_valid(self, name: str) -> bool:
        return name in self.registers and (self.valid is None or name in self.valid)

    def as_json(self) -> dict[str, str]:
        """Registers as minidump-stackwalk prints them: hex padded to the CPU width."""
        width = POINTER_SIZE[self.cpu] * 2
        return {
            name: f"0x{self.registers[name]:0{width}x}"
            for name in REGISTER_NAMES[self.cpu]
            if self.is_valid(name)
        }


class ContextError(ValueError):
    """The bytes are not a context this reader knows."""


def parse_context(data: bytes, cpu: str | None = None) -> Context:
    """The Context in `data` (one CONTEXT record as stored in the dump).

    `cpu` is the SystemInfo's cpu_arch when known ("amd64", "x86", "arm64", "arm");
    the record's own flags and size decide the layout. Records longer than their
    layout (extended x86/amd64 contexts with XSAVE data) are read up to the layout's
    end. Raises ContextError for a record that is too short or of no known layout.
    """
    layout = _choose_layout(data, cpu)
    if len(data) < layout.size:
        raise ContextError(
            f"{layout.name} context needs {layout.size} bytes, record has {len(data)}"
        )
    values = struct.unpack_from(layout.format, data, layout.registers_offset)
    unpacked = dict(zip(layout.names, values, strict=True))
    registers = {name: unpacked[name] for name in REGISTER_NAMES[layout.cpu]}
    flags = struct.unpack_from("<I", data, layout.flags_offset)[0]
    return Context(layout.cpu, registers, _valid_from_flags(layout, flags))


@dataclasses.dataclass(frozen=True)
class _Layout:
    name: str
    cpu: str
    size: int                   # bytes of the fixed layout; longer records are accepted
    flags_offset: int
    cpu_flag: int               # the CPU bit in the context flags word
    registers_offset: int
    format: str                 # struct format of the registers from registers_offset
    names: tuple[str, ...]      # the names of the values `format` unpacks, in order
    control: frozenset[str]     # the registers of the CONTEXT_CONTROL group
    integer: frozenset[str]     # the registers of the CONTEXT_INTEGER group


_CONTROL, _INTEGER = 0x1, 0x2
_CPU_BITS = 0xFFFFFF00

# CONTEXT_X86: flags, debug registers and the float save area come first; then gs, fs,
# es, ds, the integer registers, ebp, eip, cs, eflags, esp, ss from offset 140, and the
# 512-byte extended register area.
_X86 = _Layout(
    name="x86", cpu="x86", size=716, flags_offset=0, cpu_flag=0x00010000,
    registers_offset=156, format="<8I4x2I",
    names=("edi", "esi", "ebx", "edx", "ecx", "eax", "ebp", "eip", "eflags", "esp"),
    control=frozenset({"ebp", "eip", "eflags", "esp"}),
    integer=frozenset({"edi", "esi", "ebx", "edx", "ecx", "eax"}),
)
# CONTEXT_AMD64: six home slots, the flags at 48, then segment, debug registers, and the
# general registers in encoding order (rax, rcx, rdx, rbx, rsp, ...) from offset 120.
_AMD64_ORDER = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
                *(f"r{i}" for i in range(8, 16)), "rip")
_AMD64 = _Layout(
    name="amd64", cpu="amd64", size=1232, flags_offset=48, cpu_flag=0x00100000,
    registers_offset=120, format="<17Q", names=_AMD64_ORDER,
    control=frozenset({"rsp", "rip"}),
    integer=frozenset(_AMD64_ORDER) - {"rsp", "rip"},
)
# The ARM layout written by Breakpad and Crashpad: flags, r0..r15, cpsr, float state.
# Its writers set INTEGER (0x2) for the whole register file, sp, lr and pc included.
_ARM_NAMES = (*(f"r{i}" for i in range(11)), "fp", "r12", "sp", "lr", "pc")
_ARM = _Layout(
    name="arm", cpu="arm", size=368, flags_offset=0, cpu_flag=0x40000000,
    registers_offset=4, format="<16I", names=_ARM_NAMES,
    control=frozenset({"sp", "lr", "pc"}), integer=frozenset(_ARM_NAMES),
)
# Both ARM64 layouts keep x0..x28, fp, lr, sp, pc at offset 8; they differ in the flags
# word (64-bit in the old one, 32-bit plus cpsr in the Windows one) and in what follows.
_ARM64_NAMES = (*(f"x{i}" for i in range(29)), "fp", "lr", "sp", "pc")
_ARM64_CONTROL = frozenset({"fp", "lr", "sp", "pc"})
_ARM64 = _Layout(
    name="arm64", cpu="arm64", size=912, flags_offset=0, cpu_flag=0x00400000,
    registers_offset=8, format="<33Q", names=_ARM64_NAMES,
    control=_ARM64_CONTROL, integer=frozenset(_ARM64_NAMES) - _ARM64_CONTROL,
)
# The old layout has no control group: its integer group holds every register.
_ARM64_OLD = dataclasses.replace(
    _ARM64, name="arm64 (old layout)", size=796, cpu_flag=0x80000000,
    control=frozenset(), integer=frozenset(_ARM64_NAMES),
)


_BY_CPU = {layout.cpu: layout for layout in (_X86, _AMD64, _ARM)}


def _choose_layout(data: bytes, cpu: str | None) -> _Layout:
    if len(data) < 4:
        raise ContextError(f"context record of {len(data)} bytes")
    first = _u32(data, 0)
    if cpu is None:
        cpu = _guess_cpu(data)
    if cpu == "arm64":
        layout = _ARM64 if first & _ARM64.cpu_flag else _ARM64_OLD
    elif cpu in _BY_CPU:
        layout = _BY_CPU[cpu]
    else:
        raise ContextError(f"no known context layout (cpu {cpu}, flags {first:#010x})")
    flags = _u32(data, layout.flags_offset) if len(data) >= layout.flags_offset + 4 else 0
    if not flags & layout.cpu_flag:
        raise ContextError(f"not an {layout.name} context: flags {flags:#010x}")
    return layout


def _guess_cpu(data: bytes) -> str | None:
    """The CPU whose flags word holds its CPU bits, for a record of unknown origin. The
    amd64 flags sit at offset 48, where other layouts keep data, so a long record with
    amd64 bits there wins over the word at offset 0 (amd64's first spill slot)."""
    at_48 = _u32(data, 48) if len(data) >= 52 else 0
    if len(data) >= _AMD64.size and at_48 & _CPU_BITS == _AMD64.cpu_flag:
        return "amd64"
    cpu_bits = _u32(data, 0) & _CPU_BITS
    for layout in (_X86, _ARM, _ARM64, _ARM64_OLD):
        if cpu_bits == layout.cpu_flag:
            return layout.cpu
    if at_48 & _CPU_BITS == _AMD64.cpu_flag:
        return "amd64"
    return None


def _valid_from_flags(layout: _Layout, flags: int) -> frozenset[str] | None:
    """The registers the flags say are present; None when all are. A record naming
    neither group is taken as complete: writers that fill only the CPU bits write
    every register."""
    groups = flags & (_CONTROL | _INTEGER)
    if groups == _CONTROL and layout.control:
        valid = layout.control
    elif groups == _INTEGER:
        valid = layout.integer
    else:
        return None
    return None if valid == frozenset(layout.names) else valid


def _u32(data: bytes, offset: int) -> int:
    return struct.unpack_from("<I", data, offset)[0]
