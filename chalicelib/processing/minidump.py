"""Read a minidump into plain values, checking every offset and size against the file.

The reader takes a seekable binary file and reads only what it needs: the header, the
stream directory and the streams, never the whole file. Memory (thread stacks, or a
full-memory dump's ranges) is read on demand through Memory, so a 100 MB dump costs
little RAM. It knows nothing of S3 or HTTP.

A dump that cannot be read at all raises MinidumpError (kind names the problem, as
the processed crash's status ERROR_<KIND>); a broken stream is skipped and noted in
Minidump.warnings, so one bad stream never hides the rest.

This module holds the values and the public entry point; the work is split along
the file's own seams:

    reader.py          header, directory, and the order streams are read in
    streams.py         the standard streams (system info, threads, modules, memory...)
    vendor_streams.py  Breakpad, Crashpad, Linux /proc and macOS additions
    dumpfile.py        bounded reads: every offset and length checked first
"""

from __future__ import annotations

import array
import bisect
import collections
import dataclasses
import io
import struct
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from chalicelib.processing.context import Context


class MinidumpError(Exception):
    """The file is not a readable minidump. `kind` is one of "TRUNCATED" (shorter than
    its header or directory), "INVALID_HEADER" (no MDMP signature, unknown version),
    "NO_STREAMS" and "INVALID_STREAM_DIRECTORY"."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclasses.dataclass(frozen=True)
class Module:
    base: int
    size: int
    code_file: str              # full path as recorded, e.g. /usr/lib/libc.so.6
    code_id: str | None         # Breakpad's code id (PE: timestamp+size, ELF: build id hex)
    debug_file: str | None      # e.g. test_app.pdb, libc.so.6
    debug_id: str | None        # Breakpad's debug id, 33 upper-case hex (guid + age)
    version: str | None         # "a.b.c.d" from VS_FIXEDFILEINFO, None when absent/zero
    timestamp: int = 0
    checksum: int = 0

    @property
    def end(self) -> int:
        return self.base + self.size

    @property
    def filename(self) -> str:
        """Base name of code_file, for either path separator."""
        return self.code_file.replace("\\", "/").rsplit("/", 1)[-1]


@dataclasses.dataclass(frozen=True)
class UnloadedModule:
    base: int
    size: int
    code_file: str
    code_id: str | None
    timestamp: int = 0
    checksum: int = 0


@dataclasses.dataclass
class Thread:
    id: int
    context: Context | None
    stack_base: int = 0          # lowest address of the stack memory captured
    stack_size: int = 0
    suspend_count: int = 0
    priority: int = 0
    teb: int = 0
    name: str | None = None      # from ThreadNames (Windows) or Crashpad/Linux sources
    last_error: int | None = None


@dataclasses.dataclass
class ExceptionRecord:
    thread_id: int
    code: int
    flags: int
    record: int
    address: int
    parameters: tuple[int, ...]
    context: Context | None


@dataclasses.dataclass
class SystemInfo:
    processor_architecture: int
    cpu_arch: str                # "x86", "amd64", "arm", "arm64", "ppc", ... or "unknown"
    cpu_level: int
    cpu_revision: int
    cpu_count: int
    platform_id: int
    os: str                      # "Windows NT", "Mac OS X", "iOS", "Linux", ... or "0x%08x"
    os_ver: str                  # "major.minor.build" (+ " csd" where the writer has one)
    csd_version: str
    cpu_info: str | None         # e.g. "GenuineIntel family 6 model 60 stepping 3"
    cpu_vendor: str | None
    cpu_microcode_version: int | None = None


@dataclasses.dataclass
class CrashpadInfo:
    report_id: str | None
    client_id: str | None
    annotations: dict[str, str]                    # simple annotations (process)
    # module file name -> its simple annotations plus its string annotation objects
    module_annotations: dict[str, dict[str, str]]
    # module file name -> its list annotations (plain strings)
    module_list_annotations: dict[str, list[str]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class MacCrashInfoRecord:
    thread: int
    dialog_mode: int
    abort_cause: int
    module: str | None
    message: str | None
    signature_string: str | None
    backtrace: str | None
    message2: str | None


@dataclasses.dataclass
class Minidump:
    """Everything the processor uses; absent streams are None or empty."""

    size: int
    version: int
    timestamp: int
    flags: int
    streams: list[tuple[int, int, int]]          # (type, offset, size) as in the directory
    system_info: SystemInfo | None = None
    exception: ExceptionRecord | None = None
    threads: list[Thread] = dataclasses.field(default_factory=list)
    modules: Modules = dataclasses.field(default_factory=lambda: Modules([]))
    unloaded_modules: list[UnloadedModule] = dataclasses.field(default_factory=list)
    memory: Memory | None = None
    pid: int | None = None                       # MiscInfo (or Linux proc status)
    process_create_time: int | None = None
    dump_thread_id: int | None = None            # BreakpadInfo
    requesting_thread_id: int | None = None
    crashpad_info: CrashpadInfo | None = None
    assertion: str | None = None                 # Breakpad assertion stream
    lsb_release: dict[str, str] | None = None    # id, release, codename, description
    linux_cpu_info: str | None = None
    linux_proc_status: str | None = None
    linux_maps: str | None = None
    linux_auxv: bytes | None = None
    linux_environ: bytes | None = None           # sensitive: never shown by default
    linux_cmdline: bytes | None = None           # sensitive: never shown by default
    mac_crash_info: list[MacCrashInfoRecord] | None = None
    mac_boot_args: str | None = None
    linux_dso_debug: bytes | None = None         # raw DSO_DEBUG record (r_debug, link map)
    warnings: list[str] = dataclasses.field(default_factory=list)


class Modules:
    """Modules sorted by base, with address lookup by bisection."""

    def __init__(self, modules: list[Module]) -> None:
        self.ordered = list(modules)             # as in the dump (the JSON order)
        # A module overlapping the one below it is left out of lookups (the lower one
        # wins); it stays in `ordered`.
        self._sorted: list[Module] = []
        end = -1
        for module in sorted((m for m in self.ordered if m.size > 0), key=lambda m: m.base):
            if module.base >= end:
                self._sorted.append(module)
                end = module.end
        self._bases = [m.base for m in self._sorted]

    def module_at(self, address: int) -> Module | None:
        i = bisect.bisect_right(self._bases, address) - 1
        if i >= 0 and address < self._sorted[i].end:
            return self._sorted[i]
        return None

    def __iter__(self) -> Iterator[Module]:
        return iter(self.ordered)

    def __len__(self) -> int:
        return len(self.ordered)

    def __getitem__(self, index: int) -> Module:
        return self.ordered[index]


class Memory:
    """The dump's memory ranges (MemoryList and Memory64List), read from the file on
    demand. Every read is bounded by its range and by the file.

    The file must stay open while the Memory is used. Small ranges (thread stacks)
    are kept in a small cache once read, so stack walking does few reads.
    """

    MAX_READ = 16 << 20
    CACHE_RANGE_MAX = 1 << 20
    CACHE_ENTRIES = 8

    def __init__(
        self, file: BinaryIO, ranges: Iterable[tuple[int, int, int]], endian: str = "<"
    ) -> None:
        """`ranges` are (address, size, file offset), already checked to lie in the file.
        Empty ranges are dropped, and a range overlapping a lower one is ignored."""
        self._file = file
        self._endian = endian
        bases, sizes, offsets = array.array("Q"), array.array("Q"), array.array("Q")
        ordered = True
        for base, size, offset in ranges:
            if size > 0:
                ordered = ordered and (not bases or base >= bases[-1])
                bases.append(base)
                sizes.append(size)
                offsets.append(offset)
        # Writers list ranges in address order; sort only when one did not.
        order: Iterable[int] = range(len(bases))
        if not ordered:
            order = sorted(order, key=lambda i: (bases[i], sizes[i]))
        self._bases = array.array("Q")
        self._sizes = array.array("Q")
        self._offsets = array.array("Q")
        end = -1
        for i in order:
            if bases[i] >= end:
                self._bases.append(bases[i])
                self._sizes.append(sizes[i])
                self._offsets.append(offsets[i])
                end = bases[i] + sizes[i]
        self._cache: collections.OrderedDict[int, bytes] = collections.OrderedDict()

    @classmethod
    def from_bytes(cls, ranges: Iterable[tuple[int, bytes]], endian: str = "<") -> Memory:
        """Memory over in-memory blocks of (address, bytes), e.g. for tests."""
        blob = io.BytesIO()
        spans = []
        for base, data in ranges:
            spans.append((base, len(data), blob.tell()))
            blob.write(data)
        return cls(blob, spans, endian)

    def _index(self, address: int) -> int | None:
        i = bisect.bisect_right(self._bases, address) - 1
        if i >= 0 and address < self._bases[i] + self._sizes[i]:
            return i
        return None

    def read(self, address: int, size: int) -> bytes | None:
        """`size` bytes at `address` if one captured range holds them all, else None."""
        if address < 0 or size < 0 or size > self.MAX_READ:
            return None
        i = self._index(address)
        if i is None or address + size > self._bases[i] + self._sizes[i]:
            return None
        start = address - self._bases[i]
        if self._sizes[i] <= self.CACHE_RANGE_MAX:
            data = self._range_bytes(i)[start : start + size]
            return data if len(data) == size else None
        self._file.seek(self._offsets[i] + start)
        data = self._file.read(size)
        return data if len(data) == size else None

    def _range_bytes(self, i: int) -> bytes:
        data = self._cache.get(i)
        if data is None:
            self._file.seek(self._offsets[i])
            data = self._file.read(self._sizes[i])
            self._cache[i] = data
            if len(self._cache) > self.CACHE_ENTRIES:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(i)
        return data

    def _unpack(self, fmt: str, address: int) -> int | None:
        data = self.read(address, struct.calcsize(fmt))
        if data is None or len(data) != struct.calcsize(fmt):
            return None
        return struct.unpack(self._endian + fmt, data)[0]

    def read_u32(self, address: int) -> int | None:
        return self._unpack("I", address)

    def read_u64(self, address: int) -> int | None:
        return self._unpack("Q", address)

    def read_pointer(self, address: int, size: int) -> int | None:
        """A pointer of `size` bytes (4 or 8)."""
        if size == 4:
            return self.read_u32(address)
        if size == 8:
            return self.read_u64(address)
        raise ValueError(f"pointer size must be 4 or 8, not {size}")

    def range_at(self, address: int) -> tuple[int, int] | None:
        """(base, size) of the captured range holding `address`."""
        i = self._index(address)
        return None if i is None else (self._bases[i], self._sizes[i])

    def __iter__(self) -> Iterator[tuple[int, int]]:
        """(base, size) of every range, lowest first."""
        return zip(self._bases, self._sizes, strict=True)

    def __len__(self) -> int:
        return len(self._bases)


def read_minidump(file: BinaryIO, size: int | None = None) -> Minidump:
    """Read the dump in `file` (seekable; `size` defaults to its length).

    Raises MinidumpError when the header or stream directory is unreadable; a bad
    stream only adds to Minidump.warnings. OSError from the file itself passes through.
    The returned Memory reads from `file`, which must stay open while it is used.
    """
    from chalicelib.processing import reader

    return reader.read(file, size)
