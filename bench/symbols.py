"""Symbol cost: index a large `.sym` file, upload it through the HTTP routes into
SeaweedFS, and process one crash whose frames land in it, reading the index from S3.

The bench writes a seeded synthetic `.sym` file (--funcs FUNC records, each with
line records, an INLINE record for one in four, and a STACK CFI INIT with two
deltas; about 500 bytes a function, so 1,000,000 functions make about 500 MB), then
runs the --parts asked for:

- local: `chalicelib.symfile.index.build_index` in a child process, timed, with the
  child's peak RSS next to that of a child that only imports the module; then a fresh
  IndexedSymbols over a counting FileRangeReader does what one crash needs for
  --frames frames in distinct functions (fill_symbol and walk_frame each).
- upload: a SeaweedFS and the local-run servers in a child; the file is POSTed as
  symupload v1's form to `/symbols/upload` (streamed, chunked), timed to the answer,
  with the server's S3 requests and its RSS idle and at peak (VmHWM).
- v2: the same file as sym-upload-v2 (`uploads:create`, a PUT to the presigned URL,
  `:complete`) into another prefix of the same bucket, on a fresh server.
- crash: a synthetic amd64 Linux minidump with one module whose BpEL CodeView record
  gives the .sym's debug id, and a crashing thread whose rbp chain holds --frames - 1
  return addresses into distinct functions, processed by `process_dump` with
  `symbols_from(store)` in a fresh child: time, range GETs and bytes, peak RSS, and
  how many frames are named and walked by CFI (each name is checked), once per
  --blocks size. Uploads first (v1) when the upload part did not. bench/symbols_s3.py
  holds these three parts.

    python -m bench.symbols [--parts local upload v2 crash] [--funcs 1000000]
        [--frames 30] [--blocks BYTES ...] [--unsorted] [--json] [--versions]

Targets: lookups under 1 s reading under 1 MB; build and processing memory under 128 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from array import array
from pathlib import Path
from typing import Any

FILES = 5000
ORIGINS = 2000
STEP = 0x180  # bytes of code per synthetic function
CFI = (".cfa: $rsp 8 + .ra: .cfa -8 + ^", ".cfa: $rsp 16 + $rbp: .cfa -16 + ^",
       ".cfa: $rbp 16 +")
DEBUG_FILE = "libsynthetic.so"
DEBUG_ID = "0123456789ABCDEF0123456789ABCDEF0"
# The build id whose GUID reading (u32, u16, u16 little-endian, then 8 bytes) plus
# age 0 is DEBUG_ID.
BUILD_ID = bytes.fromhex("67452301AB89EFCD0123456789ABCDEF")
MODULE_BASE = 0x7F0000000000
PARTS = ("local", "upload", "v2", "crash")
TARGET_SECONDS, TARGET_BYTES, TARGET_RSS_MB = 1.0, 1_000_000, 128.0


def address_of(i: int) -> int:
    return 0x1000 + i * STEP


def name_of(i: int) -> str:
    return f"synthetic::module_{i % 97}::Type<int, std::string>::method_{i}(int, char const*)"


def crash_picks(funcs: int, frames: int, seed: int) -> list[int]:
    """The function of each frame of the S3 crash, frame 0 first."""
    return random.Random(seed + 2).sample(range(funcs), frames)


def write_sym(path: Path, funcs: int, seed: int, unsorted: bool) -> int:
    """Write the synthetic file; returns its size. Streams: memory stays flat."""
    rng = random.Random(seed)
    order = array("I", range(funcs))
    if unsorted:
        rng.shuffle(order)
    with open(path, "w", buffering=1 << 20) as out:
        out.write(f"MODULE Linux x86_64 {DEBUG_ID} {DEBUG_FILE}\n")
        out.write(f"INFO CODE_ID {BUILD_ID.hex().upper()}\n")
        for f in range(FILES):
            out.write(f"FILE {f} /build/src/synthetic/dir_{f % 50}/file_{f}.cc\n")
        for o in range(ORIGINS):
            out.write(f"INLINE_ORIGIN {o} synthetic::inlined_helper_{o}<T>()\n")
        for i in order:
            base = address_of(i)
            chunk = [f"FUNC {base:x} {STEP - 0x10:x} 0 {name_of(i)}\n"]
            if i % 4 == 0:
                chunk.append(f"INLINE 0 {i % 900 + 1} {i % FILES} {i % ORIGINS} "
                             f"{base + 0x20:x} 30\n")
            file_id = rng.randrange(FILES)
            for k in range(11):
                chunk.append(f"{base + k * 0x20:x} 20 {i % 5000 + k + 1} {file_id}\n")
            out.write("".join(chunk))
        for i in order:
            base = address_of(i)
            out.write(f"STACK CFI INIT {base:x} {STEP - 0x10:x} {CFI[0]}\n"
                      f"STACK CFI {base + 1:x} {CFI[1]}\nSTACK CFI {base + 4:x} {CFI[2]}\n")
    return path.stat().st_size


def _child(args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    result = subprocess.run([sys.executable, "-m", "bench.symbols", *args], check=True,
                            capture_output=True, text=True, cwd=Path(__file__).parents[1],
                            env=env)
    return json.loads(result.stdout.strip().splitlines()[-1])


def status_mb(field: str, pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def child_main(argv: list[str]) -> None:
    """In a child: `_build SYM IDX`, `_import`, `_serve` or `_crash DUMP FUNCS FRAMES SEED`;
    prints its figures as JSON."""
    if argv[0] in ("_serve", "_crash"):
        from bench import symbols_s3

        if argv[0] == "_serve":
            symbols_s3.serve_main()
        else:
            print(json.dumps(symbols_s3.crash_main(Path(argv[1]), *map(int, argv[2:6]))))
        return
    from chalicelib.symfile.index import build_index

    figures: dict[str, Any] = {}
    if argv[0] == "_build":
        started = time.perf_counter()
        with open(argv[1], "rb") as sym, open(argv[2], "wb") as out:
            header = build_index(sym, out, tmp_dir=os.path.dirname(argv[2]))
        figures["seconds"] = round(time.perf_counter() - started, 2)
        figures["input_sorted"] = all(t["input_sorted"] for t in header["tables"].values())
        figures["counts"] = {name: t["count"] for name, t in header["tables"].items()}
    figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(figures))


# -- local: the index on disk ----------------------------------------------------------


def crash_lookups(index_path: Path, funcs: int, frames: int, seed: int) -> dict[str, Any]:
    from chalicelib.processing.context import Context
    from chalicelib.processing.minidump import Module
    from chalicelib.processing.unwind import Frame
    from chalicelib.symfile.provider import IndexedSymbols
    from chalicelib.symfile.reader import FileRangeReader

    rng = random.Random(seed + 1)
    module = Module(base=MODULE_BASE, size=address_of(funcs), code_file=DEBUG_FILE,
                    code_id=None, debug_file=DEBUG_FILE, debug_id=DEBUG_ID, version=None)
    reader = FileRangeReader(index_path)
    symbols = IndexedSymbols(lambda m: reader)

    class Stack:
        def read(self, address: int, size: int) -> bytes:
            return (address & 0xFFFF_FFFF).to_bytes(size, "little")

    picks = rng.sample(range(funcs), frames)
    started = time.perf_counter()
    for n, i in enumerate(picks):
        pc = module.base + address_of(i) + 0x25
        frame = Frame(context=Context("amd64", {"rip": pc, "rsp": 0x7000, "rbp": 0x8000}),
                      trust="context" if n == 0 else "cfi")
        symbols.fill_symbol(module, frame)
        caller = symbols.walk_frame(module, frame, Stack())  # type: ignore[arg-type]
        assert frame.function == name_of(i), (frame.function, i)
        assert frame.line is not None and caller is not None and caller["rsp"] == 0x8010
    seconds = time.perf_counter() - started
    reader.close()
    return {"frames": frames, "seconds": round(seconds, 4), "reads": reader.reads,
            "bytes_read": reader.bytes_read, "bytes_per_frame": reader.bytes_read // frames}


def local_part(sym: Path, args: argparse.Namespace) -> dict[str, Any]:
    idx = sym.with_suffix(".idx")
    baseline = _child(["_import"])
    build = _child(["_build", str(sym), str(idx)])
    crash = crash_lookups(idx, args.funcs, args.frames, args.seed)
    result = {"index_mb": round(idx.stat().st_size / 1e6, 1), "build": build,
              "import_only_peak_rss_mb": baseline["peak_rss_mb"], "crash": crash}
    idx.unlink()
    return result


# -- the report ------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def show(result: dict[str, Any], args: argparse.Namespace) -> None:
    print(f"input: {result['sym_mb']} MB .sym, {args.funcs} FUNCs "
          f"({'unsorted' if args.unsorted else 'address order'}), "
          f"written in {result['generate_seconds']} s")
    if "local" in result:
        local, build, crash = result["local"], result["local"]["build"], result["local"]["crash"]
        print(f"local build: {build['seconds']} s, index {local['index_mb']} MB, peak RSS "
              f"{build['peak_rss_mb']} MB (import only: {local['import_only_peak_rss_mb']} MB)")
        print(f"local crash: {crash['frames']} frames in {crash['seconds'] * 1000:.1f} ms, "
              f"{crash['reads']} reads, {crash['bytes_read']} bytes "
              f"({crash['bytes_per_frame']} per frame)")
    for name in ("upload", "v2"):
        if name in result:
            up = result[name]
            split = (f" (PUT {up['put_seconds']} s, :complete {up['complete_seconds']} s)"
                     if name == "v2" else "")
            print(f"{name}: {up['seconds']} s{split}, answer {up['answer']!r}; server RSS "
                  f"{up['server_idle_rss_mb']} MB idle, {up['server_peak_rss_mb']} MB peak; "
                  f"S3 {up['s3_requests']}")
            print(f"  server memory under {TARGET_RSS_MB:.0f} MB: "
                  f"{verdict(up['server_peak_rss_mb'] < TARGET_RSS_MB)}")
    for crash in result.get("crash", []):
        print(f"crash, S3RangeReader blocks of {crash['block']} bytes: peak RSS "
              f"{crash['peak_rss_mb']} MB ({crash['rss_before_mb']} MB before processing)")
        for run in ("first", "second"):
            c = crash[run]
            print(f"  {run} in its process: {c['seconds'] * 1000:.0f} ms ("
                  f"{c['s3_seconds'] * 1000:.0f} ms in range GETs), {c['frames']} frames, "
                  f"{c['named']} named, {c['cfi']} by CFI; {c['range_gets']} range GETs, "
                  f"{c['bytes_read']} bytes; S3 {c['s3_requests']}")
        first = crash["first"]
        print(f"  time under {TARGET_SECONDS:.0f} s: {verdict(first['seconds'] < TARGET_SECONDS)};"
              f" read under 1 MB: {verdict(first['bytes_read'] < TARGET_BYTES)}; memory under "
              f"{TARGET_RSS_MB:.0f} MB: {verdict(crash['peak_rss_mb'] < TARGET_RSS_MB)}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1].startswith("_"):
        child_main(sys.argv[1:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--funcs", type=int, default=1_000_000)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--blocks", type=int, nargs="+", metavar="BYTES",
                        help="crash: run once per S3RangeReader block size (default: its own)")
    parser.add_argument("--unsorted", action="store_true",
                        help="write FUNC and CFI records out of address order")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--versions", action="store_true")
    args = parser.parse_args()
    if args.versions:
        print(f"python {platform.python_version()} on {platform.platform()}")
    with tempfile.TemporaryDirectory() as tmp:
        sym = Path(tmp) / "synthetic.sym"
        started = time.perf_counter()
        sym_size = write_sym(sym, args.funcs, args.seed, args.unsorted)
        result: dict[str, Any] = {
            "funcs": args.funcs, "sym_mb": round(sym_size / 1e6, 1),
            "generate_seconds": round(time.perf_counter() - started, 1),
        }
        if "local" in args.parts:
            result["local"] = local_part(sym, args)
        if set(args.parts) & {"upload", "v2", "crash"}:
            from bench.symbols_s3 import s3_parts

            result.update(s3_parts(sym, Path(tmp), args))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        show(result, args)


if __name__ == "__main__":
    main()
