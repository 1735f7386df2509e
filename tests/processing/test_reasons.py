"""Crash reasons: every fixture's exception record, and each naming rule on its own."""

from __future__ import annotations

import pytest

from chalicelib.processing.reasons import crash_reason, windows_error_name
from tests.processing.rawdump import read_raw

FIXTURE_REASONS = {
    "linux-x86_64-crashpad-chromeos-chrome-sigsegv.dmp": ("SIGSEGV / SEGV_MAPERR", 0x0),
    "linux-x86_64-breakpad-sigsegv.dmp": ("SIGSEGV", 0x45),
    "windows-x86-breakpad-access-violation.dmp": ("EXCEPTION_ACCESS_VIOLATION_WRITE", 0x45),
    "windows-x86_64-sentry-native-access-violation.dmp": (
        "EXCEPTION_ACCESS_VIOLATION_WRITE", 0x20),
    "windows-x86_64-fastfail-0xc0000409.dmp": (
        "EXCEPTION_STACK_BUFFER_OVERRUN / FAST_FAIL_FATAL_APP_EXIT", 0x7FF75355AF42),
    "macos-x86_64-crashpad-electron-bad-instruction.dmp": (
        "EXC_BAD_INSTRUCTION / EXC_I386_INVOP", 0x10CE0A4E4),
    "android-arm64-firefox-sigsegv.dmp": ("SIGSEGV / SEGV_MAPERR", 0x0),
    # The uncaught-NSException code has no Mach name: it keeps its number.
    "ios-x86_64-simulator-crashpad-nsexception.dmp": (
        "Uncaught NSException", 0x1030E9C34),
}


@pytest.mark.parametrize("name", sorted(FIXTURE_REASONS))
def test_fixture_crash_reason(name: str) -> None:
    dump = read_raw(name)
    assert dump.code is not None
    reason = crash_reason(
        dump.os, dump.cpu_arch, dump.code, dump.flags, dump.address, dump.parameters
    )
    assert reason == FIXTURE_REASONS[name]


def test_fixture_without_exception_stream() -> None:
    assert read_raw("windows-x86_64-no-exception-stream.dmp").code is None


# ---------------------------------------------------------------- Linux and Android


@pytest.mark.parametrize(
    ("code", "flags", "reason"),
    [
        (11, 1, "SIGSEGV / SEGV_MAPERR"),
        (11, 2, "SIGSEGV / SEGV_ACCERR"),
        (11, 4, "SIGSEGV / SEGV_PKUERR"),
        (11, 0, "SIGSEGV"),                      # SI_USER goes unsaid
        (11, 0x80, "SIGSEGV / SI_KERNEL"),
        (7, 1, "SIGBUS / BUS_ADRALN"),
        (7, 5, "SIGBUS / BUS_MCEERR_AO"),
        (8, 1, "SIGFPE / FPE_INTDIV"),
        (8, 8, "SIGFPE / FPE_FLTSUB"),
        (4, 1, "SIGILL / ILL_ILLOPC"),
        (4, 9, "SIGILL / ILL_BADIADDR"),
        (5, 1, "SIGTRAP / TRAP_BRKPT"),
        (31, 1, "SIGSYS / SYS_SECCOMP"),
        (6, 0, "SIGABRT"),
        (6, 0xFFFFFFFA, "SIGABRT / SI_TKILL"),   # si_code -6
        (6, 0xFFFFFFC4, "SIGABRT / SI_ASYNCNL"),  # si_code -60
        (6, 1, "SIGABRT / 0x00000001"),         # no per-signal codes for SIGABRT
        (11, 0x2A, "SIGSEGV / 0x0000002a"),
        (15, 0xFFFFFFFF, "SIGTERM / SI_QUEUE"),
        (0xFFFFFFFF, 0, "DUMP_REQUESTED"),
        (0x40, 0, "unknown 0x00000040 / 0x00000000"),
    ],
)
@pytest.mark.parametrize("os", ["Linux", "Android"])
def test_signals(os: str, code: int, flags: int, reason: str) -> None:
    assert crash_reason(os, "arm64", code, flags, 0x1000, ()) == (reason, 0x1000)


# ---------------------------------------------------------------- macOS and iOS


