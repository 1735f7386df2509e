"""Crash reasons by name, as minidump-stackwalk's JSON names them (crash_info.type).

Linux/Android signals with their si_code ("SIGSEGV / SEGV_MAPERR"), Windows exception
codes (access violations read/write/exec, in-page errors, fast-fail subcodes, then
winerror.h and ntstatus.h names), macOS/iOS EXC_* with their CPU-specific codes.

EXC_CRASH names the signal packed in its code ("EXC_CRASH / SIGABRT") and Crashpad's
uncaught-NSException code 0x43506e78 ('CPnx') reads "Uncaught NSException", as
Breakpad names them (minidump-stackwalk leaves both as numbers). Codes no table knows
keep their numbers: "unknown 0x12345678" for a Windows code. The Windows name tables are in
windows_codes.txt next to this module.
"""

from __future__ import annotations

import functools
from pathlib import Path

_BITS32 = {"x86", "arm", "ppc", "sparc", "mips"}

# ------------------------------------------------------------------ Linux / Android

_SIGNALS = {
    1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT",
    7: "SIGBUS", 8: "SIGFPE", 9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2",
    13: "SIGPIPE", 14: "SIGALRM", 15: "SIGTERM", 16: "SIGSTKFLT", 17: "SIGCHLD",
    18: "SIGCONT", 19: "SIGSTOP", 20: "SIGTSTP", 21: "SIGTTIN", 22: "SIGTTOU", 23: "SIGURG",
    24: "SIGXCPU", 25: "SIGXFSZ", 26: "SIGVTALRM", 27: "SIGPROF", 28: "SIGWINCH",
    29: "SIGIO", 30: "SIGPWR", 31: "SIGSYS", 0xFFFFFFFF: "DUMP_REQUESTED",
}


def _numbered(*names: str) -> dict[int, str]:
    return dict(enumerate(names, start=1))


# si_code values that say why a signal was sent, per signal (asm-generic/siginfo.h)
_SI_CODES = {
    "SIGILL": _numbered("ILL_ILLOPC", "ILL_ILLOPN", "ILL_ILLADR", "ILL_ILLTRP", "ILL_PRVOPC",
                        "ILL_PRVREG", "ILL_COPROC", "ILL_BADSTK", "ILL_BADIADDR"),
    "SIGTRAP": _numbered("TRAP_BRKPT", "TRAP_TRACE", "TRAP_BRANCH", "TRAP_HWBKPT",
                         "TRAP_UNK", "TRAP_PERF"),
    "SIGFPE": _numbered("FPE_INTDIV", "FPE_INTOVF", "FPE_FLTDIV", "FPE_FLTOVF", "FPE_FLTUND",
                        "FPE_FLTRES", "FPE_FLTINV", "FPE_FLTSUB"),
    "SIGSEGV": _numbered("SEGV_MAPERR", "SEGV_ACCERR", "SEGV_BNDERR", "SEGV_PKUERR"),
    "SIGBUS": _numbered("BUS_ADRALN", "BUS_ADRERR", "BUS_OBJERR", "BUS_MCEERR_AR",
                        "BUS_MCEERR_AO"),
    "SIGSYS": _numbered("SYS_SECCOMP", "SYS_USER_DISPATCH"),
}
# si_code values any signal can carry (who sent it); SI_USER (0) is left unsaid
_SI_SENDERS = {
    0: "SI_USER", 0x80: "SI_KERNEL", -1: "SI_QUEUE", -2: "SI_TIMER", -3: "SI_MESGQ",
    -4: "SI_ASYNCIO", -5: "SI_SIGIO", -6: "SI_TKILL", -7: "SI_DETHREAD", -60: "SI_ASYNCNL",
}


def _linux_reason(code: int, flags: int) -> str | None:
    signal = _SIGNALS.get(code)
    if signal is None:
        return None
    kind = _SI_CODES.get(signal, {}).get(flags)
    if kind:
        return f"{signal} / {kind}"
    sender = _SI_SENDERS.get(flags - (1 << 32) if flags & 0x80000000 else flags)
    if sender == "SI_USER":
        return signal
    return f"{signal} / {sender}" if sender else f"{signal} / {flags:#010x}"


