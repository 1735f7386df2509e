"""The minidump reader on damaged input: truncated copies of every fixture, random
bytes and random mutations of real dumps. Nothing but MinidumpError may escape, and
what is read must be safe to use (memory reads, module lookups)."""

from __future__ import annotations

import io
import struct
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.processing.minidump import Memory, Minidump, MinidumpError, read_minidump
from tests.processing.conftest import DUMP_NAMES, MINIDUMPS
from tests.processing.dumpbuilder import DumpBuilder

FUZZ = settings(
    max_examples=120, deadline=None, database=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
KNOWN_STREAMS = [3, 4, 5, 6, 7, 9, 14, 15, 24, 0x47670001, 0x47670002, 0x47670003,
                 0x47670004, 0x47670005, 0x47670009, 0x43500001, 0x4D7A0001, 0x4D7A0002]


def read_or_error(blob: bytes) -> Minidump | None:
    """The dump, or None for MinidumpError; then use it as the processor would."""
    try:
        dump = read_minidump(io.BytesIO(blob))
    except MinidumpError as exc:
        assert exc.kind in {"TRUNCATED", "INVALID_HEADER", "INVALID_STREAM_DIRECTORY",
                            "NO_STREAMS"}
        return None
    assert not [w for w in dump.warnings if "internal error" in w]
    assert len(dump.warnings) <= 101
    for thread in dump.threads:
        points = [thread.stack_base, thread.stack_base + thread.stack_size - 8]
        if thread.context is not None:
            points += [thread.context.sp, thread.context.pc]
        for address in points:
            if dump.memory is not None:
                dump.memory.read(address, 64)
                dump.memory.read_pointer(address, 8)
                dump.memory.range_at(address)
            dump.modules.module_at(address)
    if dump.exception is not None:
        dump.modules.module_at(dump.exception.address)
    return dump


def cut_points(size: int) -> list[int]:
    return sorted({0, 3, 4, 31, 32, 33, 44, 100, 1000, size // 3, size // 2, size - 4096,
                   size - 1} & set(range(size)))


@pytest.mark.parametrize("name", DUMP_NAMES)
def test_truncated_copies(name):
    data = (MINIDUMPS / name).read_bytes()
    results = [read_or_error(data[:cut]) for cut in cut_points(len(data))]
    assert results[0] is None  # the empty file
    for dump in results:
        if dump is not None and name != "corrupt-invalid-stream-range.dmp":
            # A cut dump keeps what lies before the cut and says what it lost.
            assert dump.warnings
            assert dump.size < len(data)


def test_truncation_keeps_what_lies_before_the_cut():
    data = (MINIDUMPS / "linux-x86_64-breakpad-sigsegv.dmp").read_bytes()
    dump = read_or_error(data[:20000])  # the thread list is written last, at 26928
    assert dump.system_info.os == "Linux" and len(dump.modules) == 8
    assert dump.modules[0].debug_id == "C0BCC3F19827FE653058404B2831D9E60"
    assert dump.threads == []
    assert "ThreadList: the stream at offset 0x6930 (52 bytes) lies outside the file" in (
        dump.warnings
    )


@FUZZ
@given(st.binary(max_size=600), st.sampled_from([b"", b"MDMP", b"PMDM"]))
def test_random_bytes(tail, prefix):
    read_or_error(prefix + tail)


@st.composite
def random_directories(draw):
    """A valid header and a directory of known stream types pointing at random bytes."""
    body = draw(st.binary(min_size=0, max_size=1500))
    count = draw(st.integers(1, 8))
    limit = 32 + 12 * count + len(body) + 64
    entries = [
        (draw(st.sampled_from(KNOWN_STREAMS)), draw(st.integers(0, limit)),
         draw(st.integers(0, limit)))
        for _ in range(count)
    ]
    endian = draw(st.sampled_from(["<", ">"]))
    header = struct.pack(endian + "IIIIIIQ", 0x504D444D, 0xA793, count, 32, 0, 0, 0)
    return header + b"".join(struct.pack(endian + "III", *e) for e in entries) + body


@FUZZ
@given(random_directories())
def test_random_streams(blob):
    read_or_error(blob)


MUTATED = {name: (MINIDUMPS / name).read_bytes() for name in (
    "linux-x86_64-breakpad-sigsegv.dmp",
    "windows-x86-breakpad-access-violation.dmp",
    "windows-x86_64-sentry-native-access-violation.dmp",
)}


@st.composite
def mutated_dumps(draw):
    data = bytearray(MUTATED[draw(st.sampled_from(sorted(MUTATED)))])
    for _ in range(draw(st.integers(1, 12))):
        # Header and directory often, anywhere else sometimes; whole u32 values, so
        # counts, sizes and offsets take wild values.
        end = draw(st.sampled_from([160, 2048, len(data) - 4]))
        at = draw(st.integers(0, end)) & ~3
        value = draw(st.one_of(st.integers(0, 0xFFFFFFFF), st.sampled_from(
            [0, 1, 0x7FFFFFFF, 0xFFFFFFFF, len(data), len(data) - 1, 0x10000])))
        data[at : at + 4] = struct.pack("<I", value)
    return bytes(data)


@FUZZ
@given(mutated_dumps())
def test_mutated_real_dumps(blob):
    read_or_error(blob)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 64), st.binary(max_size=40)), max_size=6),
       st.lists(st.tuples(st.integers(0, 0x500), st.integers(0, 48)), max_size=20))
def test_memory_reads_match_a_model(blocks, reads):
    ranges, model, address = [], {}, 0x100
    for gap, data in blocks:
        address += gap
        ranges.append((address, data))
        for i, byte in enumerate(data):
            model[address + i] = (byte, address)
        address += len(data)
    memory = Memory.from_bytes(reversed(ranges))
    for start, size in reads:
        owners = {model.get(a, (None, None))[1] for a in range(start, start + size)}
        expected = None
        if size == 0:
            expected = b"" if start in model else None
        elif len(owners) == 1 and None not in owners:
            expected = bytes(model[a][0] for a in range(start, start + size))
        assert memory.read(start, size) == expected


def test_a_large_full_memory_dump_costs_little_memory(tmp_path):
    b = DumpBuilder()
    b.system_info(arch=9, platform=2, version=(10, 0, 19041))
    memory_at = len(b.data) + 4096
    b.stream(9, struct.pack("<QQ", 2, memory_at) + struct.pack("<QQ", 0x10000, 100 << 20)
             + struct.pack("<QQ", 0x7FFF0000, 4096))
    blob = b.build()
    path = tmp_path / "full.dmp"
    with path.open("wb") as f:
        f.write(blob.ljust(memory_at, b"\0"))
        f.truncate(memory_at + (100 << 20) + 4096)  # sparse: costs no disk
        f.seek(memory_at + (100 << 20) - 8)
        f.write(b"lastword")
        f.write(b"S" * 4096)
    tracemalloc.start()
    try:
        with path.open("rb") as f:
            dump = read_minidump(f)
            assert dump.size == memory_at + (100 << 20) + 4096
            assert dump.memory.read(0x10000 + (100 << 20) - 8, 8) == b"lastword"
            assert dump.memory.read(0x10000 + (50 << 20), 16) == b"\0" * 16
            assert dump.memory.read(0x7FFF0000, 4096) == b"S" * 4096
            assert dump.memory.read(0x10000 + (100 << 20) - 4, 8) is None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 << 20
