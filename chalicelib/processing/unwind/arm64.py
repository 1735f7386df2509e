"""arm64: CFI, then the frame record chain, then scanning.

A call puts the return address in lr; a function that calls others saves the pair
(fp, lr) as its frame record and points fp at it, so [fp] is the caller's fp, [fp+8]
the return address and fp+16 the caller's sp. Leaf functions need no record: when
the crash stops in one, lr still holds the return address and fp is still the
caller's. So the first step takes lr as the caller's pc when lr points into code and
the record at fp does not already hold it. The chain ends at a record whose fp or
return address is 0, as a thread's entry point leaves it.

Pointer authentication (Apple's arm64e) signs return addresses and saved frame
pointers in their high bits; those bits are masked off above the highest address a
module occupies (at least 47 bits).
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

CALLEE_SAVED = tuple(f"x{i}" for i in range(19, 29)) + ("fp",)
WORD = 8
LOWEST_CODE = 0x1000
HIGHEST_CODE = 0x000F_FFFF_FFFF_FFFF
DEFAULT_ADDRESS_BITS = 47


def strip_authentication(walk: Walk, pointer: int) -> int:
    highest = max((1 << DEFAULT_ADDRESS_BITS) - 1, walk.code_end)
    return pointer & ((1 << highest.bit_length()) - 1)


def caller(walk: Walk, frame: Frame) -> tuple[Context, str] | None:
    registers = caller_by_cfi(walk, frame, CALLEE_SAVED)
    if registers is not None:
        for name in ("pc", "lr", "fp"):
            if name in registers:
                registers[name] = strip_authentication(walk, registers[name])
        return make_context("arm64", registers), "cfi"
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
    """Whether a frame found along the chain is the outermost: its fp is 0, or its
    record holds no return address (how thread entry points end the chain)."""
    fp = register(frame.context, "fp")
    return fp == 0 or (fp is not None and walk.memory.read_pointer(fp + WORD) == 0)


def _leaf_return(walk: Walk, frame: Frame) -> Context | None:
    lr, sp = register(frame.context, "lr"), register(frame.context, "sp")
    if lr is None or sp is None:
        return None
    lr = strip_authentication(walk, lr)
    if not walk.seems_code(lr):
        return None
    fp = register(frame.context, "fp")
    registers = {"pc": lr, "sp": sp}
    if fp is not None:
        saved = walk.memory.read_pointer(fp + WORD) if fp else 0
        if saved is None:
            return None  # fp points off the stack: it is not being used as one
        if strip_authentication(walk, saved) == lr:
            return None  # the record at fp is this function's own: not a leaf
        registers["fp"] = fp
    return make_context("arm64", registers)


def _by_frame_record(walk: Walk, frame: Frame) -> Context | None:
    fp = register(frame.context, "fp")
    if not fp or register(frame.context, "sp") is None:
        return None
    caller_fp = walk.memory.read_pointer(fp)
    pc = walk.memory.read_pointer(fp + WORD)
    if caller_fp is None or pc is None:
        return None
    caller_fp = strip_authentication(walk, caller_fp)
    pc = strip_authentication(walk, pc)
    if not LOWEST_CODE <= pc <= HIGHEST_CODE:
        return None
    registers = {"pc": pc, "sp": fp + 2 * WORD}
    # The chain runs up the stack and ends with 0. A saved fp elsewhere belongs to
    # code that uses x29 for something else: the caller is kept, its fp is unknown.
    if caller_fp == 0 or caller_fp > fp and walk.memory.read_pointer(caller_fp) is not None:
        registers["fp"] = caller_fp
        # The caller's own record keeps the lr it was entered with, which CFI rules
        # at a function's first instruction refer to.
        lr = walk.memory.read_pointer(caller_fp + WORD) if caller_fp else None
        if lr is not None:
            registers["lr"] = strip_authentication(walk, lr)
    return make_context("arm64", registers)


def _by_scan(walk: Walk, frame: Frame) -> Context | None:
    found = scan_for_return(walk, frame)
    if found is None:
        return None
    where, pc = found
    return make_context("arm64", {"pc": pc, "sp": where + WORD})