# ------------------------------------------------------------------ macOS / iOS

_EXC_BAD_ACCESS, _EXC_BAD_INSTRUCTION, _EXC_ARITHMETIC = 1, 2, 3
_EXC_SOFTWARE, _EXC_BREAKPOINT, _EXC_RESOURCE, _EXC_GUARD = 5, 6, 11, 12
_MACH_EXCEPTIONS = {
    1: "EXC_BAD_ACCESS", 2: "EXC_BAD_INSTRUCTION", 3: "EXC_ARITHMETIC", 4: "EXC_EMULATION",
    5: "EXC_SOFTWARE", 6: "EXC_BREAKPOINT", 7: "EXC_SYSCALL", 8: "EXC_MACH_SYSCALL",
    9: "EXC_RPC_ALERT", 11: "EXC_RESOURCE", 12: "EXC_GUARD",
}
_SIMULATED_MAC = 0x43507378  # 'CPsx', Crashpad's simulated crash
# kern_return_t values of EXC_BAD_ACCESS, whatever the CPU
_KERN_RETURNS = {
    1: "KERN_INVALID_ADDRESS", 2: "KERN_PROTECTION_FAILURE", 5: "KERN_FAILURE",
    8: "KERN_NO_ACCESS", 9: "KERN_MEMORY_FAILURE", 10: "KERN_MEMORY_ERROR",
    50: "KERN_CODESIGN_ERROR",
}
_X86_CODES = {
    _EXC_BAD_ACCESS: {13: "EXC_I386_GPFLT"},
    _EXC_BAD_INSTRUCTION: {1: "EXC_I386_INVOP", 10: "EXC_I386_INVTSSFLT",
                           11: "EXC_I386_SEGNPFLT", 12: "EXC_I386_STKFLT",
                           13: "EXC_I386_GPFLT", 17: "EXC_I386_ALIGNFLT"},
    _EXC_ARITHMETIC: _numbered("EXC_I386_DIV", "EXC_I386_INTO", "EXC_I386_NOEXT",
                               "EXC_I386_EXTOVR", "EXC_I386_EXTERR", "EXC_I386_EMERR",
                               "EXC_I386_BOUND", "EXC_I386_SSEEXTERR"),
    _EXC_BREAKPOINT: {1: "EXC_I386_SGL", 2: "EXC_I386_BPT"},
}
_ARM64_CODES = {
    _EXC_BAD_ACCESS: {0x101: "EXC_ARM_DA_ALIGN", 0x102: "EXC_ARM_DA_DEBUG",
                      0x103: "EXC_ARM_SP_ALIGN", 0x104: "EXC_ARM_SWP",
                      0x105: "EXC_ARM_PAC_FAIL"},
    _EXC_BAD_INSTRUCTION: {1: "EXC_ARM_UNDEFINED"},
    _EXC_ARITHMETIC: _numbered("EXC_ARM_FP_IO", "EXC_ARM_FP_DZ", "EXC_ARM_FP_OF",
                               "EXC_ARM_FP_UF", "EXC_ARM_FP_IX", "EXC_ARM_FP_ID"),
    _EXC_BREAKPOINT: {1: "EXC_ARM_BREAKPOINT"},
}
_PPC_CODES = {
    _EXC_BAD_ACCESS: {0x101: "EXC_PPC_VM_PROT_READ", 0x102: "EXC_PPC_BADSPACE",
                      0x103: "EXC_PPC_UNALIGNED"},
    _EXC_BAD_INSTRUCTION: _numbered("EXC_PPC_INVALID_SYSCALL", "EXC_PPC_UNIPL_INST",
                                    "EXC_PPC_PRIVINST", "EXC_PPC_PRIVREG", "EXC_PPC_TRACE",
                                    "EXC_PPC_PERFMON"),
    _EXC_ARITHMETIC: _numbered("EXC_PPC_OVERFLOW", "EXC_PPC_ZERO_DIVIDE", "EXC_FLT_INEXACT",
                               "EXC_PPC_FLT_ZERO_DIVIDE", "EXC_PPC_FLT_UNDERFLOW",
                               "EXC_PPC_FLT_OVERFLOW", "EXC_PPC_FLT_NOT_A_NUMBER",
                               "EXC_PPC_NOEMULATION", "EXC_PPC_ALTIVECASSIST"),
    _EXC_BREAKPOINT: {1: "EXC_PPC_BREAKPOINT"},
}
_CPU_CODES = {"x86": _X86_CODES, "amd64": _X86_CODES, "arm64": _ARM64_CODES,
              "ppc": _PPC_CODES}
