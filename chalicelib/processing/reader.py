"""Read a whole minidump: the header and directory, then each stream it knows.

A header or directory that cannot be read raises MinidumpError; each stream is read
on its own, and one that fails becomes a line in Minidump.warnings.
"""

from __future__ import annotations

import array
import io
import logging
from collections.abc import Callable, Iterable
from typing import BinaryIO, TypeVar

from chalicelib.processing import context as ctx
from chalicelib.processing import minidump as md
from chalicelib.processing import streams, vendor_streams
from chalicelib.processing.dumpfile import DumpFile, StreamError

log = logging.getLogger(__name__)
T = TypeVar("T")

HEADER = "IIIIIIQ"
HEADER_SIZE = 32
VERSION = 0xA793
MAX_STREAMS = 4096
MAX_WARNINGS = 100
MAX_LIST_STREAM = 16 << 20  # a Memory64List of a million ranges
MAX_FIXED_STREAM = 64 << 10
MAX_TEXT_STREAM = 4 << 20
MAX_CONTEXT = 64 << 10  # the largest real ones (x86-64 with AVX-512 state) are ~3 KiB

THREAD_LIST, MODULE_LIST, MEMORY_LIST, EXCEPTION, SYSTEM_INFO = 3, 4, 5, 6, 7
MEMORY64_LIST, UNLOADED_MODULES, MISC_INFO, THREAD_NAMES = 9, 14, 15, 24
BREAKPAD_INFO, ASSERTION_INFO = 0x47670001, 0x47670002
LINUX_CPU_INFO, LINUX_PROC_STATUS, LINUX_LSB_RELEASE, LINUX_CMDLINE = range(0x47670003, 0x47670007)
LINUX_ENVIRON, LINUX_AUXV, LINUX_MAPS, LINUX_DSO_DEBUG = range(0x47670007, 0x4767000B)
CRASHPAD_INFO = 0x43500001
MAC_CRASH_INFO, MAC_BOOT_ARGS = 0x4D7A0001, 0x4D7A0002

STREAM_NAMES = {
    THREAD_LIST: "ThreadList", MODULE_LIST: "ModuleList", MEMORY_LIST: "MemoryList",
    EXCEPTION: "Exception", SYSTEM_INFO: "SystemInfo", MEMORY64_LIST: "Memory64List",
    UNLOADED_MODULES: "UnloadedModuleList", MISC_INFO: "MiscInfo", THREAD_NAMES: "ThreadNames",
    BREAKPAD_INFO: "BreakpadInfo", ASSERTION_INFO: "AssertionInfo",
    LINUX_CPU_INFO: "LinuxCpuInfo", LINUX_PROC_STATUS: "LinuxProcStatus",
    LINUX_LSB_RELEASE: "LinuxLsbRelease", LINUX_CMDLINE: "LinuxCmdLine",
    LINUX_ENVIRON: "LinuxEnviron", LINUX_AUXV: "LinuxAuxv", LINUX_MAPS: "LinuxMaps",
    LINUX_DSO_DEBUG: "LinuxDsoDebug", CRASHPAD_INFO: "CrashpadInfo",
    MAC_CRASH_INFO: "MacCrashInfo", MAC_BOOT_ARGS: "MacBootArgs",
}
LIST_STREAMS = {THREAD_LIST, MODULE_LIST, MEMORY_LIST, MEMORY64_LIST, UNLOADED_MODULES,
                THREAD_NAMES}
TEXT_STREAMS = {LINUX_CPU_INFO, LINUX_PROC_STATUS, LINUX_LSB_RELEASE, LINUX_CMDLINE,
                LINUX_ENVIRON, LINUX_AUXV, LINUX_MAPS, LINUX_DSO_DEBUG}


class Notes:
    """Minidump.warnings without repeats, and at most MAX_WARNINGS of them."""

    def __init__(self, warnings: list[str]) -> None:
        self.lines = warnings
        self.seen: set[str] = set()

    def add(self, line: str) -> None:
        if line in self.seen:
            return
        self.seen.add(line)
        if len(self.lines) < MAX_WARNINGS:
            self.lines.append(line)
        elif len(self.lines) == MAX_WARNINGS:
            self.lines.append("more warnings left out")


def read(file: BinaryIO, size: int | None = None) -> md.Minidump:
    if size is None:
        size = file.seek(0, io.SEEK_END)
    df = DumpFile(file, size)
    dump = _read_directory(df)
    _Reader(df, dump).run()
    return dump


