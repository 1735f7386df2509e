import io

import pytest

from chalicelib.symfile import records as rec
from chalicelib.symfile.records import SymFileError, parse_record

from tests.symfile.conftest import CRASH_CLIENT_SYM, TEST_APP_SYM


def test_module_line():
    module = rec.read_module_line(
        b"MODULE windows x86 5a9832e5287241c1838ed98914e9b7ff1 test_app.pdb\r\n")
    assert module == rec.ModuleLine("windows", "x86", "5A9832E5287241C1838ED98914E9B7FF1",
                                    "test_app.pdb")


def test_module_line_keeps_spaces_in_the_debug_file():
    module = rec.read_module_line("MODULE mac arm64 ABCD My App")
    assert module.debug_file == "My App"


@pytest.mark.parametrize("line", [
    "", "MODULE", "MODULE windows x86", "MODULE windows x86 ZZZZ test.pdb",
    "MODULE windows x86 ABCD ", "FUNC 1 2 3 x",
])
def test_module_line_malformed(line):
    with pytest.raises(SymFileError) as err:
        rec.read_module_line(line)
    assert err.value.line_number == 1


@pytest.mark.parametrize("line, expected", [
    ("INFO CODE_ID 5A9832E5287241C1838ED98914E9B7FF1",
     rec.InfoCodeId("5A9832E5287241C1838ED98914E9B7FF1", None)),
    ("INFO CODE_ID 58A1B2C3 test_app.exe", rec.InfoCodeId("58A1B2C3", "test_app.exe")),
    ("INFO GENERATOR dump_syms 2.0", rec.Info("GENERATOR dump_syms 2.0")),
    ("FILE 178 c:\\test_app.cc", rec.FileRecord(178, "c:\\test_app.cc")),
    ("FILE 2 /a b/c.rs", rec.FileRecord(2, "/a b/c.rs")),
    ("INLINE_ORIGIN 7 core::ptr::write_volatile::<u8>",
     rec.InlineOrigin(7, "core::ptr::write_volatile::<u8>")),
    ("FUNC 4290 18 0 `anonymous namespace'::CrashFunction",
     rec.Func(0x4290, 0x18, 0, "`anonymous namespace'::CrashFunction", False)),
    ("FUNC m 14cd0 11 4 f(int, char)", rec.Func(0x14CD0, 0x11, 4, "f(int, char)", True)),
    ("FUNC 10 20 0", rec.Func(0x10, 0x20, 0, "", False)),
    ("429b 9 58 178", rec.LineRecord(0x429B, 9, 58, 178)),
    ("fffffffffffffff0 ffffffff 4294967295 0",
     rec.LineRecord(0xFFFFFFFFFFFFFFF0, 0xFFFFFFFF, 4294967295, 0)),
    ("INLINE 1 256 1 2 df3 5 dfb b",
     rec.Inline(1, 256, 1, 2, ((0xDF3, 5), (0xDFB, 0xB)))),
    ("PUBLIC 9b07 0 _NLG_Return", rec.Public(0x9B07, 0, "_NLG_Return", False)),
    ("PUBLIC m 10 4 _f@4", rec.Public(0x10, 4, "_f@4", True)),
    ("STACK CFI INIT dd0 150 .cfa: $rbp 16 + .ra: .cfa -8 + ^",
     rec.CfiInit(0xDD0, 0x150, ".cfa: $rbp 16 + .ra: .cfa -8 + ^")),
    ("STACK CFI dd1 .cfa: $rsp 16 +", rec.CfiDelta(0xDD1, ".cfa: $rsp 16 +")),
    ("STACK WIN 4 4290 18 4 0 0 0 4 0 1 $T0 $ebp = $eip $T0 4 + ^ =",
     rec.StackWin(4, 0x4290, 0x18, 4, 0, 0, 0, 4, 0, "$T0 $ebp = $eip $T0 4 + ^ =", False)),
    ("STACK WIN 0 1000 30 5 1 8 c 10 0 0 1",
     rec.StackWin(0, 0x1000, 0x30, 5, 1, 8, 0xC, 0x10, 0, None, True)),
    ("", None),
    ("   ", None),
])
def test_parse_record(line, expected):
    assert parse_record(line, 3) == expected