@pytest.mark.parametrize(
    ("cpu", "code", "flags", "reason"),
    [
        ("amd64", 1, 1, "EXC_BAD_ACCESS / KERN_INVALID_ADDRESS"),
        ("arm64", 1, 2, "EXC_BAD_ACCESS / KERN_PROTECTION_FAILURE"),
        ("arm64", 1, 50, "EXC_BAD_ACCESS / KERN_CODESIGN_ERROR"),
        ("amd64", 1, 13, "EXC_BAD_ACCESS / EXC_I386_GPFLT"),
        ("arm64", 1, 0x101, "EXC_BAD_ACCESS / EXC_ARM_DA_ALIGN"),
        ("arm64", 1, 0x105, "EXC_BAD_ACCESS / EXC_ARM_PAC_FAIL"),
        ("ppc", 1, 0x103, "EXC_BAD_ACCESS / EXC_PPC_UNALIGNED"),
        ("arm64", 1, 13, "EXC_BAD_ACCESS / 0x0000000d"),
        ("amd64", 2, 1, "EXC_BAD_INSTRUCTION / EXC_I386_INVOP"),
        ("x86", 2, 17, "EXC_BAD_INSTRUCTION / EXC_I386_ALIGNFLT"),
        ("arm64", 2, 1, "EXC_BAD_INSTRUCTION / EXC_ARM_UNDEFINED"),
        ("arm", 2, 1, "EXC_BAD_INSTRUCTION / 0x00000001"),   # 32-bit ARM has no table
        ("amd64", 3, 1, "EXC_ARITHMETIC / EXC_I386_DIV"),
        ("arm64", 3, 2, "EXC_ARITHMETIC / EXC_ARM_FP_DZ"),
        ("ppc", 3, 9, "EXC_ARITHMETIC / EXC_PPC_ALTIVECASSIST"),
        ("arm64", 5, 0x10002, "EXC_SOFTWARE / SIGABRT"),
        ("amd64", 5, 0xDEADC0DE, "EXC_SOFTWARE / UNCAUGHT_NS_EXCEPTION"),
        ("arm64", 5, 7, "EXC_SOFTWARE / 0x00000007"),
        ("arm64", 6, 1, "EXC_BREAKPOINT / EXC_ARM_BREAKPOINT"),
        ("amd64", 6, 2, "EXC_BREAKPOINT / EXC_I386_BPT"),
        ("amd64", 4, 0, "EXC_EMULATION / 0x00000000"),
        ("amd64", 9, 3, "EXC_RPC_ALERT / 0x00000003"),
        ("arm64", 0x43507378, 0, "Simulated Exception"),
        ("amd64", 10, 0x4200001, "EXC_CRASH / SIGILL"),   # signal 4 in the top byte
        ("arm64", 0x43506E78, 0, "Uncaught NSException"),
        ("amd64", 10, 0x6000000, "EXC_CRASH / SIGABRT"),
        ("amd64", 10, 0x0, "EXC_CRASH / 0x00000000"),
        ("arm64", 13, 0, "unknown 0x0000000d / 0x00000000"),
    ],
)
@pytest.mark.parametrize("os", ["Mac OS X", "iOS"])
def test_mach_exceptions(os: str, cpu: str, code: int, flags: int, reason: str) -> None:
    assert crash_reason(os, cpu, code, flags, 0x0CE0A4E4, (code, flags, 0)) == (
        reason, 0x0CE0A4E4)


