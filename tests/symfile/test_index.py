import io
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.symfile import index, spool
from chalicelib.symfile.index import IndexBuildError, build_index
from chalicelib.symfile.reader import FileRangeReader, SymbolIndex, SymIndexError
from chalicelib.symfile.records import SymFileError

from tests.symfile.conftest import CRASH_CLIENT_SYM, TEST_APP_SYM
from tests.symfile.naive import NaiveSymbols


class BytesReader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.reads = []

    def read(self, offset, size):
        self.reads.append((offset, size))
        return self.data[offset:offset + size]


def index_bytes(text: str, **kwargs) -> bytes:
    out = io.BytesIO()
    build_index(io.BytesIO(text.encode()), out, **kwargs)
    return out.getvalue()


@pytest.fixture(scope="module")
def test_app_index(tmp_path_factory):
    path = tmp_path_factory.mktemp("idx") / "test_app.idx"
    with open(TEST_APP_SYM, "rb") as sym, open(path, "wb") as out:
        header = build_index(sym, out)
    return path, header


@pytest.fixture(scope="module")
def crash_client_index(tmp_path_factory):
    path = tmp_path_factory.mktemp("idx") / "crash-client.idx"
    with open(CRASH_CLIENT_SYM, "rb") as sym, open(path, "wb") as out:
        build_index(sym, out)
    return path


def test_test_app_lookups(test_app_index):
    path, header = test_app_index
    assert header["module"] == {"os": "windows", "cpu": "x86",
                                "debug_id": "5A9832E5287241C1838ED98914E9B7FF1",
                                "debug_file": "test_app.pdb"}
    assert header["tables"]["func"]["count"] == 1065
    with FileRangeReader(path) as reader:
        ix = SymbolIndex(reader)
        func = ix.find_func(0x429E)
        assert (func.address, func.size, func.name) == (
            0x4290, 0x18, "`anonymous namespace'::CrashFunction")
        line = ix.find_line(0x429E)
        assert (line.address, line.size, line.line) == (0x429B, 9, 58)
        assert ix.file_name(line.file) == "c:\\test_app.cc"
        win = ix.find_win(0x429E)
        assert (win.address, win.local_size, win.program[:26]) == (
            0x4290, 4, "$T0 $ebp = $eip $T0 4 + ^ ")
        assert ix.find_public(0x9B07).name == "_NLG_Return"
        assert ix.find_func(0x10) is None
        assert ix.find_cfi(0x429E) is None
        assert ix.file_name(999999) is None


def test_overlapping_stack_win_keeps_the_first(test_app_index):
    # STACK WIN 4 42ae 18 ... and STACK WIN 4 42af 14 ...: 0x42b0 answers the first.
    with FileRangeReader(test_app_index[0]) as reader:
        win = SymbolIndex(reader).find_win(0x42B0)
        assert (win.address, win.size) == (0x42AE, 0x18)


def test_crash_client_lookups(crash_client_index):
    with FileRangeReader(crash_client_index) as reader:
        ix = SymbolIndex(reader)
        func = ix.find_func(0x3420)
        assert (func.address, func.name) == (0x3400, "crash_client::main")
        cfi = ix.find_cfi(0xDD0)
        assert cfi.init.startswith(".cfa: $rbp 16 + $rbp: .cfa -16 + ^ .ra: .cfa -8 + ^")
        outer = ix.find_inline(0, 0xDE0)
        assert (outer.call_line, outer.origin, outer.address, outer.size) == (456, 0, 0xDE0, 5)
        assert ix.origin_name(2) == "alloc::alloc::Global::grow_impl"
        assert ix.find_inline(1, 0xDFB).origin == 2


def test_each_lookup_reads_little(crash_client_index):
    per_lookup = []
    with FileRangeReader(crash_client_index) as reader:
        for address in range(0x1000, 0xC0000, 0x4321):
            ix = SymbolIndex(reader)
            before = reader.bytes_read
            ix.find_func(address)
            ix.find_line(address)
            ix.find_cfi(address)
            per_lookup.append((reader.bytes_read - before, address))
    assert max(per_lookup)[0] < 16_000


def test_header_and_blocks_are_read_once(crash_client_index):
    with FileRangeReader(crash_client_index) as reader:
        ix = SymbolIndex(reader)
        ix.find_func(0x3420)
        reads = reader.reads
        ix.find_func(0x3420)
        ix.find_func(0x3421)
        assert reader.reads == reads
        assert ix.reads == reads


def test_not_an_index():
    with pytest.raises(SymIndexError):
        SymbolIndex(BytesReader(b"MODULE Linux x86_64 ABCD0 libfoo.so\n"))
    data = index_bytes("MODULE Linux x86_64 ABCD0 libfoo.so\nFUNC 10 8 0 f\n")
    with pytest.raises(SymIndexError):
        SymbolIndex(BytesReader(data[:40]))


def test_malformed_sym_is_refused_or_skipped():
    text = "MODULE Linux x86_64 ABCD0 libfoo.so\nFUNC 10 8 0 f\nFUNC 20 zz 0 g\n"
    with pytest.raises(SymFileError):
        index_bytes(text)
    ix = SymbolIndex(BytesReader(index_bytes(text, strict=False)))
    assert ix.find_func(0x12).name == "f"
    with pytest.raises(SymFileError):
        index_bytes("")


