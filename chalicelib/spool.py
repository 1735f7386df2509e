"""Where one request's uploaded file parts wait before they are stored.

Memory holds them while the request's budget lasts; past it they go to one anonymous
temporary file that all parts of the request share, so a request holds at most its
budget in memory and one file descriptor, whatever the number or size of its parts.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from typing import Any, BinaryIO


class Spool:
    """Where one request's file parts go: memory while the request's budget lasts, then
    one temporary file that all of its parts share (one descriptor per request)."""

    def __init__(self, budget: int) -> None:
        self.left = budget
        self.file: SharedFile | None = None

    def writer(self) -> PartWriter:
        return PartWriter(self)

    def disk(self) -> SharedFile:
        if self.file is None:
            self.file = SharedFile()
        return self.file

    def close(self) -> None:
        """Parsing is over: the file lives on only while a part reads from it."""
        if self.file is not None:
            self.file.release()


class SharedFile:
    """An anonymous temporary file written at its end, read by position (os.pread), and
    closed when its last reader is."""

    def __init__(self) -> None:
        self.file = tempfile.TemporaryFile()
        self.fd = self.file.fileno()
        self.end = 0
        self.users = 1

    def append(self, data: bytes | memoryview) -> None:
        self.file.write(data)
        self.end += len(data)

    def open(self, start: int, size: int) -> BinaryIO:
        self.file.flush()
        self.users += 1
        return io.BufferedReader(Window(self, start, size))  # type: ignore[return-value]

    def release(self) -> None:
        self.users -= 1
        if self.users == 0:
            self.file.close()


class Window(io.RawIOBase):
    """Bytes [start, start + size) of a shared file, as a seekable stream of its own."""

    def __init__(self, shared: SharedFile, start: int, size: int) -> None:
        self.shared = shared
        self.start = start
        self.size = size
        self.position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = min(len(buffer), self.size - self.position)
        if count <= 0:
            return 0
        data = os.pread(self.shared.fd, count, self.start + self.position)
        buffer[: len(data)] = data
        self.position += len(data)
        return len(data)

    def readall(self) -> bytes:
        """The rest in one read: no list of blocks joined into a second copy."""
        data = os.pread(self.shared.fd, max(0, self.size - self.position),
                        self.start + self.position)
        self.position += len(data)
        return data

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def tell(self) -> int:
        return self.position

    def close(self) -> None:
        if not self.closed:
            self.shared.release()
        super().close()



class PartWriter:
    """One file part as it arrives: in memory while the request's budget covers it,
    then appended to the request's shared file (parts arrive one after the other)."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        self.memory: io.BytesIO | None = io.BytesIO()
        self.start = 0
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self.digest.update(data)
        self.size += len(data)
        if self.memory is not None:
            if len(data) <= self.spool.left:
                self.memory.write(data)
                self.spool.left -= len(data)
                return
            self._to_disk()
        self.spool.disk().append(data)

    def _to_disk(self) -> None:
        assert self.memory is not None
        shared = self.spool.disk()
        self.start = shared.end
        held = self.memory.getvalue()
        self.memory.close()
        self.memory = None
        self.spool.left += len(held)
        shared.append(held)

    def finish(self) -> BinaryIO:
        """The part's bytes, rewound: a BytesIO, or a window on the shared file."""
        if self.memory is not None:
            self.memory.seek(0)
            return self.memory
        return self.spool.disk().open(self.start, self.size)