@pytest.mark.parametrize(
    ("code", "flags", "parameters", "reason"),
    [
        (11, 1 << 29, (11, (2 << 58) | (180 << 7) | 5, 3),
         "EXC_RESOURCE / RESOURCE_TYPE_CPU / FLAVOR_CPU_MONITOR_FATAL interval: 180s"
         " CPU limit: 5% CPU consumed: 3%"),
        (11, 2 << 29, (11, (1 << 58) | (300 << 20) | 150, 900),
         "EXC_RESOURCE / RESOURCE_TYPE_WAKEUPS / FLAVOR_WAKEUPS_MONITOR interval: 300s"
         " wakeups permitted: 150 wakeups observed: 900"),
        (11, 3 << 29, (11, (1 << 58) | 2048, 0),
         "EXC_RESOURCE / RESOURCE_TYPE_MEMORY / FLAVOR_HIGH_WATERMARK"
         " high watermark limit: 2048MiB"),
        (11, 4 << 29, (11, (2 << 58) | (86400 << 15) | 2048, 4096),
         "EXC_RESOURCE / RESOURCE_TYPE_IO / FLAVOR_IO_LOGICAL_WRITES interval: 86400s"
         " I/O limit: 2048% I/O observed: 4096%"),
        (11, 5 << 29, (11, (1 << 58) | 512, 0),
         "EXC_RESOURCE / RESOURCE_TYPE_THREADS / FLAVOR_THREADS_HIGH_WATERMARK"
         " high watermark limit: 512"),
        (11, 1 << 29, (11, 5 << 58, 7),
         "EXC_RESOURCE / RESOURCE_TYPE_CPU / 0x1400000000000000 / 0x0000000000000007"),
        (11, 6 << 29, (11, 0, 0), "EXC_RESOURCE / 0xc0000000"),
        (12, 0, (12, 0, 0), "EXC_GUARD / GUARD_TYPE_NONE"),
        (12, 1 << 29, (12, (1 << 32) | 0x1403, 0),
         "EXC_GUARD / GUARD_TYPE_MACH_PORT / GUARD_EXC_DESTROY port name: 5123"),
        (12, 1 << 29, (12, (0x8 << 32) | 0x1403, 9),
         "EXC_GUARD / GUARD_TYPE_MACH_PORT / GUARD_EXC_UNGUARDED port name: 5123 subcode: 9"),
        (12, 2 << 29, (12, (1 << 32) | 7, 0xABCDEF),
         "EXC_GUARD / GUARD_TYPE_FD / GUARD_EXC_CLOSE file descriptor: 7"
         " guard identifier: 11259375"),
        (12, 3 << 29, (12, 0x2A, 99),
         "EXC_GUARD / GUARD_TYPE_USER/ namespace: 42 guard identifier: 99"),
        (12, 4 << 29, (12, (4 << 32) | 321, 5),
         "EXC_GUARD / GUARD_TYPE_VN / GUARD_EXC_UNLINK pid: 321 guard identifier: 5"),
        (12, 5 << 29, (12, 1 << 32, 4096),
         "EXC_GUARD / GUARD_TYPE_VIRT_MEMORY / GUARD_EXC_DEALLOC_GAP offset: 4096"),
        (12, 6 << 29, (12, 0, 31),
         "EXC_GUARD / GUARD_TYPE_REJECTED_SC / GUARD_EXC_MACH_TRAP syscall: 31"),
        (12, 2 << 29, (12, 3 << 32, 1),
         "EXC_GUARD / GUARD_TYPE_FD / 0x0000000300000000 / 0x0000000000000001"),
        (12, 7 << 29, (12, 0, 0), "EXC_GUARD / 0xe0000000"),
        (12, 1 << 29, (), "EXC_GUARD / GUARD_TYPE_MACH_PORT / 0x0000000000000000"
                          " / 0x0000000000000000"),
    ],
)
def test_resource_and_guard_exceptions(
    code: int, flags: int, parameters: tuple[int, ...], reason: str
) -> None:
    assert crash_reason("iOS", "arm64", code, flags, 0x1000, parameters) == (reason, 0x1000)


# ---------------------------------------------------------------- Windows


