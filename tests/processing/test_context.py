"""CPU contexts: synthetic records for every layout, and the real fixtures' contexts."""

from __future__ import annotations

import struct

import pytest

from chalicelib.processing.context import REGISTER_NAMES, Context, ContextError, parse_context
from tests.processing.rawdump import read_raw

# ---------------------------------------------------------------- synthetic records


def x86_record(flags: int = 0x1003F, size: int = 716) -> bytes:
    data = bytearray(size)
    struct.pack_into("<I", data, 0, flags)
    # edi esi ebx edx ecx eax ebp eip cs eflags esp ss, from offset 156
    struct.pack_into(
        "<12I", data, 156,
        0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x0012FE88, 0x0040429E, 0x1B, 0x246, 0x0012FE84,
        0x23,
    )
    return bytes(data)


def amd64_record(flags: int = 0x10001F, size: int = 1232) -> bytes:
    data = bytearray(size)
    struct.pack_into("<Q", data, 0, 0xFFFFFFFB)       # a spill slot, not the flags
    struct.pack_into("<II", data, 48, flags, 0x1F80)
    struct.pack_into("<I", data, 68, 0x10246)          # eflags
    # rax rcx rdx rbx rsp rbp rsi rdi r8..r15 rip, from offset 120
    values = [0x1000 + i for i in range(16)] + [0x7FF75355AF42]
    struct.pack_into("<17Q", data, 120, *values)
    return bytes(data)


def arm_record(flags: int = 0x40000006, size: int = 368) -> bytes:
    data = bytearray(size)
    struct.pack_into("<I", data, 0, flags)
    struct.pack_into("<16I", data, 4, *(0xA000 + i for i in range(16)))
    struct.pack_into("<I", data, 68, 0x60000010)       # cpsr
    return bytes(data)


def arm64_old_record(flags: int = 0x80000006, size: int = 796) -> bytes:
    data = bytearray(size)
    struct.pack_into("<Q", data, 0, flags)
    struct.pack_into("<31Q", data, 8, *(0xB000 + i for i in range(31)))
    struct.pack_into("<QQI", data, 256, 0x7C1F3FF4E0, 0x7C14B10A90, 0x80000000)
    return bytes(data)


def arm64_record(flags: int = 0x00400007, size: int = 912) -> bytes:
    data = bytearray(size)
    struct.pack_into("<II", data, 0, flags, 0x60000000)
    struct.pack_into("<31Q", data, 8, *(0xC000 + i for i in range(31)))
    struct.pack_into("<QQ", data, 256, 0x16FDFF000, 0x1000F1234)
    return bytes(data)


def test_x86_registers_by_name_in_json_order() -> None:
    context = parse_context(x86_record(), "x86")
    assert context.cpu == "x86"
    assert list(context.registers) == list(REGISTER_NAMES["x86"])
    assert context.registers == {
        "eip": 0x0040429E, "esp": 0x0012FE84, "ebp": 0x0012FE88, "ebx": 0x33, "esi": 0x22,
        "edi": 0x11, "eax": 0x66, "ecx": 0x55, "edx": 0x44, "eflags": 0x246,
    }
    assert (context.pc, context.sp, context.fp) == (0x40429E, 0x12FE84, 0x12FE88)
    assert context.valid is None
    assert context.as_json()["eip"] == "0x0040429e"


def test_amd64_registers_and_flags_at_offset_48() -> None:
    context = parse_context(amd64_record(), "amd64")
    assert list(context.registers) == list(REGISTER_NAMES["amd64"])
    assert context.registers["rax"] == 0x1000
    assert context.registers["rcx"] == 0x1001
    assert context.registers["rdx"] == 0x1002
    assert context.registers["rbx"] == 0x1003
    assert context.sp == 0x1004
    assert context.fp == 0x1005
    assert context.registers["rsi"] == 0x1006
    assert context.registers["rdi"] == 0x1007
    assert context.registers["r8"] == 0x1008
    assert context.registers["r15"] == 0x100F
    assert context.pc == 0x7FF75355AF42
    assert context.as_json()["rip"] == "0x00007ff75355af42"


def test_amd64_extended_context_reads_the_base_part() -> None:
    record = amd64_record(flags=0x10005F, size=1663)
    assert parse_context(record, "amd64").pc == 0x7FF75355AF42
    assert parse_context(record).pc == 0x7FF75355AF42


def test_x86_extended_context_is_accepted() -> None:
    assert parse_context(x86_record(flags=0x1007F, size=1100), "x86").pc == 0x40429E


def test_arm_names_r11_fp_and_keeps_r7() -> None:
    context = parse_context(arm_record(), "arm")
    assert list(context.registers) == list(REGISTER_NAMES["arm"])
    assert context.registers["r0"] == 0xA000
    assert context.registers["r7"] == 0xA007
    assert context.registers["r10"] == 0xA00A
    assert context.registers["fp"] == 0xA00B
    assert context.registers["r12"] == 0xA00C
    assert (context.sp, context.registers["lr"], context.pc) == (0xA00D, 0xA00E, 0xA00F)
    assert "r11" not in context.registers
    assert context.as_json()["pc"] == "0x0000a00f"


