"""Crash reasons by name, as Breakpad and rust-minidump name them.

Linux/Android signals with their si_code ("SIGSEGV / SEGV_MAPERR"), Windows exception
codes (access violations read/write/exec, fast-fail subcodes), macOS/iOS EXC_* with
their codes and the signal inside EXC_CRASH, and Crashpad's uncaught-NSException code.
"""

from __future__ import annotations


def crash_reason(
    os: str, cpu_arch: str, code: int, flags: int, address: int, parameters: tuple[int, ...]
) -> tuple[str, int]:
    """(crash type, crash address) for an exception record.

    `os` and `cpu_arch` are SystemInfo's names ("Linux", "Windows NT", "amd64", ...);
    code, flags, address and parameters are the record's ExceptionCode,
    ExceptionFlags, ExceptionAddress and ExceptionInformation. The address is the one
    minidump-stackwalk reports: the fault address for access violations.
    """
    raise NotImplementedError
