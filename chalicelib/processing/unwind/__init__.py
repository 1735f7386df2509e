"""Walk a thread's stack: frame 0 from its context, each caller from the one before.

For each frame the walker tries, in order, CFI (asking the symbol provider), frame
pointers, then bounded stack scanning, where a candidate return address must fall in
a loaded module. It stops at the end of the stack, on a loop (the stack pointer must
grow), or at MAX_FRAMES. One module per CPU (amd64, arm64, x86, arm) knows its
calling convention.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from chalicelib.processing.context import Context
from chalicelib.processing.minidump import Memory, Module, Modules
from chalicelib.processing.symbols import SymbolProvider

MAX_FRAMES = 1024


@dataclasses.dataclass
class Frame:
    context: Context
    trust: str                       # "context", "cfi", "frame_pointer", "scan"
    module: Module | None = None
    function: str | None = None
    function_offset: int | None = None
    function_base: int | None = None
    file: str | None = None
    line: int | None = None
    inlines: list[dict[str, Any]] | None = None   # {"function", "file", "line"}, innermost first
    unloaded_modules: list[dict[str, Any]] | None = None

    @property
    def pc(self) -> int:
        return self.context.pc

    @property
    def lookup_address(self) -> int:
        """The address to look symbols up at: the pc for frame 0 (trust "context"),
        the return address minus one for callers, which points inside the call."""
        return self.pc if self.trust == "context" else max(self.pc - 1, 0)


def walk_stack(
    context: Context,
    memory: Memory | None,
    modules: Modules,
    symbols: SymbolProvider,
    stack_range: tuple[int, int] | None = None,
    max_frames: int = MAX_FRAMES,
) -> list[Frame]:
    """The frames of one thread, frame 0 first. Never raises on bad memory or registers."""
    raise NotImplementedError