@pytest.mark.parametrize(
    ("code", "parameters", "reason", "address"),
    [
        (0xC0000005, (0, 0x10), "EXCEPTION_ACCESS_VIOLATION_READ", 0x10),
        (0xC0000005, (1, 0x45), "EXCEPTION_ACCESS_VIOLATION_WRITE", 0x45),
        (0xC0000005, (8, 0x7FF600001000), "EXCEPTION_ACCESS_VIOLATION_EXEC", 0x7FF600001000),
        (0xC0000005, (2, 0x20), "EXCEPTION_ACCESS_VIOLATION", 0x20),
        (0xC0000005, (1,), "EXCEPTION_ACCESS_VIOLATION_WRITE", 0x40429E),
        (0xC0000005, (), "EXCEPTION_ACCESS_VIOLATION", 0x40429E),
        (0xC0000006, (0, 0x5000, 0xC000009C),
         "EXCEPTION_IN_PAGE_ERROR_READ / STATUS_DEVICE_DATA_ERROR", 0x5000),
        (0xC0000006, (1, 0x5000, 0xFFFFFFFF12345678),
         "EXCEPTION_IN_PAGE_ERROR_WRITE / 0x12345678", 0x5000),
        (0xC0000006, (0, 0x5000), "EXCEPTION_IN_PAGE_ERROR", 0x5000),
        (0xC0000409, (7,), "EXCEPTION_STACK_BUFFER_OVERRUN / FAST_FAIL_FATAL_APP_EXIT",
         0x40429E),
        (0xC0000409, (2,),
         "EXCEPTION_STACK_BUFFER_OVERRUN / FAST_FAIL_STACK_COOKIE_CHECK_FAILURE", 0x40429E),
        (0xC0000409, (0x4D,), "EXCEPTION_STACK_BUFFER_OVERRUN / 0x0000004d", 0x40429E),
        (0xC0000409, (), "STATUS_STACK_BUFFER_OVERRUN", 0x40429E),
        (0x80000003, (), "EXCEPTION_BREAKPOINT", 0x40429E),
        (0xC00000FD, (1, 0x1000), "EXCEPTION_STACK_OVERFLOW", 0x40429E),
        (0xC000001D, (), "EXCEPTION_ILLEGAL_INSTRUCTION", 0x40429E),
        (0xC0000094, (), "EXCEPTION_INT_DIVIDE_BY_ZERO", 0x40429E),
        (0xE06D7363, (0x19930520, 0, 0), "Unhandled C++ Exception", 0x40429E),
        (0xE0000008, (), "Out of Memory", 0x40429E),
        (0x0517A7ED, (), "Simulated Exception", 0x40429E),
        (0xE0434352, (), "MANAGED_EXCEPTION_CODE_V4", 0x40429E),
        (0xC0000374, (), "STATUS_HEAP_CORRUPTION", 0x40429E),
        (0xC0000135, (), "STATUS_DLL_NOT_FOUND", 0x40429E),
        (0x40000015, (), "STATUS_FATAL_APP_EXIT", 0x40429E),
        (0xC06D007E, (), "FACILITY_VISUALCPP / ERROR_MOD_NOT_FOUND", 0x40429E),
        (0x5, (), "ERROR_ACCESS_DENIED", 0x40429E),
        (0x12345678, (), "unknown 0x12345678", 0x40429E),
    ],
)
def test_windows_exceptions(
    code: int, parameters: tuple[int, ...], reason: str, address: int
) -> None:
    assert crash_reason("Windows NT", "amd64", code, 0, 0x40429E, parameters) == (
        reason, address)


def test_32_bit_addresses_drop_sign_extension() -> None:
    assert crash_reason("Windows NT", "x86", 0xC0000005, 0, 0x40429E,
                        (0, 0xFFFFFFFFFFFFFFF0)) == ("EXCEPTION_ACCESS_VIOLATION_READ", 0xFFFFFFF0)
    assert crash_reason("Linux", "arm", 11, 1, 0xFFFFFFFF80000000, ()) == (
        "SIGSEGV / SEGV_MAPERR", 0x80000000)
    assert crash_reason("Linux", "arm64", 11, 1, 0xFFFFFFFF80000000, ()) == (
        "SIGSEGV / SEGV_MAPERR", 0xFFFFFFFF80000000)


def test_fault_address_only_for_windows_access_errors() -> None:
    assert crash_reason("Linux", "amd64", 0xC0000005, 0, 0x1234, (1, 0x45))[1] == 0x1234
    assert crash_reason("Windows NT", "amd64", 0xC0000409, 0, 0x1234, (7, 0x45))[1] == 0x1234


def test_unknown_os_keeps_the_numbers() -> None:
    assert crash_reason("Solaris", "x86", 11, 1, 0x10, ()) == (
        "unknown 0x0000000b / 0x00000001", 0x10)
    assert crash_reason("0x00001234", "amd64", 0xC0000005, 0, 0x10, (1, 0x45)) == (
        "unknown 0xc0000005 / 0x00000000", 0x10)


@pytest.mark.parametrize(
    ("code", "name"),
    [
        (0, "ERROR_SUCCESS"),
        (5, "ERROR_ACCESS_DENIED"),
        (1450, "ERROR_NO_SYSTEM_RESOURCES"),
        (0xC0000017, "STATUS_NO_MEMORY"),
        (0xC0000005, "STATUS_ACCESS_VIOLATION"),
        (0xC06D007F, "FACILITY_VISUALCPP / ERROR_PROC_NOT_FOUND"),
        (0x8007000E, "unknown 0x8007000e"),
    ],
)
def test_windows_error_name(code: int, name: str) -> None:
    assert windows_error_name(code) == name