_SOFTWARE_CODES = {
    0x00010002: "SIGABRT", 0xDEADC0DE: "UNCAUGHT_NS_EXCEPTION", 0x00000001: "EXC_PPC_TRAP",
    0x00010100: "EXC_PPC_MIGRATE",
}


_EXC_CRASH = 10
_CRASHPAD_NSEXCEPTION = 0x43506E78


def _mac_reason(cpu: str, code: int, flags: int, parameters: tuple[int, ...]) -> str | None:
    if code == _SIMULATED_MAC:
        return "Simulated Exception"
    if code == _CRASHPAD_NSEXCEPTION:
        return "Uncaught NSException"
    if code == _EXC_CRASH:
        # code[0] packs the signal that ended the process in bits 24-31.
        signal = _SIGNALS.get((flags >> 24) & 0xFF)
        return f"EXC_CRASH / {signal}" if signal else f"EXC_CRASH / {flags:#010x}"
    name = _MACH_EXCEPTIONS.get(code)
    if name is None:
        return None
    if code == _EXC_BAD_ACCESS and flags in _KERN_RETURNS:
        return f"{name} / {_KERN_RETURNS[flags]}"
    if code == _EXC_SOFTWARE and flags in _SOFTWARE_CODES:
        return f"{name} / {_SOFTWARE_CODES[flags]}"
    detail = _CPU_CODES.get(cpu, {}).get(code, {}).get(flags)
    if detail:
        return f"{name} / {detail}"
    # The 64-bit code and subcode of EXC_RESOURCE and EXC_GUARD are the record's
    # second and third parameters; the kind sits in the top bits of the flags.
    kind = (flags >> 29) & 0x7
    more = (*parameters[1:3], 0, 0)
    if code == _EXC_RESOURCE and kind in _RESOURCE_KINDS:
        return _resource_reason(kind, more[0], more[1])
    if code == _EXC_GUARD and kind in _GUARD_KINDS:
        return _guard_reason(kind, more[0], more[1])
    return f"{name} / {flags:#010x}"


_RESOURCE_KINDS = _numbered("RESOURCE_TYPE_CPU", "RESOURCE_TYPE_WAKEUPS",
                            "RESOURCE_TYPE_MEMORY", "RESOURCE_TYPE_IO", "RESOURCE_TYPE_THREADS")
_RESOURCE_FLAVORS = {
    1: _numbered("FLAVOR_CPU_MONITOR", "FLAVOR_CPU_MONITOR_FATAL"),
    2: _numbered("FLAVOR_WAKEUPS_MONITOR"),
    3: _numbered("FLAVOR_HIGH_WATERMARK"),
    4: _numbered("FLAVOR_IO_PHYSICAL_WRITES", "FLAVOR_IO_LOGICAL_WRITES"),
    5: _numbered("FLAVOR_THREADS_HIGH_WATERMARK"),
}


