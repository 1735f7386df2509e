"""The minidump reader on the real fixtures: the facts SOURCES.md lists for each dump,
module identifiers as the symbol tools name them, and memory reads."""

from __future__ import annotations

import dataclasses
import struct

import pytest

from chalicelib.processing.minidump import Minidump, MinidumpError, read_minidump
from tests.processing.conftest import DUMP_NAMES, MINIDUMPS


@dataclasses.dataclass(frozen=True)
class Facts:
    os: str
    os_ver: str
    cpu_arch: str
    cpu_info: str | None
    cpu_count: int
    modules: int
    threads: int
    exception_thread: int | None
    exception_code: int | None
    exception_address: int | None
    pid: int
    frame0: tuple[str, int]  # module and offset of the crashing (or first) thread's pc


FACTS = {
    "android-arm64-firefox-sigsegv.dmp": Facts(
        "Android",
        "0.0.0 Linux 4.9.218-perf+ #2 SMP PREEMPT Thu Nov 19 09:50:38 CST 2020 aarch64",
        "arm64", None, 8, 739, 164, 20397, 0xB, 0x0, 20397,
        ("libxul.so", 0x2D4DA90),
    ),
    "ios-x86_64-simulator-crashpad-nsexception.dmp": Facts(
        "iOS", "16.2.0 22C65", "amd64", "family 0 model 0 stepping 0", 12, 354, 7,
        4779401, 0x43506E78, 0x1030E9C34, 54806,
        ("ios_crash_xcuitests", 0x6BC34),
    ),
    "linux-x86_64-breakpad-sigsegv.dmp": Facts(
        "Linux", "4.9.60-linuxkit-aufs #1 SMP Mon Nov 6 16:00:12 UTC 2017", "amd64",
        "family 6 model 70 stepping 1", 4, 8, 1, 1304, 0xB, 0x45, 1304,
        ("crash", 0x1D72),
    ),
    "linux-x86_64-crashpad-chromeos-chrome-sigsegv.dmp": Facts(
        "Linux",
        "4.14.238 -18029-g3bb59fee806c #1 SMP PREEMPT Sun Jul 4 03:46:40 PDT 2021 x86_64",
        "amd64", "family 6 model 42 stepping 1", 8, 43, 18, 8090, 0xB, 0x0, 8090,
        ("chrome", 0x3637DA0),
    ),
    "macos-x86_64-crashpad-electron-bad-instruction.dmp": Facts(
        "Mac OS X", "10.11.6 15G1004", "amd64", "family 6 model 69 stepping 1", 4, 217, 17,
        6722809, 0x2, 0x10CE0A4E4, 78990,
        ("Electron Framework", 0xF34E4),
    ),
    "windows-x86-breakpad-access-violation.dmp": Facts(
        "Windows NT", "5.1.2600 Service Pack 2", "x86",
        "GenuineIntel family 6 model 13 stepping 8", 1, 13, 2, 3060, 0xC0000005, 0x40429E, 3932,
        ("test_app.exe", 0x429E),
    ),
    "windows-x86_64-sentry-native-access-violation.dmp": Facts(
        "Windows NT", "10.0.22621", "amd64", "family 25 model 33 stepping 0", 12, 34, 5,
        12996, 0xC0000005, 0x7FFE2C7F0476, 33180,
        ("VCRUNTIME140D.dll", 0x20476),
    ),
    "windows-x86_64-fastfail-0xc0000409.dmp": Facts(
        "Windows NT", "10.0.19042", "amd64", "family 6 model 85 stepping 4", 36, 21, 4,
        24440, 0xC0000409, 0x7FF75355AF42, 41996,
        ("tiny.exe", 0x1AF42),
    ),
    "windows-x86_64-no-exception-stream.dmp": Facts(
        "Windows NT", "10.0.22000 282", "amd64", "family 6 model 140 stepping 1", 8, 25, 1,
        None, None, None, 15444,
        ("ntdll.dll", 0xA39E4),
    ),
}


def test_every_real_fixture_has_facts():
    assert set(FACTS) | {"corrupt-invalid-stream-range.dmp"} == set(DUMP_NAMES)


