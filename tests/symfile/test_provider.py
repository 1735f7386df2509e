import io
import logging
import struct

import pytest

from chalicelib.processing.context import Context
from chalicelib.processing.minidump import Module
from chalicelib.processing.unwind import Frame
from chalicelib.symfile.index import build_index
from chalicelib.symfile.provider import IndexedSymbols
from chalicelib.symfile.reader import FileRangeReader

from tests.symfile.conftest import CRASH_CLIENT_SYM, MACOS_DUMP, TEST_APP_SYM, WINDOWS_DUMP

RUST_SRC = "/rustc/fdca237d5194bf8a1c9b437ebd2114d1c2ba6195/library"
CRASH_CHECKOUT = "/Users/ABeingessner/.cargo/git/checkouts/crash-handling-42fc4843e3f89d91/4b757db"


def module(debug_file, debug_id, base, size=0x100000):
    return Module(base=base, size=size, code_file=debug_file, code_id=None,
                  debug_file=debug_file, debug_id=debug_id, version=None)


TEST_APP = module("test_app.pdb", "5A9832E5287241C1838ED98914E9B7FF1", 0x400000)
CRASH_CLIENT = module("crash-client", "509C0610949836F7B70BD88BCF03E5400", 0x102A54000)
KERNEL32 = module("kernel32.pdb", "BCE8785C57B44245A669896B6A19B9542", 0x7C800000)


class BytesReader:
    def __init__(self, data):
        self.data = data

    def read(self, offset, size):
        return self.data[offset:offset + size]


class StackBytes:
    """Memory holding `words` from `base` on, as the walker's memory offers it."""

    def __init__(self, base, words, size=8):
        self.base = base
        self.data = b"".join(struct.pack("<Q" if size == 8 else "<I", w) for w in words)

    def read(self, address, size):
        start = address - self.base
        if start < 0 or start + size > len(self.data):
            return None
        return self.data[start:start + size]


@pytest.fixture(scope="module")
def indexes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("indexes")
    paths = {}
    for mod, sym in ((TEST_APP, TEST_APP_SYM), (CRASH_CLIENT, CRASH_CLIENT_SYM)):
        path = folder / f"{mod.debug_file}.idx"
        with open(sym, "rb") as src, open(path, "wb") as out:
            build_index(src, out)
        paths[(mod.debug_file, mod.debug_id)] = path
    return paths


@pytest.fixture
def symbols(indexes):
    readers = []

    def open_index(mod):
        path = indexes.get((mod.debug_file, mod.debug_id))
        if path is None:
            return None
        readers.append(FileRangeReader(path))
        return readers[-1]

    yield IndexedSymbols(open_index)
    for reader in readers:
        reader.close()


def frame(cpu, pc, trust="context", **registers):
    pc_name = {"x86": "eip", "amd64": "rip"}[cpu]
    return Frame(context=Context(cpu, {pc_name: pc, **registers}), trust=trust)


def test_test_app_crash_function(symbols):
    f = frame("x86", 0x40429E)
    symbols.fill_symbol(TEST_APP, f)
    assert (f.function, f.function_base, f.function_offset, f.file, f.line, f.inlines) == (
        "`anonymous namespace'::CrashFunction", 0x404290, 0xE, "c:\\test_app.cc", 58, None)


def test_callers_look_up_the_return_address_minus_one(symbols):
    # line 58 covers 0x429b-0x42a3, line 59 starts at 0x42a4
    f = frame("x86", 0x4042A4, trust="cfi")
    symbols.fill_symbol(TEST_APP, f)
    assert (f.function, f.function_offset, f.line) == (
        "`anonymous namespace'::CrashFunction", 0x13, 58)
    assert f.lookup_address == 0x4042A3
    f = frame("x86", 0x4042A4)
    symbols.fill_symbol(TEST_APP, f)
    assert (f.function_offset, f.line) == (0x14, 59)


def test_public_fallback(symbols):
    f = frame("amd64", CRASH_CLIENT.base + 0x441A, trust="cfi")   # no FUNC covers main
    symbols.fill_symbol(CRASH_CLIENT, f)
    assert (f.function, f.function_base, f.function_offset, f.file, f.line, f.inlines) == (
        "main", CRASH_CLIENT.base + 0x43F0, 0x29, None, None, None)


