"""Build small synthetic minidumps for the reader's tests: streams the real fixtures
do not have, and broken ones on purpose."""

from __future__ import annotations

import struct

HEADER_AREA = 4096  # header and directory; data starts after it


class DumpBuilder:
    def __init__(self, endian: str = "<") -> None:
        self.endian = endian
        self.data = bytearray(HEADER_AREA)
        self.directory: list[tuple[int, int, int]] = []

    def pack(self, fmt: str, *values: object) -> bytes:
        return struct.pack(self.endian + fmt, *values)

    def add(self, blob: bytes) -> int:
        """Append `blob` (8-aligned) to the data area; returns its offset."""
        self.data += b"\0" * (-len(self.data) % 8)
        rva = len(self.data)
        self.data += blob
        return rva

    def utf16(self, text: str) -> int:
        raw = text.encode("utf-16-le" if self.endian == "<" else "utf-16-be")
        return self.add(self.pack("I", len(raw)) + raw + b"\0\0")

    def utf8(self, text: str, terminated: bool = True) -> int:
        raw = text.encode()
        return self.add(self.pack("I", len(raw)) + raw + (b"\0" if terminated else b""))

    def stream(self, kind: int, blob: bytes) -> int:
        rva = self.add(blob)
        self.directory.append((kind, len(blob), rva))
        return rva

    def entry(self, kind: int, size: int, rva: int) -> None:
        """A directory entry pointing anywhere, for broken dumps."""
        self.directory.append((kind, size, rva))

    def system_info(
        self, arch: int = 9, platform: int = 0x8201, version: tuple[int, int, int] = (0, 0, 0),
        csd: str = "", cpus: int = 4, level: int = 6, revision: int = 0x4601,
        cpu_data: bytes = b"GenuineIntel",
    ) -> None:
        csd_rva = self.utf16(csd)
        self.stream(7, self.pack(
            "HHHBBIIIIIHH24s", arch, level, revision, cpus, 1, *version, platform, csd_rva,
            0, 0, cpu_data,
        ))

    def module(
        self, base: int, size: int, name: str, cv: bytes = b"", timestamp: int = 0,
        ffi: tuple[int, ...] = (0,) * 13,
    ) -> bytes:
        """One MINIDUMP_MODULE record (108 bytes) for a module list."""
        name_rva = self.utf16(name)
        cv_rva = self.add(cv) if cv else 0
        return self.pack("QIIII13IIIII4I", base, size, 0, timestamp, name_rva, *ffi,
                         len(cv), cv_rva, 0, 0, 0, 0, 0, 0)

    def build(self, version: int = 0xA793) -> bytes:
        out = bytearray(self.data)
        header = self.pack("IIIIIIQ", 0x504D444D, version, len(self.directory), 32, 0, 0, 0)
        directory = b"".join(self.pack("III", *d) for d in self.directory)
        assert 32 + len(directory) <= HEADER_AREA
        out[: 32 + len(directory)] = header + directory
        return bytes(out)