def _resource_reason(kind: int, code: int, subcode: int) -> str:
    """EXC_RESOURCE: which limit, and the numbers packed in code and subcode."""
    head = f"EXC_RESOURCE / {_RESOURCE_KINDS[kind]} / "
    flavor = _RESOURCE_FLAVORS[kind].get((code >> 58) & 0x7)
    if flavor is None:
        return f"{head}{code:#018x} / {subcode:#018x}"
    if kind == 1:
        return (f"{head}{flavor} interval: {(code >> 7) & 0x1FFFFFF}s CPU limit: {code & 0x7}%"
                f" CPU consumed: {subcode & 0x7}%")
    if kind == 2:
        return (f"{head}{flavor} interval: {(code >> 20) & 0xFFFFF}s wakeups permitted:"
                f" {code & 0xFFF} wakeups observed: {subcode & 0xFFF}")
    if kind == 3:
        return f"{head}{flavor} high watermark limit: {code & 0x1FFF}MiB"
    if kind == 4:
        return (f"{head}{flavor} interval: {(code >> 15) & 0x1FFFF}s I/O limit: {code & 0x7FFF}%"
                f" I/O observed: {subcode & 0x7FFF}%")
    return f"{head}{flavor} high watermark limit: {code & 0x7FFF}"


_GUARD_KINDS = {
    0: "GUARD_TYPE_NONE", 1: "GUARD_TYPE_MACH_PORT", 2: "GUARD_TYPE_FD", 3: "GUARD_TYPE_USER",
    4: "GUARD_TYPE_VN", 5: "GUARD_TYPE_VIRT_MEMORY", 6: "GUARD_TYPE_REJECTED_SC",
}
_MACH_PORT_GUARDS = {
    1: "GUARD_EXC_DESTROY", 2: "GUARD_EXC_MOD_REFS", 3: "GUARD_EXC_INVALID_OPTIONS",
    4: "GUARD_EXC_SET_CONTEXT", 5: "GUARD_EXC_THREAD_SET_STATE",
    **{1 << bit: name for bit, name in enumerate((
        "GUARD_EXC_UNGUARDED", "GUARD_EXC_INCORRECT_GUARD", "GUARD_EXC_IMMOVABLE",
        "GUARD_EXC_STRICT_REPLY", "GUARD_EXC_MSG_FILTERED", "GUARD_EXC_INVALID_RIGHT",
        "GUARD_EXC_INVALID_NAME", "GUARD_EXC_INVALID_VALUE", "GUARD_EXC_INVALID_ARGUMENT",
        "GUARD_EXC_RIGHT_EXISTS", "GUARD_EXC_KERN_NO_SPACE", "GUARD_EXC_KERN_FAILURE",
        "GUARD_EXC_KERN_RESOURCE", "GUARD_EXC_SEND_INVALID_REPLY",
        "GUARD_EXC_SEND_INVALID_VOUCHER", "GUARD_EXC_SEND_INVALID_RIGHT",
        "GUARD_EXC_RCV_INVALID_NAME", "GUARD_EXC_RCV_GUARDED_DESC",
        "GUARD_EXC_MOD_REFS_NON_FATAL", "GUARD_EXC_IMMOVABLE_NON_FATAL",
        "GUARD_EXC_REQUIRE_REPLY_PORT_SEMANTICS", "GUARD_EXC_EXCEPTION_BEHAVIOR_ENFORCE",
    ), start=3)},
}
_GUARD_FLAVORS = {
    1: _MACH_PORT_GUARDS,
    2: {1 << bit: name for bit, name in enumerate((
        "GUARD_EXC_CLOSE", "GUARD_EXC_DUP", "GUARD_EXC_NOCLOEXEC", "GUARD_EXC_SOCKET_IPC",
        "GUARD_EXC_FILEPORT", "GUARD_EXC_MISMATCH", "GUARD_EXC_WRITE"))},
    4: {1 << bit: name for bit, name in enumerate((
        "GUARD_EXC_RENAME_TO", "GUARD_EXC_RENAME_FROM", "GUARD_EXC_UNLINK",
        "GUARD_EXC_WRITE_OTHER", "GUARD_EXC_TRUNC_OTHER", "GUARD_EXC_LINK",
        "GUARD_EXC_EXCHDATA"))},
    5: {1: "GUARD_EXC_DEALLOC_GAP"},
    6: {0: "GUARD_EXC_MACH_TRAP"},
}


