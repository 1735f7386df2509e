"""Shared helpers for the crash processing tests: the real minidump fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from chalicelib.processing.minidump import Minidump, read_minidump

MINIDUMPS = Path(__file__).resolve().parent.parent / "fixtures" / "minidumps"
DUMP_NAMES = sorted(p.name for p in MINIDUMPS.glob("*.dmp"))


@pytest.fixture
def open_dump() -> Iterator:
    """open_dump(name) -> Minidump read from the fixture file, kept open for memory reads."""
    files = []

    def _open(name: str) -> Minidump:
        f = (MINIDUMPS / name).open("rb")
        files.append(f)
        return read_minidump(f)

    yield _open
    for f in files:
        f.close()