def test_a_runaway_cfi_delta_list_is_refused():
    text = "MODULE Linux x86_64 ABCD0 libfoo.so\nSTACK CFI INIT 10 8 .cfa: $rsp 8 +\n"
    text += "STACK CFI 11 .cfa: $rsp 16 +\n" * 3
    with mock.patch.object(index, "MAX_CFI_DELTAS", 2), pytest.raises(IndexBuildError) as err:
        index_bytes(text)
    assert str(err.value).startswith("line 5:")


def test_unsorted_input_is_sorted_by_runs():
    lines = ["MODULE Linux x86_64 ABCD0 libfoo.so", "FILE 0 a.c"]
    for i in reversed(range(50)):
        lines.append(f"FUNC {0x1000 + i * 0x10:x} 10 0 f{i}")
        lines.append(f"{0x1000 + i * 0x10:x} 10 {i} 0")
    with mock.patch.object(spool, "RUN_RECORDS", 7), mock.patch.object(index, "BLOCK", 3), \
            mock.patch.object(index, "TOP_KEYS", 3):
        data = index_bytes("\n".join(lines))
    ix = SymbolIndex(BytesReader(data))
    assert ix.header["tables"]["func"]["input_sorted"] is False
    assert len(ix.header["tables"]["func"]["levels"]) == 2
    for i in range(50):
        assert ix.find_func(0x1000 + i * 0x10 + 3).name == f"f{i}"
        assert ix.find_line(0x1000 + i * 0x10 + 15).line == i


names = st.text(alphabet="abcXYZ_:<> ()&*0", min_size=1, max_size=12).map(str.strip).filter(bool)
addresses = st.integers(0, 0x3000)
sizes = st.integers(0, 0x80)


@st.composite
def sym_files(draw):
    out = ["MODULE Linux x86_64 0123456789ABCDEF0123456789ABCDEF0 libx.so"]
    for file_id, name in draw(st.lists(st.tuples(st.integers(0, 30), names), max_size=8)):
        out.append(f"FILE {file_id} {name}")
    for origin, name in draw(st.lists(st.tuples(st.integers(0, 30), names), max_size=8)):
        out.append(f"INLINE_ORIGIN {origin} {name}")
    for _ in range(draw(st.integers(0, 25))):
        address, size = draw(addresses), draw(sizes)
        flag = draw(st.sampled_from(["", "m "]))
        out.append(f"FUNC {flag}{address:x} {size:x} {draw(st.integers(0, 16)):x} {draw(names)}")
        for _ in range(draw(st.integers(0, 4))):
            out.append(f"{address + draw(st.integers(0, 0x40)):x} {draw(st.integers(0, 0x20)):x}"
                       f" {draw(st.integers(0, 900))} {draw(st.integers(0, 30))}")
        for _ in range(draw(st.integers(0, 3))):
            ranges = draw(st.lists(st.tuples(addresses, sizes), min_size=1, max_size=3))
            spans = " ".join(f"{a:x} {s:x}" for a, s in ranges)
            out.append(f"INLINE {draw(st.integers(0, 3))} {draw(st.integers(0, 900))} "
                       f"{draw(st.integers(0, 30))} {draw(st.integers(0, 30))} {spans}")
    for _ in range(draw(st.integers(0, 10))):
        out.append(f"PUBLIC {draw(addresses):x} {draw(st.integers(0, 16)):x} {draw(names)}")
    for _ in range(draw(st.integers(0, 10))):
        address = draw(addresses)
        out.append(f"STACK CFI INIT {address:x} {draw(sizes):x} .cfa: $rsp 8 + .ra: .cfa -8 + ^")
        for step in draw(st.lists(st.integers(0, 0x40), max_size=3)):
            out.append(f"STACK CFI {address + step:x} .cfa: $rsp {step + 8} +")
    draw(st.randoms()).shuffle(out[1:])  # any section order: dump_syms sorts, others may not
    return "\n".join(out) + "\n"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=sym_files(), block=st.sampled_from([2, 3, 64]), run=st.sampled_from([2, 5, 1000]))
def test_index_answers_as_the_naive_parser(text, block, run):
    with mock.patch.object(spool, "RUN_RECORDS", run), mock.patch.object(index, "BLOCK", block), \
            mock.patch.object(index, "TOP_KEYS", block):
        data = index_bytes(text)
    ix = SymbolIndex(BytesReader(data))
    naive = NaiveSymbols(text)
    probes = {0, 0x3100, 0xFFFFFFFFFFFFFFFF}
    for item in naive.funcs + naive.lines + naive.publics + naive.inlines:
        probes.update((item[0] - 1, item[0], item[0] + 1, item[0] + max(item[1], 1) - 1))
    for address in sorted(p for p in probes if p >= 0):
        func = ix.find_func(address)
        assert (tuple(func) if func else None) == naive.find_func(address)
        line = ix.find_line(address)
        assert (tuple(line) if line else None) == naive.find_line(address)
        public = ix.find_public(address)
        assert (tuple(public) if public else None) == naive.find_public(address)
        cfi = ix.find_cfi(address)
        assert (tuple(cfi) if cfi else None) == naive.find_cfi(address)
        for depth in range(5):
            inline = ix.find_inline(depth, address)
            assert (tuple(inline) if inline else None) == naive.find_inline(depth, address)
    for ident in range(32):
        assert ix.file_name(ident) == naive.files.get(ident)
        assert ix.origin_name(ident) == naive.origins.get(ident)