@pytest.mark.parametrize("cpu", ["arm64", None])
def test_arm64_old_layout(cpu: str | None) -> None:
    context = parse_context(arm64_old_record(), cpu)
    assert context.cpu == "arm64"
    assert list(context.registers) == list(REGISTER_NAMES["arm64"])
    assert context.registers["x0"] == 0xB000
    assert context.registers["x28"] == 0xB000 + 28
    assert context.fp == 0xB000 + 29
    assert context.registers["lr"] == 0xB000 + 30
    assert (context.sp, context.pc) == (0x7C1F3FF4E0, 0x7C14B10A90)
    assert context.valid is None


@pytest.mark.parametrize("cpu", ["arm64", None])
def test_arm64_windows_layout(cpu: str | None) -> None:
    context = parse_context(arm64_record(), cpu)
    assert context.cpu == "arm64"
    assert context.registers["x0"] == 0xC000
    assert context.fp == 0xC000 + 29
    assert context.registers["lr"] == 0xC000 + 30
    assert (context.sp, context.pc) == (0x16FDFF000, 0x1000F1234)
    assert context.as_json()["sp"] == "0x000000016fdff000"


@pytest.mark.parametrize(
    ("record", "cpu"),
    [(x86_record(), "x86"), (amd64_record(), "amd64"), (arm_record(), "arm"),
     (arm64_old_record(), "arm64"), (arm64_record(), "arm64")],
)
def test_layout_guessed_from_flags_alone(record: bytes, cpu: str) -> None:
    assert parse_context(record) == parse_context(record, cpu)
    assert parse_context(record).cpu == cpu


@pytest.mark.parametrize(
    ("record", "cpu", "short"),
    [(x86_record(), "x86", 715), (amd64_record(), "amd64", 1231), (arm_record(), "arm", 367),
     (arm64_old_record(), "arm64", 795), (arm64_record(), "arm64", 911)],
)
def test_too_short_raises(record: bytes, cpu: str, short: int) -> None:
    with pytest.raises(ContextError, match=str(short)):
        parse_context(record[:short], cpu)
    with pytest.raises(ContextError):
        parse_context(record[:short])


@pytest.mark.parametrize("data", [b"", b"\x01\x00", bytes(1232), b"\xff" * 64])
def test_unknown_data_raises(data: bytes) -> None:
    with pytest.raises(ContextError):
        parse_context(data)


def test_flags_of_another_cpu_raise() -> None:
    with pytest.raises(ContextError, match="not an amd64 context"):
        parse_context(x86_record(), "amd64")
    with pytest.raises(ContextError):
        parse_context(arm_record(), "x86")
    with pytest.raises(ContextError):
        parse_context(x86_record(), "ppc")


@pytest.mark.parametrize(
    ("record", "cpu", "valid"),
    [
        (x86_record(flags=0x10001), "x86", {"ebp", "eip", "eflags", "esp"}),
        (x86_record(flags=0x10002), "x86", {"edi", "esi", "ebx", "edx", "ecx", "eax"}),
        (amd64_record(flags=0x100001), "amd64", {"rsp", "rip"}),
        (arm_record(flags=0x40000001), "arm", {"sp", "lr", "pc"}),
        (arm64_record(flags=0x400001), "arm64", {"fp", "lr", "sp", "pc"}),
    ],
)
def test_control_or_integer_only_limits_valid(record: bytes, cpu: str, valid: set[str]) -> None:
    context = parse_context(record, cpu)
    assert context.valid == valid
    assert set(context.as_json()) == valid
    assert all(context.is_valid(name) is (name in valid) for name in REGISTER_NAMES[cpu])


@pytest.mark.parametrize(
    "record", [arm_record(flags=0x40000002), arm64_old_record(flags=0x80000002)]
)
def test_integer_group_covers_all_registers_in_breakpad_arm_layouts(record: bytes) -> None:
    assert parse_context(record).valid is None


def test_amd64_integer_only_excludes_rip_and_rsp() -> None:
    context = parse_context(amd64_record(flags=0x100002), "amd64")
    assert context.valid is not None
    assert "rbp" in context.valid and "r15" in context.valid
    assert not context.is_valid("rip") and not context.is_valid("rsp")


def test_context_round_trips_as_dataclass() -> None:
    context = parse_context(x86_record(), "x86")
    assert context == Context("x86", dict(context.registers), None)


# ---------------------------------------------------------------- the real fixtures