def _read_directory(df: DumpFile) -> md.Minidump:
    if df.size < 4:
        raise md.MinidumpError("TRUNCATED", f"the file is {df.size} bytes, too short for a header")
    magic = df.read(0, 4)
    if magic == b"MDMP":
        df.endian = "<"
    elif magic == b"PMDM":
        df.endian = ">"
    else:
        raise md.MinidumpError("INVALID_HEADER", "the file does not start with MDMP")
    if df.size < HEADER_SIZE:
        raise md.MinidumpError("TRUNCATED", f"the file is {df.size} bytes, too short for a header")
    _sig, version, count, rva, _checksum, timestamp, flags = df.unpack_at(HEADER, 0, "header")
    if version & 0xFFFF != VERSION:
        raise md.MinidumpError("INVALID_HEADER", f"unknown minidump version 0x{version:x}")
    if count == 0:
        raise md.MinidumpError("NO_STREAMS", "the stream directory is empty")
    if count > MAX_STREAMS or rva >= df.size:
        raise md.MinidumpError(
            "INVALID_STREAM_DIRECTORY", f"{count} streams at offset 0x{rva:x} cannot be right"
        )
    if not df.contains(rva, count * 12):
        raise md.MinidumpError("TRUNCATED", "the stream directory runs past the end of the file")
    raw = df.read(rva, count * 12, "stream directory")
    entries = [df.unpack("III", raw, i * 12) for i in range(count)]
    return md.Minidump(
        size=df.size, version=version, timestamp=timestamp, flags=flags,
        streams=[(kind, offset, length) for kind, length, offset in entries],
    )


