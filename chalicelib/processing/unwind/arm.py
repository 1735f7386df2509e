"""arm (32-bit): CFI, then the frame record chain, then scanning.

A call puts the return address in lr; a function with a frame pushes (fp, lr) and
points fp at the pair: [fp] is the caller's fp, [fp+4] the return address, fp+8 the
caller's sp. iOS always keeps that chain in r7. Elsewhere r11 is the frame pointer
only in code built to keep one (Thumb code uses r7, or nothing), so a step along r11
counts only when it lands in a module and the chain runs up the stack. As on arm64,
the first step takes lr as the caller's pc when the crash stopped in a leaf.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib.processing.context import Context
from chalicelib.processing.unwind.common import (
    Walk,
    caller_by_cfi,
    make_context,
    register,
    scan_for_return,
)

if TYPE_CHECKING:
    from chalicelib.processing.unwind import Frame

CALLEE_SAVED = ("r4", "r5", "r6", "r7", "r8", "r9", "r10", "fp")
WORD = 4


def frame_register(os: str) -> str:
    return "r7" if os == "iOS" else "fp"


def caller(walk: Walk, frame: Frame) -> tuple[Context, str] | None:
    registers = caller_by_cfi(walk, frame, CALLEE_SAVED)
    if registers is not None:
        return make_context("arm", registers), "cfi"
    if frame.trust == "frame_pointer" and _chain_ends(walk, frame):
        return None
    found = _leaf_return(walk, frame) if frame.trust == "context" else None
    if found is None:
        found = _by_frame_record(walk, frame)
    if found is not None:
        return found, "frame_pointer"
    found = _by_scan(walk, frame)
    return (found, "scan") if found is not None else None


def _chain_ends(walk: Walk, frame: Frame) -> bool:
    """Whether a frame found along the chain is the outermost: its frame pointer is
    0, or its record holds no return address."""
    fp = register(frame.context, frame_register(walk.os))
    return fp == 0 or (fp is not None and walk.memory.read_pointer(fp + WORD) == 0)


def _leaf_return(walk: Walk, frame: Frame) -> Context | None:
    lr, sp = register(frame.context, "lr"), register(frame.context, "sp")
    if lr is None or sp is None or not walk.seems_code(lr):
        return None
    name = frame_register(walk.os)
    fp = register(frame.context, name)
    registers = {"pc": lr, "sp": sp}
    if fp is not None:
        saved = walk.memory.read_pointer(fp + WORD) if fp else 0
        if saved is None or saved == lr:
            return None  # fp is no frame pointer, or the record is this function's
        registers[name] = fp
    return make_context("arm", registers)


def _by_frame_record(walk: Walk, frame: Frame) -> Context | None:
    name = frame_register(walk.os)
    fp = register(frame.context, name)
    if not fp or register(frame.context, "sp") is None:
        return None
    caller_fp = walk.memory.read_pointer(fp)
    pc = walk.memory.read_pointer(fp + WORD)
    if caller_fp is None or pc is None:
        return None
    if walk.os != "iOS" and (not walk.seems_code(pc) or 0 < caller_fp <= fp):
        return None
    registers = {"pc": pc, "sp": fp + 2 * WORD, name: caller_fp}
    lr = walk.memory.read_pointer(caller_fp + WORD) if caller_fp else None
    if lr is not None:
        registers["lr"] = lr
    return make_context("arm", registers)


def _by_scan(walk: Walk, frame: Frame) -> Context | None:
    found = scan_for_return(walk, frame)
    if found is None:
        return None
    where, pc = found
    return make_context("arm", {"pc": pc, "sp": where + WORD})
