"""The minidump reader on synthetic dumps: header errors, streams the real fixtures
lack (assertion, macOS crash info, Memory64List, big-endian dumps...) and broken
streams that must become warnings."""

from __future__ import annotations

import io
import struct

import pytest

from chalicelib.processing.minidump import MinidumpError, Module, Modules, read_minidump
from tests.processing.dumpbuilder import DumpBuilder

RSDS_GUID = bytes.fromhex("e532985a7228c141838ed98914e9b7ff")


def read(blob: bytes):
    return read_minidump(io.BytesIO(blob))


def header(signature=b"MDMP", version=0xA793, count=1, rva=32) -> bytes:
    return signature + struct.pack("<IIIIIQ", version, count, rva, 0, 0, 0)


@pytest.mark.parametrize(
    ("blob", "kind"),
    [
        (b"", "TRUNCATED"),
        (b"MDM", "TRUNCATED"),
        (b"MDMP" + b"\0" * 20, "TRUNCATED"),
        (b"ELF\x7f" + b"\0" * 60, "INVALID_HEADER"),
        (header(version=0x1234) + b"\0" * 12, "INVALID_HEADER"),
        (header(count=0), "NO_STREAMS"),
        (header(rva=4096) + b"\0" * 12, "INVALID_STREAM_DIRECTORY"),
        (header(count=100_000) + b"\0" * 12, "INVALID_STREAM_DIRECTORY"),
        (header(count=3) + b"\0" * 12, "TRUNCATED"),
    ],
)
def test_unreadable_header_or_directory(blob, kind):
    with pytest.raises(MinidumpError) as info:
        read(blob)
    assert info.value.kind == kind


def test_big_endian_dump():
    b = DumpBuilder(endian=">")
    b.system_info(arch=3, platform=0x8101, version=(10, 4, 11), csd="8S165", cpus=2)
    pdb = b.pack("I", 0x53445352) + RSDS_GUID + b.pack("I", 2) + b"app.pdb\0"
    b.stream(4, b.pack("I", 1) + b.module(0x1000, 0x2000, "/Applications/App", pdb))
    dump = read(b.build())
    si = dump.system_info
    assert (si.os, si.os_ver, si.cpu_arch, si.cpu_count, si.cpu_info) == (
        "Mac OS X", "10.4.11 8S165", "ppc", 2, None
    )
    module = dump.modules[0]
    guid = struct.unpack(">IHH", RSDS_GUID[:8])
    expected = f"{guid[0]:08X}{guid[1]:04X}{guid[2]:04X}" + RSDS_GUID[8:].hex().upper()
    assert (module.code_file, module.debug_file, module.debug_id, module.code_id) == (
        "/Applications/App", "app.pdb", expected + "2", expected
    )


def test_pdb20_elf_and_unknown_codeview_and_versions():
    b = DumpBuilder()
    b.system_info(platform=2, version=(6, 1, 7601), csd="Service Pack 1")
    nb10 = b"NB10" + struct.pack("<III", 0, 0x4A1B2C3D, 5) + b"C:\\build\\old.pdb\0"
    ffi = (0xFEEF04BD, 0x10000, 0x00060001, 0x1DB10000) + (0,) * 9
    zero = (0xFEEF04BD, 0x10000) + (0,) * 11
    modules = [
        b.module(0x10000, 0x1000, "C:\\old.dll", nb10, timestamp=0x5000, ffi=ffi),
        b.module(0x20000, 0x1000, "C:\\nocv.dll", timestamp=0xABCDEF01, ffi=zero),
        b.module(0x30000, 0x1000, "C:\\odd.dll", b"XXXX1234", timestamp=1),
    ]
    b.stream(4, struct.pack("<I", 3) + b"".join(modules))
    dump = read(b.build())
    old, nocv, odd = dump.modules
    assert (old.debug_file, old.debug_id, old.code_id, old.version) == (
        "old.pdb", "4A1B2C3D5", "000050001000", "6.1.7601.0"
    )
    assert (nocv.code_id, nocv.debug_id, nocv.version) == ("ABCDEF011000", None, None)
    assert (odd.code_id, odd.debug_file, odd.debug_id) == ("000000011000", None, None)
    assert dump.system_info.os_ver == "6.1.7601 Service Pack 1"


def test_linux_module_version_and_short_build_id():
    b = DumpBuilder()
    b.system_info(platform=0x8201, version=(5, 10, 0))
    ffi = (0xFEEF04BD, 0x10000, 1, 2, 3, 4) + (0,) * 7
    elf = b"LEpB" + bytes.fromhex("0102030405")
    b.stream(4, struct.pack("<I", 1) + b.module(0x400000, 0x1000, "/bin/tool", elf, ffi=ffi))
    module = read(b.build()).modules[0]
    assert (module.version, module.code_id, module.debug_id, module.debug_file) == (
        "1.2.3.4", "0102030405", "04030201000500000000000000000000" + "0", "tool"
    )