class _Reader:
    def __init__(self, df: DumpFile, dump: md.Minidump) -> None:
        self.df = df
        self.dump = dump
        self.notes = Notes(dump.warnings)
        self.located: dict[int, tuple[int, int]] = {}
        self.memory_ranges = (array.array("Q"), array.array("Q"), array.array("Q"))
        self.cpu: str | None = None
        self.os = ""
        for kind, offset, length in dump.streams:
            name = stream_name(kind)
            if kind == 0 or (kind in self.located and length == 0):
                continue
            if kind in self.located:
                self.notes.add(f"{name}: a second stream of this type is ignored")
            elif not df.contains(offset, length):
                self.notes.add(f"{name}: the stream at offset 0x{offset:x} ({length} bytes) "
                               "lies outside the file")
            else:
                self.located[kind] = (length, offset)

    def stream(self, kind: int) -> bytes | None:
        """The stream's bytes (at most the limit for its kind), None when absent."""
        if kind not in self.located:
            return None
        length, offset = self.located[kind]
        limit = MAX_LIST_STREAM if kind in LIST_STREAMS else (
            MAX_TEXT_STREAM if kind in TEXT_STREAMS else MAX_FIXED_STREAM)
        if length > limit:
            self.notes.add(f"{stream_name(kind)}: only the first {limit} of {length} bytes read")
        return self.df.read(offset, min(length, limit), stream_name(kind))

    def guarded(self, kind: int, parse: Callable[[bytes], T]) -> T | None:
        """parse(stream bytes), or None with a warning when the stream is absent or bad."""
        name = stream_name(kind)
        try:
            data = self.stream(kind)
            return None if data is None else parse(data)
        except StreamError as exc:
            self.notes.add(f"{name}: {exc}")
        except (OSError, MemoryError):
            raise  # the file, or the memory budget: not a broken stream
        except Exception:
            log.exception("reading the %s stream failed", name)
            self.notes.add(f"{name}: unreadable (internal error)")
        return None

    def run(self) -> None:
        df, dump = self.df, self.dump
        si = self.guarded(SYSTEM_INFO, lambda d: streams.parse_system_info(df, d))
        dump.system_info = si
        if si is not None:
            self.os = si.os
            self.cpu = si.cpu_arch if si.cpu_arch in ctx.POINTER_SIZE else None
        for kind, parse in ((MEMORY_LIST, streams.parse_memory_list),
                            (MEMORY64_LIST, streams.parse_memory64_list)):
            self.add_memory(self.guarded(kind, lambda d, parse=parse: parse(df, d)) or ())
        dump.modules = md.Modules(self.guarded(
            MODULE_LIST, lambda d: streams.parse_modules(df, d, self.os, self.notes.add)) or [])
        dump.unloaded_modules = self.guarded(
            UNLOADED_MODULES, lambda d: streams.parse_unloaded_modules(df, d, self.notes.add)
        ) or []
        self.read_threads()
        self.read_exception()
        misc = self.guarded(MISC_INFO, lambda d: streams.parse_misc_info(df, d))
        if misc:
            dump.pid, dump.process_create_time = misc
        ids = self.guarded(BREAKPAD_INFO, lambda d: vendor_streams.parse_breakpad_info(df, d))
        if ids:
            dump.dump_thread_id, dump.requesting_thread_id = ids
        dump.assertion = self.guarded(
            ASSERTION_INFO, lambda d: vendor_streams.parse_assertion(df, d))
        modules = dump.modules.ordered
        dump.crashpad_info = self.guarded(
            CRASHPAD_INFO,
            lambda d: vendor_streams.parse_crashpad_info(df, d, modules, self.notes.add),
        )
        self.read_linux()
        dump.mac_crash_info = self.guarded(
            MAC_CRASH_INFO, lambda d: vendor_streams.parse_mac_crash_info(df, d))
        dump.mac_boot_args = self.guarded(
            MAC_BOOT_ARGS, lambda d: vendor_streams.parse_mac_boot_args(df, d))

    def add_memory(self, ranges: Iterable[tuple[int, int, int]]) -> None:
        bad = 0
        bases, sizes, offsets = self.memory_ranges
        for base, size, offset in ranges:
            if self.df.contains(offset, size) and base + size <= 1 << 64:
                bases.append(base)
                sizes.append(size)
                offsets.append(offset)
            else:
                bad += 1
        if bad:
            self.notes.add(f"{bad} memory ranges lying outside the file were skipped")

    def context(self, location: tuple[int, int], what: str) -> ctx.Context | None:
        size, rva = location
        try:
            data = self.df.location(size, rva, f"context of {what}", MAX_CONTEXT)
        except StreamError as exc:
            self.notes.add(str(exc))
            return None
        try:
            return ctx.parse_context(data, self.cpu)
        except ctx.ContextError:
            self.notes.add(f"context of {what}: not a CPU context this reader knows")
        except NotImplementedError:
            self.notes.add("CPU contexts cannot be read yet")
        except (OSError, MemoryError):
            raise  # the file, or the memory budget: not a broken stream
        except Exception:
            log.exception("parsing the context of %s failed", what)
            self.notes.add(f"context of {what}: unreadable (parser error)")
        return None

    def read_threads(self) -> None:
        df, dump = self.df, self.dump
        threads = self.guarded(THREAD_LIST, lambda d: streams.parse_threads(df, d)) or []
        for thread, ctx_location, (base, size, rva) in threads:
            thread.context = self.context(ctx_location, f"thread {thread.id}")
            self.add_memory([(base, size, rva)] if size else [])
            dump.threads.append(thread)
        if self.memory_ranges[0]:
            dump.memory = md.Memory(df.file, zip(*self.memory_ranges, strict=True), df.endian)
        names = self.guarded(
            THREAD_NAMES, lambda d: streams.parse_thread_names(df, d, self.notes.add)) or {}
        pointer = ctx.POINTER_SIZE.get(self.cpu or "")
        for thread in dump.threads:
            thread.name = names.get(thread.id)
            if self.os == "Windows NT" and dump.memory and pointer and thread.teb:
                # GetLastError's value sits 13 pointers into the thread environment block.
                thread.last_error = dump.memory.read_u32(thread.teb + 13 * pointer)

    def read_exception(self) -> None:
        found = self.guarded(EXCEPTION, lambda d: streams.parse_exception(self.df, d))
        if found:
            exc, location = found
            exc.context = self.context(location, "the exception")
            self.dump.exception = exc

    def read_linux(self) -> None:
        dump = self.dump
        raw = {kind: self.guarded(kind, bytes) for kind in TEXT_STREAMS}

        def text(kind: int) -> str | None:
            data = raw[kind]
            return None if data is None else data.decode("utf-8", errors="replace")

        dump.linux_cpu_info = text(LINUX_CPU_INFO)
        dump.linux_proc_status = text(LINUX_PROC_STATUS)
        dump.linux_maps = text(LINUX_MAPS)
        dump.linux_cmdline, dump.linux_environ = raw[LINUX_CMDLINE], raw[LINUX_ENVIRON]
        dump.linux_auxv, dump.linux_dso_debug = raw[LINUX_AUXV], raw[LINUX_DSO_DEBUG]
        if raw[LINUX_LSB_RELEASE] is not None:
            dump.lsb_release = vendor_streams.parse_lsb_release(raw[LINUX_LSB_RELEASE])
        if dump.pid is None and dump.linux_proc_status:
            dump.pid = vendor_streams.proc_status_pid(dump.linux_proc_status)
        if dump.system_info and dump.linux_cpu_info:
            dump.system_info.cpu_microcode_version = vendor_streams.cpu_microcode(
                dump.linux_cpu_info)


def stream_name(kind: int) -> str:
    return STREAM_NAMES.get(kind, f"stream 0x{kind:x}")
