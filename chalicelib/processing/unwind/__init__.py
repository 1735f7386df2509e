"""Walk a thread's stack: frame 0 from its context, each caller from the one before.

For each frame the walker tries, in order, CFI (asking the symbol provider), frame
pointers, then bounded stack scanning, where a candidate return address must fall in
a loaded module. It stops at the end of the stack, on a loop (the stack pointer must
grow), or at MAX_FRAMES. One module per CPU (amd64, arm64, x86, arm) knows its
calling convention; common.py holds what they share.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from chalicelib.processing.context import Context
from chalicelib.processing.minidump import Memory, Module, Modules, UnloadedModule
from chalicelib.processing.symbols import SymbolProvider
from chalicelib.processing.unwind import amd64, arm, arm64, x86
from chalicelib.processing.unwind.common import StackMemory, Walk, module_end

MAX_FRAMES = 1024
# Below this a pc is a null pointer plus an offset, or the end-of-stack marker 0.
LOWEST_PC = 4096

# How far back from a return address the call instruction starts (x86's calls vary
# in length: one byte back is inside it).
CALL_SIZE = {"amd64": 1, "x86": 1, "arm64": 4, "arm": 2}

CALLERS: dict[str, Callable[[Walk, Frame], tuple[Context, str] | None]] = {
    "amd64": amd64.caller,
    "x86": x86.caller,
    "arm64": arm64.caller,
    "arm": arm.caller,
}


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
    # {"module": unloaded module name, "offsets": [int, ...]} sorted by name; only
    # for a frame no loaded module holds.
    unloaded_modules: list[dict[str, Any]] | None = None

    @property
    def pc(self) -> int:
        return self.context.pc

    @property
    def lookup_address(self) -> int:
        """The address to look symbols and the module up at: the pc for frame 0
        (trust "context"); for callers the return address minus one (minus the call
        instruction's size on arm and arm64), which points inside the call."""
        if self.trust == "context":
            return self.pc
        return max(self.pc - CALL_SIZE.get(self.context.cpu, 1), 0)


def walk_stack(
    context: Context,
    memory: Memory | None,
    modules: Modules,
    symbols: SymbolProvider,
    stack_range: tuple[int, int] | None = None,
    max_frames: int = MAX_FRAMES,
    *,
    os: str = "",
    unloaded_modules: Sequence[UnloadedModule] = (),
) -> list[Frame]:
    """The frames of one thread, frame 0 first. Never raises on bad memory or registers.

    `stack_range` is (start, end) of the thread's stack memory (Thread.stack_base and
    stack_base + stack_size): reads stay inside it and every caller's stack pointer
    must too. `os` is SystemInfo.os ("Windows NT", "iOS", ...), which decides a few
    conventions (no rbp chain on Windows, r7 as the arm frame pointer on iOS).
    `unloaded_modules` name the modules that once held a pc no loaded module holds.
    """
    frames = [Frame(context=context, trust="context")]
    step = CALLERS.get(context.cpu)
    if step is None:
        return frames
    walk = Walk(
        cpu=context.cpu,
        os=os,
        memory=StackMemory(memory, stack_range, context.pointer_size),
        modules=modules,
        symbols=symbols,
        code_end=module_end(modules),
        frames=frames,
    )
    while True:
        frame = frames[-1]
        _symbolize(frame, walk, unloaded_modules)
        if memory is None or len(frames) >= max_frames:
            break
        found = step(walk, frame)
        if found is None or _ends_walk(frame, found[0], walk):
            break
        frames.append(Frame(context=found[0], trust=found[1]))
    return frames


def _ends_walk(callee: Frame, caller: Context, walk: Walk) -> bool:
    """Whether `caller` marks the end of the stack or a broken walk.

    The stack pointer must grow, which also ends any loop. Only the first step may
    leave it where it was (a leaf function need not touch the stack), and then the
    pc must change.
    """
    if not LOWEST_PC <= caller.pc < walk.memory.limit:
        return True
    sp, callee_sp = caller.sp, callee.context.sp
    if sp < callee_sp or sp == callee_sp and (
        callee.trust != "context" or caller.pc == callee.pc
    ):
        return True
    return not walk.memory.low <= sp <= walk.memory.high


def _symbolize(frame: Frame, walk: Walk, unloaded: Sequence[UnloadedModule]) -> None:
    address = frame.lookup_address
    module = walk.modules.module_at(address)
    if module is not None:
        frame.module = module
        walk.symbols.fill_symbol(module, frame)
        return
    offsets: dict[str, set[int]] = {}
    for gone in unloaded:
        if gone.base <= address < gone.base + gone.size:
            offsets.setdefault(gone.code_file, set()).add(address - gone.base)
    if offsets:
        frame.unloaded_modules = [
            {"module": name, "offsets": sorted(offsets[name])} for name in sorted(offsets)
        ]


def frame_json(frame: Frame, index: int, include_registers: bool) -> dict[str, Any]:
    """One frame as minidump-stackwalk's JSON has it (keys in its order).

    `offset` is the lookup address (for callers just before the return address);
    `registers` appears only when asked for, as for the crashing thread's frame 0.
    """
    width = frame.context.pointer_size * 2

    def hex_(value: int) -> str:
        return f"0x{value:0{width}x}"

    address = frame.lookup_address
    function_offset = frame.function_offset
    if function_offset is None and frame.function_base is not None:
        function_offset = address - frame.function_base
    result: dict[str, Any] = {
        "file": frame.file,
        "frame": index,
        "function": frame.function,
        "function_offset": None if function_offset is None else hex_(function_offset),
        "inlines": [
            {"file": inline.get("file"), "function": inline.get("function"),
             "line": inline.get("line")}
            for inline in frame.inlines
        ] if frame.inlines else None,
        "line": frame.line,
        "missing_symbols": frame.function is None,
        "module": frame.module.filename if frame.module is not None else None,
        "module_offset": hex_(address - frame.module.base) if frame.module is not None else None,
        "offset": hex_(address),
    }
    if include_registers:
        result["registers"] = frame.context.as_json()
    result["trust"] = frame.trust
    result["unloaded_modules"] = [
        {"module": entry["module"], "offsets": [hex_(offset) for offset in entry["offsets"]]}
        for entry in frame.unloaded_modules
    ] if frame.unloaded_modules else None
    return result
