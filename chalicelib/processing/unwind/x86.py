"""x86: CFI, then the ebp chain, then scanning.

With `push ebp; mov ebp, esp` in every prologue, [ebp] holds the caller's ebp and
[ebp+4] the return address, and the caller's esp is ebp+8. The chain is taken as it
is whenever both words can be read: code built without frame pointers yields a wrong
frame or two before the walk ends, where stricter checks would trade them for
scanned guesses.
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

CALLEE_SAVED = ("ebp", "ebx", "esi", "edi")
WORD = 4
# Frames larger than this are taken as a sign that a candidate ebp is not one.
MAX_FRAME_GAP = 128 * 1024


def caller(walk: Walk, frame: Frame) -> tuple[Context, str] | None:
    registers = caller_by_cfi(walk, frame, CALLEE_SAVED)
    if registers is not None:
        return make_context("x86", registers), "cfi"
    found = _by_frame_pointer(walk, frame)
    if found is not None:
        return found, "frame_pointer"
    found = _by_scan(walk, frame)
    return (found, "scan") if found is not None else None


def _by_frame_pointer(walk: Walk, frame: Frame) -> Context | None:
    ebp = register(frame.context, "ebp")
    if ebp is None:
        return None
    eip = walk.memory.read_pointer(ebp + WORD)
    caller_ebp = walk.memory.read_pointer(ebp)
    if eip is None or caller_ebp is None:
        return None
    return make_context("x86", {"eip": eip, "esp": ebp + 2 * WORD, "ebp": caller_ebp})


def _by_scan(walk: Walk, frame: Frame) -> Context | None:
    found = scan_for_return(walk, frame)
    if found is None:
        return None
    where, eip = found
    esp = where + WORD
    registers = {"eip": eip, "esp": esp}
    # A callee with a standard prologue pushed the caller's ebp just below the return
    # address; one without left ebp pointing at a frame further up.
    saved = walk.memory.read_pointer(where - WORD) if where > frame.context.sp else None
    ebp = register(frame.context, "ebp")
    if (
        saved is not None
        and where < saved <= where - WORD + MAX_FRAME_GAP
        and walk.memory.read_pointer(saved) is not None
    ):
        registers["ebp"] = saved
    elif ebp is not None and ebp >= esp and walk.memory.read_pointer(ebp) is not None:
        registers["ebp"] = ebp
    return make_context("x86", registers)
