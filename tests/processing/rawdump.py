"""Just enough minidump reading for the context and reason tests: the stream
directory, SystemInfo, the Exception stream and the thread list's context bytes.
Independent of chalicelib.processing.minidump, so those tests check their own
module against the real fixtures only."""

from __future__ import annotations

import dataclasses
import struct
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "minidumps"

THREAD_LIST, EXCEPTION, SYSTEM_INFO = 3, 6, 7
CPU_ARCH = {0: "x86", 5: "arm", 9: "amd64", 12: "arm64", 0x8003: "arm64"}
OS_NAME = {2: "Windows NT", 0x8101: "Mac OS X", 0x8102: "iOS", 0x8201: "Linux",
           0x8203: "Android"}


@dataclasses.dataclass
class RawDump:
    os: str
    cpu_arch: str
    code: int | None = None
    flags: int = 0
    address: int = 0
    parameters: tuple[int, ...] = ()
    exception_context: bytes | None = None
    thread_contexts: dict[int, bytes] = dataclasses.field(default_factory=dict)


def read_raw(name: str) -> RawDump:
    data = (FIXTURES / name).read_bytes()
    count, directory = struct.unpack_from("<II", data, 8)
    streams: dict[int, int] = {}
    for i in range(count):
        kind, _size, offset = struct.unpack_from("<III", data, directory + 12 * i)
        streams.setdefault(kind, offset)
    arch = struct.unpack_from("<H", data, streams[SYSTEM_INFO])[0]
    platform = struct.unpack_from("<I", data, streams[SYSTEM_INFO] + 20)[0]
    dump = RawDump(OS_NAME[platform], CPU_ARCH[arch])
    if EXCEPTION in streams:
        at = streams[EXCEPTION]
        dump.code, dump.flags, _record, dump.address, count = struct.unpack_from(
            "<IIQQI", data, at + 8
        )
        dump.parameters = struct.unpack_from(f"<{count}Q", data, at + 40)
        dump.exception_context = _location(data, at + 160)
    at = streams[THREAD_LIST]
    for i in range(struct.unpack_from("<I", data, at)[0]):
        entry = at + 4 + 48 * i
        thread_id = struct.unpack_from("<I", data, entry)[0]
        dump.thread_contexts[thread_id] = _location(data, entry + 40)
    return dump


def _location(data: bytes, at: int) -> bytes:
    size, offset = struct.unpack_from("<II", data, at)
    return data[offset : offset + size]