@pytest.mark.parametrize("name", sorted(FACTS))
def test_fixture_facts(open_dump, name):
    facts = FACTS[name]
    dump = open_dump(name)
    si = dump.system_info
    assert (si.os, si.os_ver, si.cpu_arch, si.cpu_info, si.cpu_count) == (
        facts.os, facts.os_ver, facts.cpu_arch, facts.cpu_info, facts.cpu_count
    )
    assert len(dump.modules) == facts.modules
    assert len(dump.threads) == facts.threads
    assert dump.pid == facts.pid
    assert dump.size == (MINIDUMPS / name).stat().st_size
    assert dump.version & 0xFFFF == 0xA793
    if facts.exception_thread is None:
        assert dump.exception is None
    else:
        exc = dump.exception
        assert (exc.thread_id, exc.code, exc.address) == (
            facts.exception_thread, facts.exception_code, facts.exception_address
        )
        assert facts.exception_thread in [t.id for t in dump.threads]
    assert dump.warnings == []


@pytest.mark.parametrize("name", sorted(FACTS))
def test_fixture_frame0(open_dump, name):
    """The crashing instruction is the pc of the exception's own context (the first
    thread's when there is no exception), inside the module SOURCES.md names."""
    dump = open_dump(name)
    context = dump.exception.context if dump.exception else dump.threads[0].context
    module = dump.modules.module_at(context.pc)
    assert (module.filename, context.pc - module.base) == FACTS[name].frame0
    assert context.cpu == FACTS[name].cpu_arch


def test_windows_x86_modules_and_exception(open_dump):
    dump = open_dump("windows-x86-breakpad-access-violation.dmp")
    main = dump.modules[0]
    assert (main.filename, main.debug_file, main.debug_id) == (
        "test_app.exe", "test_app.pdb", "5A9832E5287241C1838ED98914E9B7FF1"
    )
    assert (main.base, main.size, main.code_id, main.version) == (
        0x400000, 0x2D000, "45D35F6C2d000", None
    )
    ntdll = dump.modules[1]
    assert (ntdll.code_file, ntdll.version, ntdll.debug_id) == (
        "C:\\WINDOWS\\system32\\ntdll.dll", "5.1.2600.2180", "36515FB5D04345E491F672FA2E2878C02"
    )
    # Access violation: parameters are (write, fault address); the record's address is
    # the faulting instruction, in test_app.exe.
    assert dump.exception.parameters == (1, 0x45)
    assert dump.modules.module_at(0x40429E) is main
    assert (dump.dump_thread_id, dump.requesting_thread_id) == (4544, 3060)
    assert dump.system_info.cpu_vendor == "GenuineIntel"


def test_linux_breakpad_elf_build_ids_and_proc_streams(open_dump):
    dump = open_dump("linux-x86_64-breakpad-sigsegv.dmp")
    crash = dump.modules[0]
    assert (crash.code_file, crash.filename, crash.debug_file) == (
        "/work/linux/build/crash", "crash", "crash"
    )
    assert crash.code_id == "f1c3bcc0279865fe3058404b2831d9e64135386c"
    # First 16 bytes of the build id as a GUID (first three fields swapped), age 0.
    assert crash.debug_id == "C0BCC3F19827FE653058404B2831D9E60"
    libc = dump.modules.module_at(0x7F514015D000 + 0x1234)
    assert (libc.filename, libc.debug_id) == ("libc-2.23.so", "451A38B5067979D2073822A5CEB24C4B0")
    assert dump.lsb_release == {
        "id": "Ubuntu", "release": "16.04", "codename": "xenial",
        "description": "Ubuntu 16.04.3 LTS",
    }
    assert dump.linux_cmdline == b"./crash\0"
    assert dump.linux_environ.startswith(b"HOSTNAME=6deb9e1e1648\0")
    assert dump.linux_maps.startswith("00400000-0041a000 r-xp 00000000 00:47 8612374361")
    assert "GenuineIntel" in dump.linux_cpu_info
    assert "Pid:\t1304" in dump.linux_proc_status
    assert len(dump.linux_auxv) == 304
    assert dump.system_info.csd_version.startswith("Linux 4.9.60-linuxkit-aufs")


