"""Breakpad's tools for tests: minidump_stackwalk (the reference the walker's tests
compare against), dump_syms (writes .sym files) and symupload (the symbol upload client).

All come from npm's `minidump` package, looked for under the repository root's
`node_modules/` (git-ignored) and installed there once when missing. The package ships
minidump_stackwalk and dump_syms prebuilt; symupload is compiled with g++ from the
Breakpad source inside the package and cached under `node_modules/.cache/`. Tests skip
only when npm (or, for symupload, g++) is absent. Usable from the shell too:

    python -m tests.testlib.breakpad tests/fixtures/minidumps/some.dmp
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE = REPO_ROOT / "node_modules" / "minidump"
VERSION = "0.26.0"  # the package (and Breakpad build) the expectations were checked with
PLATFORM_DIRS = {
    ("Linux", "x86_64"): "linux-x64",
    ("Darwin", "x86_64"): "darwin-x64",
    ("Darwin", "arm64"): "darwin-arm64",
}

# "Found by:" lines in the human-readable output, as trust names.
TRUST = {
    "given as instruction pointer in context": "context",
    "call frame info": "cfi",
    "call frame info with scanning": "cfi_scan",
    "previous frame's frame pointer": "frame_pointer",
    "stack scanning": "scan",
    "simulating a return from leaf function": "leaf",
    "inline record": "inline",
}


@dataclasses.dataclass
class BreakpadFrame:
    index: int
    module: str | None          # None when no module holds the address
    offset: int | None          # from the module's base, else the address; None with symbols
    registers: dict[str, int]   # the ones Breakpad knows for this frame
    trust: str                  # "inline" for a function inlined into the next frame
    function: str | None = None


def package_dir() -> Path:
    """The installed `minidump` package, installing it on first use.

    Calls pytest.skip when npm is absent; raises RuntimeError when npm fails.
    """
    if not (PACKAGE / "package.json").exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is not installed: cannot fetch npm's minidump package")
        done = subprocess.run(
            [npm, "install", "--ignore-scripts", "--no-save", "--prefix", str(REPO_ROOT),
             f"minidump@{VERSION}"],
            capture_output=True, text=True, timeout=600,
        )
        if done.returncode != 0 or not (PACKAGE / "package.json").exists():
            raise RuntimeError(f"npm install minidump failed:\n{done.stdout}\n{done.stderr}")
    return PACKAGE


def _prebuilt(name: str) -> Path:
    system_dir = PLATFORM_DIRS.get((platform.system(), platform.machine()))
    if system_dir is None:
        pytest.skip(f"npm's minidump package has no {name} for {platform.platform()}")
    binary = package_dir() / "bin" / system_dir / name
    if not binary.exists():
        raise RuntimeError(f"npm's minidump package has no {binary}")
    return binary


def stackwalk_binary() -> Path:
    """The minidump_stackwalk binary; skips when npm is absent or the platform unknown."""
    return _prebuilt("minidump_stackwalk")


def dump_syms_binary() -> Path:
    """The dump_syms binary (on Linux it reads ELF with DWARF and writes a .sym file)."""
    return _prebuilt("dump_syms")


@dataclasses.dataclass(frozen=True)
class SymbolFile:
    """A .sym file and the fields of its first line, `MODULE <os> <cpu> <id> <name>`."""
    path: Path
    os: str
    cpu: str
    debug_id: str
    name: str
    code_id: str | None  # from the `INFO CODE_ID` line, when there is one


def dump_symbols(binary: Path, symbols_dir: Path, *, cfi: bool = True) -> SymbolFile:
    """Run dump_syms on `binary` and store its output as
    `symbols_dir/<name>/<debug id>/<name>.sym`, the tree minidump_stackwalk reads."""
    done = subprocess.run(
        [str(dump_syms_binary()), *([] if cfi else ["-c"]), str(binary)],
        capture_output=True, timeout=300, check=True,
    )
    text = done.stdout
    first, _, rest = text.partition(b"\n")
    fields = first.decode().split(" ")
    if len(fields) != 5 or fields[0] != "MODULE":
        raise RuntimeError(f"dump_syms wrote no MODULE line for {binary}: {first!r}")
    _, os_name, cpu, debug_id, name = fields
    code_id = None
    second = rest.partition(b"\n")[0].decode(errors="replace").split(" ")
    if second[:2] == ["INFO", "CODE_ID"] and len(second) > 2:
        code_id = second[2]
    path = Path(symbols_dir) / name / debug_id / f"{name}.sym"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text)
    return SymbolFile(path, os_name, cpu, debug_id, name, code_id)


# What Breakpad's own build links into sym_upload (its Makefile.am), relative to src/.
SYMUPLOAD_SOURCES = (
    "tools/linux/symupload/sym_upload.cc",
    "common/linux/symbol_upload.cc",
    "common/linux/symbol_collector_client.cc",
    "common/linux/libcurl_wrapper.cc",
    "common/linux/http_upload.cc",
    "common/path_helper.cc",
)
# libcurl itself is found with dlopen() when the tool runs, so only libdl is linked.
SYMUPLOAD_FLAGS = ("-std=c++17", "-O2", "-w")


def symupload_binary() -> Path:
    """Breakpad's Linux symupload (`sym_upload`), compiled on first use.

    The binary is cached under `node_modules/.cache/breakpad-tools/`, named by a hash
    of the sources and flags. At run time it needs libcurl (Debian's libcurl4).
    Calls pytest.skip when g++ is absent.
    """
    source_root = package_dir() / "deps" / "breakpad" / "src"
    gxx = shutil.which("g++")
    if gxx is None:
        pytest.skip("g++ is not installed: cannot build Breakpad's symupload")
    digest = hashlib.sha256(" ".join(SYMUPLOAD_FLAGS).encode())
    for relative in SYMUPLOAD_SOURCES:
        for path in (source_root / relative, (source_root / relative).with_suffix(".h")):
            if path.exists():
                digest.update(relative.encode() + b"\0" + path.read_bytes())
    cache = REPO_ROOT / "node_modules" / ".cache" / "breakpad-tools"
    binary = cache / f"sym_upload-{digest.hexdigest()[:16]}"
    if binary.exists():
        return binary
    cache.mkdir(parents=True, exist_ok=True)
    partial = cache / f".{binary.name}.{os.getpid()}.tmp"
    done = subprocess.run(
        [gxx, *SYMUPLOAD_FLAGS, "-I", str(source_root),
         *(str(source_root / relative) for relative in SYMUPLOAD_SOURCES),
         "-o", str(partial), "-ldl"],
        capture_output=True, text=True, timeout=600,
    )
    if done.returncode != 0:
        partial.unlink(missing_ok=True)
        raise RuntimeError(f"building symupload failed:\n{done.stderr}")
    os.replace(partial, binary)  # atomic: parallel builders never see half a binary
    return binary


def crashing_thread(dump: Path, symbols: Path | None = None) -> list[BreakpadFrame]:
    """The crashing thread's frames as minidump_stackwalk walks them, with the symbol
    files under `symbols` (module/debug id/module.sym) when given."""
    threads = parse_threads(_run(["-c", str(dump), *([str(symbols)] if symbols else [])]))
    return next(iter(threads.values()), [])


def threads(dump: Path) -> dict[int, list[BreakpadFrame]]:
    """Every thread's frames by thread index (the dump's thread list order), walked
    without symbols."""
    return parse_threads(_run([str(dump)]))


def _run(arguments: list[str]) -> str:
    done = subprocess.run(
        [str(stackwalk_binary()), *arguments],
        capture_output=True, text=True, timeout=120, check=True,
    )
    return done.stdout


THREAD_LINE = re.compile(r"^Thread (\d+)")
FRAME_LINE = re.compile(r"^\s*(\d+)  (\S.*)$")
ADDRESS = re.compile(r"^0x([0-9a-f]+)$")
MODULE_OFFSET = re.compile(r"^([^!]+) \+ 0x([0-9a-f]+)$")
# module!function, then " [file : line + 0x..]" or " + 0x.." (trimmed off)
FUNCTION = re.compile(r"^([^!]+)!(.+?)(?: \[.* : \d+ \+ 0x[0-9a-f]+\]| \+ 0x[0-9a-f]+)?$")
REGISTER = re.compile(r"(\w+) = 0x([0-9a-f]+)")


def parse_threads(output: str) -> dict[int, list[BreakpadFrame]]:
    """Frames per thread from the human-readable output."""
    result: dict[int, list[BreakpadFrame]] = {}
    frames: list[BreakpadFrame] | None = None
    for line in output.splitlines():
        thread = THREAD_LINE.match(line)
        if thread:
            frames = result.setdefault(int(thread.group(1)), [])
            continue
        if frames is None:
            continue
        if line.startswith("Loaded modules"):
            break
        match = FRAME_LINE.match(line)
        if match:
            frames.append(_frame(int(match.group(1)), match.group(2).rstrip()))
        elif frames and "Found by:" in line:
            frames[-1].trust = TRUST.get(line.split("Found by:", 1)[1].strip(), "unknown")
        elif frames:
            frames[-1].registers.update(
                (name, int(value, 16)) for name, value in REGISTER.findall(line)
            )
    return result


def _frame(index: int, text: str) -> BreakpadFrame:
    frame = BreakpadFrame(index=index, module=None, offset=None, registers={}, trust="unknown")
    if match := ADDRESS.match(text):
        frame.offset = int(match.group(1), 16)
    elif match := MODULE_OFFSET.match(text):
        frame.module, frame.offset = match.group(1), int(match.group(2), 16)
    elif match := FUNCTION.match(text):
        frame.module, frame.function = match.groups()
    return frame


if __name__ == "__main__":
    for frame in crashing_thread(Path(sys.argv[1])):
        print(frame.index, frame.module, frame.offset, frame.function, frame.trust)