@pytest.mark.parametrize("line", [
    "FUNC", "FUNC 10", "FUNC 10 20", "FUNC zz 20 0 f", "FUNC 10 123456789 0 f",
    "FUNC -10 20 0 f", "FUNC 0x10 20 0 f", "FUNC 1_0 20 0 f", "FUNC x 10 20 0 f",
    "429b 9 58", "429b 9 58 178 9", "429b 9 -58 178", "429g 9 58 178", "429b 9 58 99999999999",
    "INLINE 1 256 1 2", "INLINE 1 256 1 2 df3", "INLINE 1 256 1 2 df3 5 dfb",
    "INLINE 1 256 1 x df3 5", "INLINE 1 256 1 2 df3 zz",
    "PUBLIC", "PUBLIC 10", "PUBLIC q 10 0 f",
    "FILE x name", "FILE 1", "INLINE_ORIGIN name",
    "STACK", "STACK CFI", "STACK CFI INIT 10", "STACK CFI zz .cfa: $rsp 8 +",
    "STACK WIN 4 10 20", "STACK WIN 4 10 20 0 0 0 0 0 0 2 prog",
    "STACK WIN 0 10 20 0 0 0 0 0 0 0 notabool", "STACK FOO 1",
    "FROB 1 2 3", "INFO",
])
def test_parse_record_malformed(line):
    with pytest.raises(SymFileError) as err:
        parse_record(line, 41)
    assert err.value.line_number == 41
    assert str(err.value).startswith("line 41: ")


def _validate(text):
    return rec.validate(io.BytesIO(text.encode()))


def test_validate_fixtures():
    with open(TEST_APP_SYM, "rb") as f:
        assert rec.validate(f).debug_id == "5A9832E5287241C1838ED98914E9B7FF1"
    with open(CRASH_CLIENT_SYM, "rb") as f:
        assert rec.validate(f) == rec.ModuleLine(
            "Mac", "x86_64", "509C0610949836F7B70BD88BCF03E5400", "crash-client")


GOOD = "MODULE Linux x86_64 ABCD0 libfoo.so\r\nFILE 0 a.c\r\nFUNC 10 8 0 f\r\n10 8 3 0\r\n"


@pytest.mark.parametrize("text, line_number", [
    ("", 1),
    ("FILE 0 a.c\n", 1),
    ("MODULE Linux x86_64 ABCD0 libfoo.so\n10 8 3 0\n", 2),
    ("MODULE Linux x86_64 ABCD0 libfoo.so\nFILE 0 a.c\nINLINE 0 1 0 0 10 2\n", 3),
    ("MODULE Linux x86_64 ABCD0 libfoo.so\nSTACK CFI 10 .cfa: $rsp 8 +\n", 2),
    ("MODULE Linux x86_64 ABCD0 libfoo.so\nFUNC 10 8 0 f\nPUBLIC 20 0 g\n10 8 3 0\n", 4),
    (GOOD + "MODULE Linux x86_64 ABCD0 libfoo.so\n", 5),
    (GOOD + "FUNC 20 8 0 g\n20 8 x 0\n", 6),
])
def test_validate_refuses_with_the_line_number(text, line_number):
    with pytest.raises(SymFileError) as err:
        _validate(text)
    assert err.value.line_number == line_number


def test_validate_accepts_crlf_and_blank_lines():
    assert _validate(GOOD + "\r\nSTACK CFI INIT 10 8 .cfa: $rsp 8 + .ra: .cfa -8 + ^\r\n"
                     "STACK CFI 11 .cfa: $rsp 16 +\r\n").debug_file == "libfoo.so"


def test_validate_refuses_an_overlong_line(monkeypatch):
    monkeypatch.setattr(rec, "MAX_LINE_BYTES", 64)
    text = "MODULE Linux x86_64 ABCD0 libfoo.so\nFUNC 10 8 0 " + "x" * 100 + "\n"
    with pytest.raises(SymFileError) as err:
        list(rec.iter_records(io.BytesIO(text.encode())))
    assert err.value.line_number == 2
    assert "longer than 64" in err.value.reason


def test_lenient_iteration_skips_malformed_lines():
    text = GOOD + "FUNC 20 zz 0 g\n20 8 x 0\nPUBLIC 30 0 h\n"
    got = [r for _, r in rec.iter_records(io.BytesIO(text.encode()), strict=False)]
    assert got[-1] == rec.Public(0x30, 0, "h", False)
    assert len(got) == 5
