"""The walker with real symbol files (the symfile provider over .sym indexes) against
Breakpad's minidump_stackwalk given the same files: CFI and STACK WIN unwinding,
function names and inlined functions frame by frame."""

from __future__ import annotations

from pathlib import Path

import pytest

from chalicelib.processing.context import PC
from chalicelib.processing.minidump import Minidump, Module, read_minidump
from chalicelib.processing.unwind import Frame, frame_json, walk_stack
from chalicelib.symfile.index import build_index
from chalicelib.symfile.provider import IndexedSymbols
from chalicelib.symfile.reader import FileRangeReader
from tests.testlib import breakpad

SYMBOLS = Path(__file__).resolve().parents[1] / "fixtures" / "symbols"
SYMBOL_TREE = SYMBOLS / "symbols"
DUMPS = {
    "windows-x86": SYMBOLS.parent / "minidumps" / "windows-x86-breakpad-access-violation.dmp",
    "macos-amd64": SYMBOLS / "pipeline-inlines-macos-segv.dmp",
}


@pytest.fixture(scope="module")
def indexes(tmp_path_factory) -> dict[tuple[str, str], Path]:
    folder = tmp_path_factory.mktemp("indexes")
    paths = {}
    for sym in SYMBOL_TREE.glob("*/*/*.sym"):
        debug_file, debug_id = sym.parent.parent.name, sym.parent.name
        path = folder / f"{debug_file}-{debug_id}.idx"
        with sym.open("rb") as src, path.open("wb") as out:
            build_index(src, out)
        paths[(debug_file, debug_id)] = path
    return paths


@pytest.fixture
def walked(indexes):
    """walked(name) -> (dump, frames of its crashing thread) with the symbol files."""
    files = []

    def open_index(module: Module) -> FileRangeReader | None:
        path = indexes.get((module.debug_file, module.debug_id))
        if path is None:
            return None
        reader = FileRangeReader(path)
        files.append(reader)
        return reader

    def walk(name: str) -> tuple[Minidump, list[Frame]]:
        file = DUMPS[name].open("rb")
        files.append(file)
        dump = read_minidump(file)
        thread = next(t for t in dump.threads if t.id == dump.exception.thread_id)
        frames = walk_stack(
            dump.exception.context, dump.memory, dump.modules, IndexedSymbols(open_index),
            (thread.stack_base, thread.stack_base + thread.stack_size),
            os=dump.system_info.os, unloaded_modules=dump.unloaded_modules,
        )
        return dump, frames

    yield walk
    for file in files:
        file.close()


def flattened(frames: list[Frame]) -> list[tuple]:
    """(module, function, trust, pc) per frame, inlined functions first as Breakpad
    lists them (pc None)."""
    rows = []
    for frame in frames:
        module = frame.module.filename if frame.module else None
        for inline in frame.inlines or []:
            rows.append((module, inline["function"], "inline", None))
        rows.append((module, frame.function, frame.trust, frame.pc))
    return rows


def breakpad_rows(frames: list[breakpad.BreakpadFrame], cpu: str) -> list[tuple]:
    return [
        (frame.module, frame.function, frame.trust,
         None if frame.trust == "inline" else frame.registers[PC[cpu]])
        for frame in frames
    ]


@pytest.mark.parametrize("name", sorted(DUMPS))
def test_symbolized_stack_matches_breakpad(walked, name):
    dump, frames = walked(name)
    theirs = breakpad_rows(
        breakpad.crashing_thread(DUMPS[name], SYMBOL_TREE), dump.system_info.cpu_arch
    )
    assert flattened(frames) == theirs


def test_x86_callers_found_by_stack_win(walked):
    _, frames = walked("windows-x86")
    assert [(frame.function, frame.trust, frame.pc) for frame in frames] == [
        ("`anonymous namespace'::CrashFunction", "context", 0x40429E),
        ("main", "cfi", 0x404200),
        ("__tmainCRTStartup", "cfi", 0x4053EC),
        (None, "cfi", 0x7C816FD7),
    ]
    assert frames[1].context.registers == {"eip": 0x404200, "esp": 0x12FE90, "ebp": 0x12FF70,
                                           "ebx": 0x7C80ABC1, "esi": 2, "edi": 0xA28}
    data = frame_json(frames[1], 1, include_registers=False)
    assert (data["function"], data["function_offset"], data["file"], data["line"]) == (
        "main", "0x0000004f", "c:\\test_app.cc", 65,
    )
    assert (data["offset"], data["module_offset"], data["missing_symbols"]) == (
        "0x004041ff", "0x000041ff", False,
    )