def test_public_before_the_previous_func_is_not_used():
    text = ("MODULE Linux x86_64 ABCD0 libx.so\nFUNC 100 10 0 f\n"
            "PUBLIC 50 0 early\nPUBLIC 120 0 late\n")
    out = io.BytesIO()
    build_index(io.BytesIO(text.encode()), out)
    mod = module("libx.so", "ABCD0", 0x10000)
    symbols = IndexedSymbols(lambda m: BytesReader(out.getvalue()))
    gap = frame("amd64", 0x10000 + 0x118)
    symbols.fill_symbol(mod, gap)
    assert gap.function is None
    after = frame("amd64", 0x10000 + 0x130)
    symbols.fill_symbol(mod, after)
    assert (after.function, after.function_offset) == ("late", 0x10)
    below = frame("amd64", 0x10000 - 1)
    symbols.fill_symbol(mod, below)
    assert below.function is None


def test_crash_client_frame_with_an_inline(symbols):
    f = frame("amd64", CRASH_CLIENT.base + 0x14CD4)
    symbols.fill_symbol(CRASH_CLIENT, f)
    assert (f.function, f.function_offset, f.line) == ("sadness_generator::raise_segfault", 4, 133)
    assert f.file == CRASH_CHECKOUT + "/sadness-generator/src/lib.rs"
    assert f.inlines == [{"function": "core::ptr::write_volatile::<u8>",
                          "file": RUST_SRC + "/core/src/ptr/mod.rs", "line": 1574}]


def test_crash_client_inlines_innermost_first(symbols):
    f = frame("amd64", CRASH_CLIENT.base + 0x423E, trust="cfi")
    symbols.fill_symbol(CRASH_CLIENT, f)
    main_rs = CRASH_CHECKOUT + "/minidumper-test/crash-client/src/main.rs"
    assert (f.function, f.function_offset, f.file, f.line) == (
        "crash_client::main", 0xE3D, main_rs, 142)
    assert f.inlines == [
        {"function": "crash_client::real_main::{closure#1}", "file": main_rs, "line": 88},
        {"function": "crash_client::real_main", "file": main_rs, "line": 132},
    ]


def test_crash_client_eight_inlines(symbols):
    f = frame("amd64", CRASH_CLIENT.base + 0x833EE, trust="cfi")
    symbols.fill_symbol(CRASH_CLIENT, f)
    assert (f.function, f.line) == ("std::rt::lang_start_internal", 128)
    assert [i["function"] for i in f.inlines] == [
        "core::ops::function::impls::<impl core::ops::function::FnOnce<A> for &F>::call_once",
        "std::panicking::try::do_call", "std::panicking::try", "std::panic::catch_unwind",
        "std::rt::lang_start_internal::{{closure}}", "std::panicking::try::do_call",
        "std::panicking::try", "std::panic::catch_unwind",
    ]
    assert f.inlines[0] == {"function": f.inlines[0]["function"],
                            "file": RUST_SRC + "/core/src/ops/function.rs", "line": 280}


def test_walk_frame_with_stack_cfi(symbols):
    # STACK CFI INIT dd0 150 .cfa: $rbp 16 + $rbp: .cfa -16 + ^ .ra: .cfa -8 + ^
    #     $rbx: .cfa -40 + ^ $r14: .cfa -32 + ^ $r15: .cfa -24 + ^
    rbp = 0x7FFE0000
    memory = StackBytes(rbp - 24, [0xB0B, 0x1414, 0x1515, 0x7FFE0100, 0x102A58000])
    f = frame("amd64", CRASH_CLIENT.base + 0xE00, rsp=rbp - 64, rbp=rbp)
    caller = symbols.walk_frame(CRASH_CLIENT, f, memory)
    assert caller == {"rsp": rbp + 16, "rip": 0x102A58000, "rbp": 0x7FFE0100,
                      "rbx": 0xB0B, "r14": 0x1414, "r15": 0x1515}


def test_walk_frame_with_stack_win_program(symbols):
    ebp = 0x12FF00
    memory = StackBytes(ebp, [0x12FF40, 0x4042E5], size=4)
    f = frame("x86", 0x40429E, esp=ebp - 4, ebp=ebp, ebx=7)
    caller = symbols.walk_frame(TEST_APP, f, memory)
    assert caller == {"eip": 0x4042E5, "esp": ebp + 8, "ebp": 0x12FF40, "ebx": 7}