def test_linux_crashpad_annotations(open_dump):
    dump = open_dump("linux-x86_64-crashpad-chromeos-chrome-sigsegv.dmp")
    chrome = dump.modules[0]
    assert (chrome.filename, chrome.debug_id, chrome.code_id) == (
        "chrome", "0966D7A2DCC18B9137F0B856AA4E45BE0", "a2d76609c1dc918b37f0b856aa4e45be4de9685c"
    )
    # An 8-byte build id is padded with zeros to a GUID.
    vdso = dump.modules[1]
    assert vdso.code_id == "911a24fbf47bae28"
    assert vdso.debug_id == "FB241A917BF428AE00000000000000000"
    info = dump.crashpad_info
    assert info.report_id == "c7dbc789-538a-4c45-84c5-0b3e1b5ba519"
    assert info.client_id == "68c9a06a-d019-4133-81de-1facf86331ce"
    assert info.annotations["prod"] == "Chrome_ChromeOS"
    assert info.annotations["ver"] == "93.0.4563.0"
    assert info.module_annotations["chrome"]["gpu-venid"] == "0x1af4"


def test_ios_annotation_objects_and_thread_names(open_dump):
    dump = open_dump("ios-x86_64-simulator-crashpad-nsexception.dmp")
    app = dump.modules.module_at(0x1030E9C34)
    assert app.filename == "ios_crash_xcuitests"
    # Apple modules: the code id is the UUID, the debug id the UUID plus age 0.
    assert (app.code_id, app.debug_id) == (
        "B0D838F7486136CF9ACC3CA8463CE271", "B0D838F7486136CF9ACC3CA8463CE2710"
    )
    annotations = dump.crashpad_info.module_annotations["ios_crash_xcuitests"]
    assert annotations["exceptionName"] == "NSRangeException"
    assert annotations["exceptionReason"] == (
        "*** -[__NSArray0 objectAtIndex:]: index 42 beyond bounds for empty NSArray"
    )
    assert dump.crashpad_info.annotations == {
        "crashpad": "yes", "plat": "iOS", "prod": "xcuitest", "ver": "1"
    }
    assert dump.threads[2].name == "com.apple.uikit.eventfetch-thread"
    assert dump.exception.parameters == (0x43506E78, 0, 0)


def test_macos_crashpad_info_without_annotation_objects(open_dump):
    dump = open_dump("macos-x86_64-crashpad-electron-bad-instruction.dmp")
    framework = dump.modules.module_at(0x10CE0A4E4)
    assert framework.filename == "Electron Framework"
    assert 0x10CE0A4E4 - framework.base == 0xF34E4
    assert framework.debug_id == "02DB4A28EC3E3BF8833FA54C0D5E86350"
    assert dump.crashpad_info.module_annotations["Electron Framework"]["_version"] == "1.4.3"
    assert dump.crashpad_info.report_id == "60ebdb7f-12f7-4bd7-b3f4-d2eaddeb5475"
    assert dump.process_create_time == 1476307088


def test_windows_sentry_breakpad_info_and_thread_names(open_dump):
    dump = open_dump("windows-x86_64-sentry-native-access-violation.dmp")
    assert (dump.dump_thread_id, dump.requesting_thread_id) == (26788, 12996)
    assert [t.name for t in dump.threads][3] == "sentry-http"
    assert dump.exception.parameters == (1, 0x20)
    main = dump.modules[0]
    assert (main.debug_file, main.debug_id) == (
        "sentry_example.pdb", "ED775832B9884EDEA32E4A105D0E90572"
    )
    assert dump.modules.module_at(0x7FFE2C7F0476).filename == "VCRUNTIME140D.dll"


def test_windows_fastfail_and_no_exception(open_dump):
    dump = open_dump("windows-x86_64-fastfail-0xc0000409.dmp")
    assert dump.exception.parameters == (7,)  # FAST_FAIL_FATAL_APP_EXIT
    assert dump.modules.module_at(0x7FF75355AF42).filename == "tiny.exe"
    assert dump.modules[0].code_id == "62D66DAA101000"
    assert dump.modules[1].version == "10.0.19041.1806"
    # GetLastError's value read from the thread's TEB in the dump's memory.
    assert dump.threads[0].last_error == 183
    quiet = open_dump("windows-x86_64-no-exception-stream.dmp")
    assert quiet.exception is None
    assert [(u.code_file, u.code_id) for u in quiet.unloaded_modules] == [
        ("shcore.dll", "D40BC30Aea000")
    ]