def _guard_reason(kind: int, code: int, subcode: int) -> str:
    """EXC_GUARD: which guard, and the port, descriptor, pid or syscall it names."""
    head = f"EXC_GUARD / {_GUARD_KINDS[kind]}"
    if kind == 0:
        return head
    if kind == 3:
        return f"{head}/ namespace: {code & 0xFFFFFFFF} guard identifier: {subcode}"
    flavor = _GUARD_FLAVORS[kind].get((code >> 32) & 0x1FFFFFFF)
    if flavor is None:
        return f"{head} / {code:#018x} / {subcode:#018x}"
    if kind == 1:
        tail = f" subcode: {subcode}" if subcode else ""
        return f"{head} / {flavor} port name: {code & 0xFFFFFFF}{tail}"
    if kind == 2:
        return f"{head} / {flavor} file descriptor: {code & 0xFFFFFFF} guard identifier: {subcode}"
    if kind == 4:
        return f"{head} / {flavor} pid: {code & 0xFFFFFFF} guard identifier: {subcode}"
    if kind == 5:
        return f"{head} / {flavor} offset: {subcode}"
    return f"{head} / {flavor} syscall: {subcode}"


# ------------------------------------------------------------------ Windows

_ACCESS_VIOLATION, _IN_PAGE_ERROR, _STACK_BUFFER_OVERRUN = 0xC0000005, 0xC0000006, 0xC0000409
_EXCEPTION_CODES = {
    0x80000001: "EXCEPTION_GUARD_PAGE", 0x80000002: "EXCEPTION_DATATYPE_MISALIGNMENT",
    0x80000003: "EXCEPTION_BREAKPOINT", 0x80000004: "EXCEPTION_SINGLE_STEP",
    0xC0000005: "EXCEPTION_ACCESS_VIOLATION", 0xC0000006: "EXCEPTION_IN_PAGE_ERROR",
    0xC0000008: "EXCEPTION_INVALID_HANDLE", 0xC000001D: "EXCEPTION_ILLEGAL_INSTRUCTION",
    0xC0000025: "EXCEPTION_NONCONTINUABLE_EXCEPTION",
    0xC0000026: "EXCEPTION_INVALID_DISPOSITION", 0xC000008C: "EXCEPTION_BOUNDS_EXCEEDED",
    0xC000008D: "EXCEPTION_FLT_DENORMAL_OPERAND", 0xC000008E: "EXCEPTION_FLT_DIVIDE_BY_ZERO",
    0xC000008F: "EXCEPTION_FLT_INEXACT_RESULT", 0xC0000090: "EXCEPTION_FLT_INVALID_OPERATION",
    0xC0000091: "EXCEPTION_FLT_OVERFLOW", 0xC0000092: "EXCEPTION_FLT_STACK_CHECK",
    0xC0000093: "EXCEPTION_FLT_UNDERFLOW", 0xC0000094: "EXCEPTION_INT_DIVIDE_BY_ZERO",
    0xC0000095: "EXCEPTION_INT_OVERFLOW", 0xC0000096: "EXCEPTION_PRIV_INSTRUCTION",
    0xC00000FD: "EXCEPTION_STACK_OVERFLOW", 0xC0000194: "EXCEPTION_POSSIBLE_DEADLOCK",
    0xE0000008: "Out of Memory",             # Chromium's allocators
    0xE06D7363: "Unhandled C++ Exception",   # MSVC's throw
    0xE0434352: "MANAGED_EXCEPTION_CODE_V4",  # .NET
    0x0517A7ED: "Simulated Exception",       # Crashpad's simulated crash
}
_ACCESS_KINDS = {0: "READ", 1: "WRITE", 8: "EXEC"}
_FACILITY_VISUALCPP = 109