# Crashing instruction (exception context pc), stack and frame pointer of each fixture;
# each pc is frame 0 of SOURCES.md (module base + offset).
EXCEPTION_CONTEXTS = {
    "windows-x86-breakpad-access-violation.dmp": ("x86", 0x40429E, 0x12FE84, 0x12FE88),
    "linux-x86_64-breakpad-sigsegv.dmp": ("amd64", 0x401D72, 0x7FFF5AE4AA20, 0x7FFF5AE4ABB0),
    "linux-x86_64-crashpad-chromeos-chrome-sigsegv.dmp": (
        "amd64", 0x5CE3FF2B9DA0, 0x7FFF2C416330, 0x7FFF2C416330),
    "windows-x86_64-sentry-native-access-violation.dmp": (
        "amd64", 0x7FFE2C7F0476, 0x14FB08, 0x0),
    "windows-x86_64-fastfail-0xc0000409.dmp": ("amd64", 0x7FF75355AF42, 0xD2DE4FF720, 0x1),
    "macos-x86_64-crashpad-electron-bad-instruction.dmp": (
        "amd64", 0x10CE0A4E4, 0x7FFF52EEBA00, 0x7FFF52EEBA00),
    "android-arm64-firefox-sigsegv.dmp": ("arm64", 0x7C14B10A90, 0x7C1F3FF4E0, 0x7C1F3FF550),
    "ios-x86_64-simulator-crashpad-nsexception.dmp": (
        "amd64", 0x1030E9C34, 0x7FF7BCE7AC20, 0x7FF7BCE7AEC0),
}


@pytest.mark.parametrize("name", sorted(EXCEPTION_CONTEXTS))
def test_fixture_exception_context(name: str) -> None:
    cpu, pc, sp, fp = EXCEPTION_CONTEXTS[name]
    dump = read_raw(name)
    assert dump.exception_context is not None
    context = parse_context(dump.exception_context, dump.cpu_arch)
    assert (context.cpu, context.pc, context.sp, context.fp) == (cpu, pc, sp, fp)
    assert context.valid is None
    assert list(context.as_json()) == list(REGISTER_NAMES[cpu])
    assert parse_context(dump.exception_context) == context


def test_fixture_registers_as_json_windows_x86() -> None:
    dump = read_raw("windows-x86-breakpad-access-violation.dmp")
    assert parse_context(dump.exception_context, "x86").as_json() == {
        "eip": "0x0040429e", "esp": "0x0012fe84", "ebp": "0x0012fe88", "ebx": "0x7c80abc1",
        "esi": "0x00000002", "edi": "0x00000a28", "eax": "0x00000045", "ecx": "0x0012fe94",
        "edx": "0x0042bc58", "eflags": "0x00010246",
    }


def test_fixture_android_old_arm64_registers() -> None:
    dump = read_raw("android-arm64-firefox-sigsegv.dmp")
    assert len(dump.exception_context) == 796
    registers = parse_context(dump.exception_context, "arm64").as_json()
    assert registers["x6"] == "0x7261706873617263"
    assert registers["x21"] == "0x0000000080004001"
    assert registers["lr"] == "0x0000007c14b109f8"


# (thread count, first thread id, its pc and sp, context size)
THREAD_CONTEXTS = {
    "windows-x86-breakpad-access-violation.dmp": (2, 3060, 0x7C90EB94, 0x12F320, 716),
    "linux-x86_64-breakpad-sigsegv.dmp": (1, 1304, 0x401D72, 0x7FFF5AE4AA20, 1232),
    "linux-x86_64-crashpad-chromeos-chrome-sigsegv.dmp": (
        18, 8090, 0x5CE40427AD7D, 0x7CF1F47298F0, 1232),
    "windows-x86_64-sentry-native-access-violation.dmp": (
        5, 12996, 0x7FFE53570154, 0x14E958, 1663),
    "windows-x86_64-fastfail-0xc0000409.dmp": (4, 24440, 0x7FF75355AF42, 0xD2DE4FF720, 1232),
    "windows-x86_64-no-exception-stream.dmp": (1, 1468, 0x7FF9111E39E4, 0xCBC82FF448, 1407),
    "macos-x86_64-crashpad-electron-bad-instruction.dmp": (
        17, 6722809, 0x10CE0A4E4, 0x7FFF52EEBA00, 1232),
    "android-arm64-firefox-sigsegv.dmp": (164, 20339, 0x9B654978, 0x7FE91BE670, 796),
    "ios-x86_64-simulator-crashpad-nsexception.dmp": (
        7, 4779401, 0x7FF8361165C2, 0x7FF7BCE78EE8, 1232),
}


@pytest.mark.parametrize("name", sorted(THREAD_CONTEXTS))
def test_fixture_thread_contexts(name: str) -> None:
    count, first_id, pc, sp, size = THREAD_CONTEXTS[name]
    dump = read_raw(name)
    assert len(dump.thread_contexts) == count
    contexts = {
        tid: parse_context(data, dump.cpu_arch) for tid, data in dump.thread_contexts.items()
    }
    assert {len(data) for data in dump.thread_contexts.values()} == {size}
    first = contexts[next(iter(contexts))]
    assert next(iter(contexts)) == first_id
    assert (first.pc, first.sp) == (pc, sp)
    assert all(context.valid is None for context in contexts.values())
    assert all(context.pc != 0 for context in contexts.values())