def test_assertion_stream():
    b = DumpBuilder()
    fields = [s.encode("utf-16-le").ljust(256, b"\0") for s in ("x != 0", "f", "a.cc")]
    b.stream(0x47670002, b"".join(fields) + struct.pack("<II", 42, 1))
    assert read(b.build()).assertion == (
        "Invalid parameter passed to library function x != 0 in function f, in file a.cc "
        "at line 42"
    )


def test_mac_crash_info_and_boot_args():
    b = DumpBuilder()
    strings = b"/usr/lib/libA.dylib\0abort() called\0\0bt\0second\0"
    record = struct.pack("<QQQQQ", 0x4D7A0001, 5, 0x1234, 7, 9) + strings
    rva = b.add(record)
    locations = struct.pack("<II", len(record), rva) + b"\0" * 8 * 19
    b.stream(0x4D7A0001, struct.pack("<III", 0x4D7A0001, 1, 40) + locations)
    b.stream(0x4D7A0002, struct.pack("<IQ", 0x4D7A0002, b.utf16("-v keepsyms=1")))
    dump = read(b.build())
    (info,) = dump.mac_crash_info
    assert (info.thread, info.dialog_mode, info.abort_cause) == (0x1234, 7, 9)
    assert (info.module, info.message, info.signature_string, info.backtrace, info.message2) == (
        "/usr/lib/libA.dylib", "abort() called", None, "bt", "second"
    )
    assert dump.mac_boot_args == "-v keepsyms=1"


def test_memory_lists_and_ranges_outside_the_file():
    b = DumpBuilder()
    low = b.add(bytes(range(16)))
    b.stream(5, struct.pack("<I", 3) + struct.pack("<QII", 0x1000, 16, low)
             + struct.pack("<QII", 0x1008, 16, low)          # overlaps: ignored
             + struct.pack("<QII", 0x9000, 64, 1 << 30))     # outside the file
    first = b.add(b"\xAA" * 32 + b"\xBB" * 32)
    b.stream(9, struct.pack("<QQ", 2, first) + struct.pack("<QQ", 0x7000, 32)
             + struct.pack("<QQ", 0x8000, 32))
    dump = read(b.build())
    memory = dump.memory
    assert list(memory) == [(0x1000, 16), (0x7000, 32), (0x8000, 32)]
    assert memory.read(0x1004, 4) == bytes([4, 5, 6, 7])
    assert memory.read_u32(0x1000) == 0x03020100
    assert memory.read(0x7000 + 30, 4) is None
    assert memory.read(0x8000, 32) == b"\xBB" * 32
    assert memory.read_u64(0x9000) is None
    assert dump.warnings == ["1 memory ranges lying outside the file were skipped"]


def test_misc_info_flags_and_proc_status_fallback():
    b = DumpBuilder()
    b.stream(15, struct.pack("<IIIIII", 24, 2, 777, 1700000000, 0, 0))  # pid not valid
    b.stream(0x47670004, b"Name:\tapp\nPid:\t4242\nPPid:\t1\n")
    b.stream(0x47670003, b"processor\t: 0\nmicrocode\t: 0xf0\n")
    b.stream(0x47670005, b'NAME="Fedora Linux"\nID=fedora\nVERSION_ID=39\n'
                         b'PRETTY_NAME="Fedora Linux 39 (Workstation Edition)"\n')
    b.system_info()
    dump = read(b.build())
    assert (dump.pid, dump.process_create_time) == (4242, 1700000000)
    assert dump.system_info.cpu_microcode_version == 0xF0
    assert dump.lsb_release == {
        "id": "fedora", "release": "39", "codename": "",
        "description": "Fedora Linux 39 (Workstation Edition)",
    }


@pytest.mark.parametrize(
    ("arch", "platform", "cpu_data", "level", "revision", "cpu_arch", "os", "cpu_info"),
    [
        (5, 0x8203, struct.pack("<II", 0x410FC090, 0x1007), 7, 0, "arm", "Android",
         "ARMv7 ARM Cortex-A9 features: swp,half,thumb,neon"),
        (0xFFFF, 0x1234, b"", 0, 0, "unknown", "0x00001234", None),
        (0, 2, b"AuthenticAMD", 15, 0x0B01, "x86", "Windows NT",
         "AuthenticAMD family 15 model 11 stepping 1"),
    ],
)
def test_cpu_and_os_names(arch, platform, cpu_data, level, revision, cpu_arch, os, cpu_info):
    b = DumpBuilder()
    b.system_info(arch=arch, platform=platform, cpu_data=cpu_data, level=level,
                  revision=revision, version=(1, 2, 3))
    si = read(b.build()).system_info
    assert (si.cpu_arch, si.os, si.cpu_info, si.os_ver) == (cpu_arch, os, cpu_info, "1.2.3")