def test_android_old_arm64_id_and_linux_streams(open_dump):
    dump = open_dump("android-arm64-firefox-sigsegv.dmp")
    assert dump.system_info.processor_architecture == 0x8003
    assert dump.system_info.platform_id == 0x8203
    assert [t.id for t in dump.threads].index(20397) == 20
    libxul = next(m for m in dump.modules if m.filename == "libxul.so")
    assert libxul.debug_file == "libxul.so"
    assert len(libxul.debug_id) == 33 and libxul.debug_id.endswith("0")
    assert dump.linux_cmdline.startswith(b"org.mozilla.fennec_aurora\0")
    assert dump.linux_environ.startswith(b"PATH=/sbin:/system/sbin:")
    # Memory-mapped data files carry an all-zero build id: no identifiers at all.
    art = next(m for m in dump.modules if m.filename == "boot.art")
    assert (art.code_id, art.debug_id) == (None, None)


def test_corrupt_fixture_reads_with_warnings():
    with (MINIDUMPS / "corrupt-invalid-stream-range.dmp").open("rb") as f:
        try:
            dump = read_minidump(f)
        except MinidumpError as exc:
            assert exc.kind
            return
    assert dump.system_info is None and dump.threads == [] and len(dump.modules) == 0
    assert len(dump.streams) == 4  # one of them empty, so harmless
    assert all("lies outside the file" in w for w in dump.warnings)
    assert len(dump.warnings) == 3


def _raw_thread_list(name: str) -> list[tuple[int, int, int, int, int, int]]:
    """(id, stack base, stack size, stack rva, context size, context rva) straight from
    the file, as an oracle independent of the reader."""
    data = (MINIDUMPS / name).read_bytes()
    count, rva = struct.unpack_from("<8xII", data)
    for i in range(count):
        kind, _size, offset = struct.unpack_from("<III", data, rva + 12 * i)
        if kind == 3:
            n = struct.unpack_from("<I", data, offset)[0]
            return [
                struct.unpack_from("<I20xQIIII", data, offset + 4 + 48 * j)
                for j in range(n)
            ]
    raise AssertionError("no thread list")


STACK_POINTER = {  # name -> (offset of the stack pointer in the raw CONTEXT, its width)
    "linux-x86_64-breakpad-sigsegv.dmp": (0x98, 8),
    "windows-x86_64-fastfail-0xc0000409.dmp": (0x98, 8),
    "windows-x86-breakpad-access-violation.dmp": (0xC4, 4),
}


@pytest.mark.parametrize("name", sorted(STACK_POINTER))
def test_stack_pointer_reads_stack_bytes(open_dump, name):
    dump: Minidump = open_dump(name)
    data = (MINIDUMPS / name).read_bytes()
    offset, width = STACK_POINTER[name]
    for thread, (tid, base, size, rva, _csize, crva) in zip(
        dump.threads, _raw_thread_list(name), strict=True
    ):
        assert (thread.id, thread.stack_base, thread.stack_size) == (tid, base, size)
        sp = int.from_bytes(data[crva + offset : crva + offset + width], "little")
        assert base <= sp < base + size
        expected = data[rva + sp - base : rva + sp - base + width]
        assert dump.memory.read(sp, width) == expected
        assert dump.memory.read_pointer(sp, width) == int.from_bytes(expected, "little")
        assert dump.memory.range_at(sp) == (base, size)
        # The last word of the stack reads; one byte further does not.
        end = base + size
        assert dump.memory.read(end - 8, 8) == data[rva + size - 8 : rva + size]
        assert dump.memory.read(end - 4, 8) is None
        assert dump.memory.read_u64(end - 4) is None
        assert dump.memory.read_u32(end - 4) == int.from_bytes(
            data[rva + size - 4 : rva + size], "little"
        )


def test_memory_outside_ranges(open_dump):
    memory = open_dump("linux-x86_64-breakpad-sigsegv.dmp").memory
    ranges = list(memory)
    assert ranges == sorted(ranges) and len(memory) == len(ranges) == 2
    assert memory.read(0, 4) is None
    assert memory.read(ranges[0][0] - 1, 2) is None
    assert memory.read(-5, 4) is None and memory.read(ranges[0][0], -1) is None
    assert memory.read(ranges[0][0], 0) == b""
    assert memory.range_at(ranges[-1][0] + ranges[-1][1]) is None
    with pytest.raises(ValueError):
        memory.read_pointer(ranges[0][0], 2)
