"""CPU contexts: the register state a minidump records for a thread or an exception.

The raw CONTEXT structures differ per CPU and writer (x86, amd64, arm, the old
Breakpad arm64 layout and the Windows-style ARM64 one, each with extended forms);
parse_context turns any of them into a Context of named registers, in the names and
order minidump-stackwalk's JSON uses.
"""

from __future__ import annotations

import dataclasses

# Register names per CPU in the order the JSON lists them.
REGISTER_NAMES: dict[str, tuple[str, ...]] = {
    "amd64": (
        "rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp", "rsp",
        "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip",
    ),
    "x86": ("eip", "esp", "ebp", "ebx", "esi", "edi", "eax", "ecx", "edx", "efl"),
    "arm64": tuple(f"x{i}" for i in range(29)) + ("fp", "lr", "sp", "pc"),
    "arm": tuple(f"r{i}" for i in range(11)) + ("fp", "r12", "sp", "lr", "pc"),
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
    the record's own flags and size decide the layout. Raises ContextError.
    """
    raise NotImplementedError