def test_broken_streams_become_warnings():
    b = DumpBuilder()
    b.system_info(platform=2)
    bad_name = b.pack("QIIII13IIIII4I", 0x1000, 0x10, 0, 0, 1 << 31, *(0,) * 13, 0, 0, 0, 0,
                      0, 0, 0, 0)
    b.stream(4, struct.pack("<I", 1) + bad_name)
    b.stream(3, struct.pack("<I", 1000) + b"\0" * 48)              # count beyond the stream
    b.stream(6, b"\0" * 20)                                       # too short
    b.entry(0x47670009, 100, 1 << 30)                             # outside the file
    b.stream(7, b"\0" * 56)                                       # a second SystemInfo
    dump = read(b.build())
    assert dump.modules[0].code_file == "" and dump.modules[0].base == 0x1000
    assert dump.threads == [] and dump.exception is None and dump.linux_maps is None
    assert dump.system_info.os == "Windows NT"
    assert dump.warnings == [
        "LinuxMaps: the stream at offset 0x40000000 (100 bytes) lies outside the file",
        "SystemInfo: a second stream of this type is ignored",
        "ModuleList: name of module 0 at offset 0x80000000 (4 bytes) lies outside the file",
        "ThreadList: thread list claims 1000 entries of 48 bytes, more than its 52 bytes hold",
        "Exception: record shorter than its fixed fields",
    ]


def test_bad_thread_context_keeps_the_thread():
    b = DumpBuilder()
    b.system_info(arch=9, platform=0x8201)
    ctx = b.add(b"\x01" * 16)
    stack = b.add(b"\x22" * 64)
    b.stream(3, struct.pack("<I", 1)
             + struct.pack("<IIIIQQIIII", 77, 0, 0, 0, 0, 0x5000, 64, stack, 16, ctx))
    dump = read(b.build())
    (thread,) = dump.threads
    assert (thread.id, thread.context, thread.stack_base, thread.stack_size) == (
        77, None, 0x5000, 64
    )
    assert dump.memory.read(0x5000 + 56, 8) == b"\x22" * 8  # stack captured only in the thread
    assert dump.warnings == ["context of thread 77: not a CPU context this reader knows"]


def test_warnings_are_capped():
    b = DumpBuilder()
    records = [b.pack("QIIII13IIIII4I", i * 0x1000, 0x10, 0, 0, (1 << 31) + i, *(0,) * 21)
               for i in range(300)]
    b.stream(4, struct.pack("<I", 300) + b"".join(records))
    dump = read(b.build())
    assert len(dump.modules) == 300
    assert len(dump.warnings) == 101 and dump.warnings[-1] == "more warnings left out"


def test_modules_lookup_by_bisection():
    def module(base, size, name):
        return Module(base, size, name, None, None, None, None)

    modules = Modules([module(0x5000, 0x1000, "b"), module(0x1000, 0x2000, "a"),
                       module(0x2800, 0x1000, "overlap"), module(0x9000, 0, "empty")])
    assert [m.code_file for m in modules] == ["b", "a", "overlap", "empty"]
    assert modules.module_at(0x1000).code_file == "a"
    assert modules.module_at(0x2FFF).code_file == "a"
    assert modules.module_at(0x3000) is None
    assert modules.module_at(0x5FFF).code_file == "b"
    assert modules.module_at(0x9000) is None and modules.module_at(0) is None
    assert modules[1].end == 0x3000 and len(modules) == 4


def test_records_sharing_one_huge_string_stop_at_the_read_budget():
    b = DumpBuilder()
    name = b.utf16("n" * 400_000)  # 800 KB, within the string limit
    records = [b.pack("QIIII13IIIII4I", i * 0x1000, 0x10, 0, 0, name, *(0,) * 21)
               for i in range(2000)]
    b.stream(4, struct.pack("<I", 2000) + b"".join(records))
    blob = b.build()
    dump = read(blob)
    named = [m for m in dump.modules if m.code_file]
    # About 4 file sizes plus 64 MiB are read, then names are given up on.
    assert len(dump.modules) == 2000
    assert 80 < len(named) < 100 and named[0].code_file == "n" * 400_000
    assert "points at far more data than it holds" in dump.warnings[0]


def test_list_counts_are_capped():
    b = DumpBuilder()
    b.stream(3, struct.pack("<I", 70_000) + b"\0" * 48 * 70_000)
    dump = read(b.build())
    assert dump.threads == []
    assert dump.warnings == ["ThreadList: thread list claims 70000 entries, more than the 65536 "
                             "allowed"]
