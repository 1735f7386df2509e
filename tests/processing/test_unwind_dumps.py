"""The walker on the real dumps, without symbols, against Breakpad's minidump_stackwalk.

Frame 0 comes from the exception context (SOURCES.md lists it per dump). Every frame
Breakpad finds from the context or by frame pointer must be ours too, same pc; so far
its scanning agrees with ours as well, so whole stacks are compared, on every thread.
"""

from __future__ import annotations

import pytest

from chalicelib.processing.context import PC
from chalicelib.processing.minidump import Minidump, Thread
from chalicelib.processing.symbols import NoSymbols
from chalicelib.processing.unwind import Frame, frame_json, walk_stack
from tests.processing.conftest import MINIDUMPS
from tests.testlib import breakpad

# Frame 0 of the crashing thread: module and offset, as SOURCES.md gives them.
FRAME_0 = {
    "android-arm64-firefox-sigsegv.dmp": ("libxul.so", 0x2D4DA90),
    "ios-x86_64-simulator-crashpad-nsexception.dmp": ("ios_crash_xcuitests", 0x6BC34),
    "linux-x86_64-breakpad-sigsegv.dmp": ("crash", 0x1D72),
    "linux-x86_64-crashpad-chromeos-chrome-sigsegv.dmp": ("chrome", 0x3637DA0),
    "macos-x86_64-crashpad-electron-bad-instruction.dmp": ("Electron Framework", 0xF34E4),
    "windows-x86-breakpad-access-violation.dmp": ("test_app.exe", 0x429E),
    "windows-x86_64-fastfail-0xc0000409.dmp": ("tiny.exe", 0x1AF42),
    "windows-x86_64-sentry-native-access-violation.dmp": ("VCRUNTIME140D.dll", 0x20476),
}
NO_EXCEPTION = "windows-x86_64-no-exception-stream.dmp"

# On arm64, where a frame record's saved fp is unusable (ART code keeps other values
# in x29), Breakpad drops the record's return address and scans on from the same
# place as we do; we keep that frame (trust "frame_pointer"). The crashing thread's:
ARM64_EXTRA_FRAME = {"android-arm64-firefox-sigsegv.dmp": 38}


def walk_thread(dump: Minidump, thread: Thread, context=None) -> list[Frame]:
    return walk_stack(
        context or thread.context, dump.memory, dump.modules, NoSymbols(),
        (thread.stack_base, thread.stack_base + thread.stack_size),
        os=dump.system_info.os, unloaded_modules=dump.unloaded_modules,
    )


def walk_crashing_thread(dump: Minidump) -> list[Frame]:
    thread = next(t for t in dump.threads if t.id == dump.exception.thread_id)
    return walk_thread(dump, thread, dump.exception.context)


def as_breakpad(frames: list[Frame]) -> list[tuple[str | None, int, str]]:
    """(module, pc, trust) per frame, to compare with breakpad_view."""
    return [
        (frame.module.filename if frame.module else None, frame.pc, frame.trust)
        for frame in frames
    ]


def breakpad_view(frames: list[breakpad.BreakpadFrame], cpu: str) -> list[tuple]:
    """(module, pc, trust); a frame found as a leaf's return is what we call a scan."""
    return [
        (frame.module, frame.registers[PC[cpu]], "scan" if frame.trust == "leaf" else frame.trust)
        for frame in frames
    ]


@pytest.mark.parametrize("name", sorted(FRAME_0))
def test_frame_0_is_the_exception_context(open_dump, name):
    frames = walk_crashing_thread(open_dump(name))
    module, offset = FRAME_0[name]
    assert frames[0].trust == "context"
    assert (frames[0].module.filename, frames[0].pc - frames[0].module.base) == (module, offset)
    data = frame_json(frames[0], 0, include_registers=True)
    assert data["module"] == module
    assert int(data["module_offset"], 16) == offset
    assert int(data["registers"][PC[frames[0].context.cpu]], 16) == frames[0].pc


def test_thread_without_exception_starts_in_its_context(open_dump):
    dump = open_dump(NO_EXCEPTION)
    frames = walk_thread(dump, dump.threads[0])
    assert (frames[0].module.filename, frames[0].pc - frames[0].module.base) == (
        "ntdll.dll", 0xA39E4,
    )


@pytest.mark.parametrize("name", sorted(FRAME_0))
def test_frame_pointer_frames_match_breakpad(open_dump, name):
    dump = open_dump(name)
    ours = as_breakpad(walk_crashing_thread(dump))
    theirs = breakpad_view(breakpad.crashing_thread(MINIDUMPS / name), dump.system_info.cpu_arch)
    trusted = [i for i, frame in enumerate(theirs) if frame[2] in ("context", "frame_pointer")]
    assert trusted, "Breakpad found no frame by context or frame pointer"
    assert [ours[i] for i in trusted] == [theirs[i] for i in trusted]


@pytest.mark.parametrize("name", sorted(FRAME_0))
def test_whole_stack_matches_breakpad(open_dump, name):
    dump = open_dump(name)
    ours = as_breakpad(walk_crashing_thread(dump))
    theirs = breakpad_view(breakpad.crashing_thread(MINIDUMPS / name), dump.system_info.cpu_arch)
    extra = ARM64_EXTRA_FRAME.get(name)
    if extra is not None:
        assert ours.pop(extra) == (None, 0x7F08_7B3A_4164, "frame_pointer")
    assert ours == theirs


@pytest.mark.parametrize("name", sorted(FRAME_0) + [NO_EXCEPTION])
def test_every_thread_matches_breakpad(open_dump, name):
    """Each thread Breakpad walks (it leaves out the thread that wrote the dump) gives
    the same frames, but for the arm64 frames it drops (see ARM64_EXTRA_FRAME)."""
    dump = open_dump(name)
    cpu = dump.system_info.cpu_arch
    theirs_by_index = breakpad.threads(MINIDUMPS / name)
    compared = extra_frames = 0
    for index, thread in enumerate(dump.threads):
        if thread.id == dump.dump_thread_id:
            continue
        context = thread.context
        if dump.exception is not None and thread.id == dump.exception.thread_id:
            context = dump.exception.context
        ours = as_breakpad(walk_thread(dump, thread, context))
        theirs = breakpad_view(theirs_by_index[index], cpu)
        compared += 1
        if ours != theirs and cpu == "arm64":
            extra = next(i for i, (a, b) in enumerate(zip(ours, [*theirs, None])) if a != b)
            assert ours.pop(extra)[2] == "frame_pointer", f"thread {index}"
            extra_frames += 1
        assert ours == theirs, f"thread {index}"
    assert compared == len(dump.threads) - (dump.dump_thread_id is not None)
    if name in ARM64_EXTRA_FRAME:
        assert (compared, extra_frames) == (164, 66)