@functools.cache
def _windows_tables() -> dict[str, dict[int, str]]:
    tables: dict[str, dict[int, str]] = {}
    table: dict[int, str] = {}
    text = (Path(__file__).parent / "windows_codes.txt").read_text(encoding="ascii")
    for line in text.splitlines():
        if line.startswith("["):
            table = tables.setdefault(line.strip("[]"), {})
        elif line and not line.startswith("#"):
            value, name = line.split()
            table[int(value, 0)] = name
    return tables


def windows_error_name(code: int) -> str:
    """A Windows error code by name: a winerror.h name, else an NTSTATUS one, else a
    Visual C++ facility error ("FACILITY_VISUALCPP / ERROR_MOD_NOT_FOUND"), else
    "unknown 0x...". Also the name of a thread's last error value."""
    tables = _windows_tables()
    for table in (tables["winerror"], tables["ntstatus"]):
        if code in table:
            return table[code]
    if code & 0xF0000000 and (code >> 16) & 0xFFF == _FACILITY_VISUALCPP:
        error = tables["winerror"].get(code & 0xFFFF)
        if error:
            return f"FACILITY_VISUALCPP / {error}"
    return f"unknown {code:#010x}"


def _ntstatus_name(value: int) -> str:
    return _windows_tables()["ntstatus"].get(value, f"{value:#010x}")


def _windows_reason(code: int, parameters: tuple[int, ...]) -> str:
    first = parameters[0] if parameters else None
    if code == _ACCESS_VIOLATION and first in _ACCESS_KINDS:
        return f"EXCEPTION_ACCESS_VIOLATION_{_ACCESS_KINDS[first]}"
    if code == _IN_PAGE_ERROR and len(parameters) >= 3 and first in _ACCESS_KINDS:
        status = _ntstatus_name(parameters[2] & 0xFFFFFFFF)
        return f"EXCEPTION_IN_PAGE_ERROR_{_ACCESS_KINDS[first]} / {status}"
    if code == _STACK_BUFFER_OVERRUN and first is not None:
        fast_fail = first & 0xFFFFFFFF
        name = _windows_tables()["fast_fail"].get(fast_fail, f"{fast_fail:#010x}")
        return f"EXCEPTION_STACK_BUFFER_OVERRUN / {name}"
    return _EXCEPTION_CODES.get(code) or windows_error_name(code)


# ------------------------------------------------------------------ all systems

_OS_FAMILY = {
    "windows nt": "windows", "windows": "windows", "mac os x": "mac", "mac": "mac",
    "ios": "mac", "linux": "linux", "android": "linux",
}


def crash_reason(
    os: str, cpu_arch: str, code: int, flags: int, address: int, parameters: tuple[int, ...]
) -> tuple[str, int]:
    """(crash type, crash address) for an exception record.

    `os` and `cpu_arch` are SystemInfo's names ("Linux", "Windows NT", "amd64", ...);
    code, flags, address and parameters are the record's ExceptionCode,
    ExceptionFlags, ExceptionAddress and ExceptionInformation. The address is the one
    minidump-stackwalk reports: the fault address for access violations.
    """
    family = _OS_FAMILY.get(os.lower())
    reason: str | None = None
    if family == "windows":
        reason = _windows_reason(code, parameters)
    elif family == "mac":
        reason = _mac_reason(cpu_arch, code, flags, parameters)
    elif family == "linux":
        reason = _linux_reason(code, flags)
    if reason is None:
        reason = f"unknown {code:#010x} / {flags:#010x}"
    # Windows records the faulting instruction as the address and the data address of
    # an access violation or in-page error in the second parameter.
    if family == "windows" and code in (_ACCESS_VIOLATION, _IN_PAGE_ERROR):
        if len(parameters) >= 2:
            address = parameters[1]
    if cpu_arch in _BITS32:
        address &= 0xFFFFFFFF  # some writers sign-extend 32-bit addresses
    return reason, address
