"""amd64: CFI, then the rbp chain (not on Windows), then scanning.

A function with a frame pointer starts with `push rbp; mov rbp, rsp`, so [rbp] holds
the caller's rbp and [rbp+8] the return address CALL pushed; the caller's rsp is
rbp+16. Windows x64 code may point rbp anywhere into its frame, so there the chain
means nothing without the unwind tables and the walker goes straight to scanning.
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

CALLEE_SAVED = ("rbx", "rbp", "r12", "r13", "r14", "r15")
WORD = 8
# Frames larger than this are taken as a sign that a candidate rbp is not one.
MAX_FRAME_GAP = 128 * 1024


def is_canonical(address: int) -> bool:
    """Whether a 48-bit virtual address can hold `address` (bit 47 copied upwards)."""
    return address <= 0x7FFF_FFFF_FFFF or address >= 0xFFFF_8000_0000_0000


def caller(walk: Walk, frame: Frame) -> tuple[Context, str] | None:
    registers = caller_by_cfi(walk, frame, CALLEE_SAVED)
    if registers is not None:
        return make_context("amd64", registers), "cfi"
    if walk.os != "Windows NT":
        found = _by_frame_pointer(walk, frame)
        if found is not None:
            return found, "frame_pointer"
    found = _by_scan(walk, frame)
    return (found, "scan") if found is not None else None


def _by_frame_pointer(walk: Walk, frame: Frame) -> Context | None:
    rbp = register(frame.context, "rbp")
    if rbp is None or register(frame.context, "rsp") is None or rbp % WORD:
        return None
    rip = walk.memory.read_pointer(rbp + WORD)
    caller_rbp = walk.memory.read_pointer(rbp)
    if rip is None or caller_rbp is None or not is_canonical(rip):
        return None
    rsp = rbp + 2 * WORD
    # The chain must run up the stack and stay inside it.
    if caller_rbp < rsp or walk.memory.read_pointer(caller_rbp) is None:
        return None
    return make_context("amd64", {"rip": rip, "rsp": rsp, "rbp": caller_rbp})


def _by_scan(walk: Walk, frame: Frame) -> Context | None:
    found = scan_for_return(walk, frame)
    if found is None:
        return None
    where, rip = found
    registers = {"rip": rip, "rsp": where + WORD}
    rbp = register(frame.context, "rbp")
    if rbp is not None:
        if rbp == where - WORD:
            # The callee pushed rbp right below its return address: [rbp] is the
            # caller's rbp when it lies a plausible frame further up.
            saved = walk.memory.read_pointer(rbp)
            if (
                saved is not None
                and where < saved <= where + MAX_FRAME_GAP
                and walk.memory.read_pointer(saved) is not None
            ):
                registers["rbp"] = saved
        elif rbp >= where + WORD:
            # The callee left rbp alone: it still belongs to a frame further up.
            registers["rbp"] = rbp
    return make_context("amd64", registers)