def test_walk_frame_answers_none_without_rules_or_memory(symbols):
    f = frame("amd64", CRASH_CLIENT.base + 0xE00, rsp=0x1000, rbp=0x2000)
    assert symbols.walk_frame(CRASH_CLIENT, f, StackBytes(0, [])) is None
    assert symbols.walk_frame(CRASH_CLIENT, f, None) is None
    outside = frame("amd64", CRASH_CLIENT.base + 0x1, rsp=0x1000, rbp=0x2000)
    assert symbols.walk_frame(CRASH_CLIENT, outside, StackBytes(0x1000, [1, 2, 3])) is None


def test_missing_and_broken_indexes(symbols):
    assert symbols.has_symbols(TEST_APP)
    assert not symbols.has_symbols(KERNEL32)
    assert not symbols.has_symbols(KERNEL32)
    f = frame("x86", KERNEL32.base + 0x10)
    symbols.fill_symbol(KERNEL32, f)
    assert f.function is None
    assert symbols.missing == [KERNEL32]

    broken = IndexedSymbols(lambda m: BytesReader(b"BPSYMIX1" + b"\xff" * 40))
    assert not broken.has_symbols(TEST_APP)
    assert broken.failed == {TEST_APP: "SymIndexError"}

    def raising(m):
        raise OSError("bucket unreachable")

    offline = IndexedSymbols(raising)
    f = frame("x86", 0x40429E)
    offline.fill_symbol(TEST_APP, f)
    assert f.function is None
    assert offline.missing == [TEST_APP]
    assert offline.failed == {TEST_APP: "OSError"}


def test_an_absent_index_is_missing_without_a_warning(caplog):
    class Absent(KeyError):
        pass

    def lazily_absent(m):
        raise Absent("no such index")

    caplog.set_level(logging.WARNING)
    quiet = IndexedSymbols(lazily_absent, absent=(Absent,))
    assert not quiet.has_symbols(TEST_APP)
    assert quiet.missing == [TEST_APP] and quiet.failed == {}
    assert not caplog.records


def test_index_opened_once_per_module(indexes):
    opened = []

    def open_index(mod):
        opened.append(mod)
        return FileRangeReader(indexes[(mod.debug_file, mod.debug_id)])

    symbols = IndexedSymbols(open_index)
    for pc in (0x40429E, 0x4042A0, 0x401000):
        symbols.fill_symbol(TEST_APP, frame("x86", pc))
    assert opened == [TEST_APP]
    assert 0 < symbols.bytes_read < 20_000


def _walk(path, symbols):
    from chalicelib.processing.minidump import read_minidump
    from chalicelib.processing.unwind import walk_stack

    with open(path, "rb") as f:
        dump = read_minidump(f)
        thread = next(t for t in dump.threads if t.id == dump.exception.thread_id)
        return walk_stack(dump.exception.context, dump.memory, dump.modules, symbols,
                          (thread.stack_base, thread.stack_base + thread.stack_size))


def test_walk_windows_dump(symbols):
    frames = _walk(WINDOWS_DUMP, symbols)
    got = [(f.trust, f.module.filename, f.function, f.file, f.line) for f in frames[:4]]
    assert got == [
        ("context", "test_app.exe", "`anonymous namespace'::CrashFunction", "c:\\test_app.cc", 58),
        ("cfi", "test_app.exe", "main", "c:\\test_app.cc", 65),
        ("cfi", "test_app.exe", "__tmainCRTStartup",
         "f:\\sp\\vctools\\crt_bld\\self_x86\\crt\\src\\crt0.c", 327),
        ("cfi", "kernel32.dll", None, None, None),
    ]
    assert [m.filename for m in symbols.missing] == ["kernel32.dll"]


def test_walk_macos_dump(symbols):
    frames = _walk(MACOS_DUMP, symbols)
    got = [(f.trust, f.function, f.line, len(f.inlines or [])) for f in frames[:7]]
    assert got == [
        ("context", "sadness_generator::raise_segfault", 133, 1),
        ("cfi", "crash_client::main", 142, 2),
        ("cfi", "std::sys_common::backtrace::__rust_begin_short_backtrace::<fn(), ()>", 122, 1),
        ("cfi", "std::rt::lang_start::<()>::{closure#0}", 145, 0),
        ("cfi", "std::rt::lang_start_internal", 128, 8),
        ("cfi", "main", None, 0),
        ("cfi", None, None, 0),
    ]
    assert frames[6].module.filename == "libdyld.dylib"
    call_once = "<fn() as core::ops::function::FnOnce<()>>::call_once"
    assert frames[2].inlines[0]["function"] == call_once
