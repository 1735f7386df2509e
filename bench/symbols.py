"""Symbol index cost: build once for a large `.sym` file, then one crash's lookups.

The bench writes a seeded synthetic `.sym` file (--funcs FUNC records, each with
line records, an INLINE record for one in four, and a STACK CFI INIT with two
deltas; about 500 bytes a function, so 1,000,000 functions make about 500 MB), then:

- build: `chalicelib.symfile.index.build_index` in a child process, timed, with the
  child's peak RSS (ru_maxrss) next to that of a child that only imports the module;
- crash: a fresh IndexedSymbols over a counting FileRangeReader does what one crash
  needs for --frames frames in distinct functions (fill_symbol and walk_frame each),
  timed, with the reads and bytes it made. Each answer is checked.

    python -m bench.symbols [--funcs 1000000] [--frames 30] [--unsorted] [--json] [--versions]

Targets: lookups under 1 s reading under 1 MB; build memory under 128 MB.
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


def address_of(i: int) -> int:
    return 0x1000 + i * STEP


def name_of(i: int) -> str:
    return f"synthetic::module_{i % 97}::Type<int, std::string>::method_{i}(int, char const*)"


def write_sym(path: Path, funcs: int, seed: int, unsorted: bool) -> int:
    """Write the synthetic file; returns its size. Streams: memory stays flat."""
    rng = random.Random(seed)
    order = array("I", range(funcs))
    if unsorted:
        rng.shuffle(order)
    with open(path, "w", buffering=1 << 20) as out:
        out.write("MODULE Linux x86_64 0123456789ABCDEF0123456789ABCDEF0 libsynthetic.so\n")
        out.write("INFO CODE_ID 0123456789ABCDEF0123456789ABCDEF\n")
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


def _child(args: list[str]) -> dict[str, Any]:
    result = subprocess.run([sys.executable, "-m", "bench.symbols", *args], check=True,
                            capture_output=True, text=True, cwd=Path(__file__).parents[1])
    return json.loads(result.stdout)


def child_main(argv: list[str]) -> None:
    """In the child: `_build SYM IDX` or `_import`; prints its figures as JSON."""
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


def crash_lookups(index_path: Path, funcs: int, frames: int, seed: int) -> dict[str, Any]:
    from chalicelib.processing.context import Context
    from chalicelib.processing.minidump import Module
    from chalicelib.processing.unwind import Frame
    from chalicelib.symfile.provider import IndexedSymbols
    from chalicelib.symfile.reader import FileRangeReader

    rng = random.Random(seed + 1)
    module = Module(base=0x7F0000000000, size=address_of(funcs), code_file="libsynthetic.so",
                    code_id=None, debug_file="libsynthetic.so", debug_id="0" * 33, version=None)
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


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1].startswith("_"):
        child_main(sys.argv[1:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--funcs", type=int, default=1_000_000)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--unsorted", action="store_true",
                        help="write FUNC and CFI records out of address order")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--versions", action="store_true")
    args = parser.parse_args()
    if args.versions:
        print(f"python {platform.python_version()} on {platform.platform()}")
    with tempfile.TemporaryDirectory() as tmp:
        sym, idx = Path(tmp) / "synthetic.sym", Path(tmp) / "synthetic.idx"
        started = time.perf_counter()
        sym_size = write_sym(sym, args.funcs, args.seed, args.unsorted)
        generate = time.perf_counter() - started
        baseline = _child(["_import"])
        build = _child(["_build", str(sym), str(idx)])
        crash = crash_lookups(idx, args.funcs, args.frames, args.seed)
        result = {
            "funcs": args.funcs, "sym_mb": round(sym_size / 1e6, 1),
            "index_mb": round(idx.stat().st_size / 1e6, 1),
            "generate_seconds": round(generate, 1), "build": build,
            "import_only_peak_rss_mb": baseline["peak_rss_mb"], "crash": crash,
        }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"input: {result['sym_mb']} MB .sym, {args.funcs} FUNCs "
          f"({'unsorted' if args.unsorted else 'address order'}); "
          f"index {result['index_mb']} MB")
    print(f"build: {build['seconds']} s, peak RSS {build['peak_rss_mb']} MB "
          f"(import only: {baseline['peak_rss_mb']} MB)")
    print(f"crash: {crash['frames']} frames in {crash['seconds'] * 1000:.1f} ms, "
          f"{crash['reads']} reads, {crash['bytes_read']} bytes "
          f"({crash['bytes_per_frame']} per frame)")


if __name__ == "__main__":
    main()
