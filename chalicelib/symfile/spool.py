"""Fixed-width records spooled to a temporary file, then read back sorted.

Each record starts with its key in big-endian, so byte order is key order. Records
that arrive in order (as dump_syms writes each section) stream straight through;
otherwise the spool sorts runs of RUN_RECORDS in memory and merges them from disk, so
memory stays bounded whatever the input size.
"""

from __future__ import annotations

import heapq
import tempfile
from collections.abc import Iterator

RUN_RECORDS = 200_000
_READ_RECORDS = 4096


class Spool:
    """Append records of `width` bytes; iterate them back in byte (key) order."""

    def __init__(self, width: int, directory: str | None = None,
                 run_records: int | None = None) -> None:
        self.width = width
        self.count = 0
        self.sorted = True
        self.run_records = run_records or RUN_RECORDS
        self._last = b""
        self._dir = directory
        self._file = tempfile.TemporaryFile(dir=directory)
        self._buffer = bytearray()
        self._runs: list[tempfile._TemporaryFileWrapper] = []  # type: ignore[type-arg]

    def append(self, record: bytes) -> None:
        if len(record) != self.width:
            raise ValueError("record width")
        if self.sorted and record < self._last:
            self.sorted = False
        self._last = record
        self._buffer += record
        self.count += 1
        if len(self._buffer) >= 1 << 20:
            self._file.write(self._buffer)
            self._buffer.clear()

    def __iter__(self) -> Iterator[bytes]:
        """The records in key order. Consumes the spool."""
        self._file.write(self._buffer)
        self._buffer = bytearray()
        self._file.seek(0)
        if self.sorted:
            yield from self._read_all(self._file)
        else:
            self._make_runs()
            yield from heapq.merge(*(self._read_all(run) for run in self._runs))
        self.close()

    def _read_all(self, file) -> Iterator[bytes]:  # type: ignore[no-untyped-def]
        width = self.width
        while True:
            chunk = file.read(width * _READ_RECORDS)
            if not chunk:
                return
            for offset in range(0, len(chunk), width):
                yield chunk[offset:offset + width]

    def _make_runs(self) -> None:
        width = self.width
        while True:
            chunk = self._file.read(width * self.run_records)
            if not chunk:
                break
            records = sorted(chunk[i:i + width] for i in range(0, len(chunk), width))
            run = tempfile.TemporaryFile(dir=self._dir)
            run.write(b"".join(records))
            run.seek(0)
            self._runs.append(run)
        self._file.close()

    def close(self) -> None:
        for file in [self._file, *self._runs]:
            try:
                file.close()
            except OSError:
                pass
        self._runs = []


def drop_overlaps(records: Iterator[bytes], start_end) -> Iterator[bytes]:  # type: ignore[no-untyped-def]
    """Records sorted by (start, end) without those that overlap an earlier one kept:
    one answer per address, the first range starting there."""
    last_end = -1
    for record in records:
        start, end = start_end(record)
        if start < last_end:
            continue
        last_end = end
        yield record
