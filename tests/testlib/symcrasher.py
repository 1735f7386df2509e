"""A crasher with a known call chain, built optimised with debug info, and its symbols.

``symcrasher.c`` crashes in ``crash_now`` called through ``CHAIN``; built with
``-O2 -g -fomit-frame-pointer`` only CFI finds the callers, so a walk with its
.sym file names each frame. It takes the same arguments as ``crasher.c``, so a
real Crashpad handler dumps and uploads it:

    exe = build_symcrasher(build_dir)
    symbols = breakpad.dump_symbols(exe, symbols_dir)
    report = crashpad_client.crash_and_upload(url, workdir, crasher=exe)

CLI (builds, writes the .sym file, prints its MODULE fields)::

    python -m tests.testlib.symcrasher BUILD_DIR SYMBOLS_DIR
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.testlib import breakpad

SOURCE = Path(__file__).with_name("symcrasher.c")
NAME = "symcrasher"  # the file name, hence the MODULE line's name
FLAGS = ("-O2", "-g", "-fomit-frame-pointer", "-Wall", "-Wextra", "-Werror")
CHAIN = ("crash_now", "load_section", "parse_config", "main")  # innermost first


def build_symcrasher(build_dir: Path | str) -> Path:
    """Compile symcrasher.c into `build_dir/<source hash>/symcrasher`, reused while
    the source and flags are unchanged. Raises FileNotFoundError without gcc."""
    gcc = shutil.which("gcc")
    if gcc is None:
        raise FileNotFoundError("gcc not found")
    digest = hashlib.sha256(SOURCE.read_bytes() + " ".join(FLAGS).encode()).hexdigest()[:12]
    exe = Path(build_dir) / digest / NAME
    if not exe.exists():
        exe.parent.mkdir(parents=True, exist_ok=True)
        partial = exe.with_name(f".{NAME}.{os.getpid()}.tmp")
        subprocess.run([gcc, *FLAGS, "-o", str(partial), str(SOURCE)],
                       check=True, capture_output=True)
        # The output name lands in no debug info, so the rename changes no byte.
        os.replace(partial, exe)
    return exe


def build_with_symbols(build_dir: Path | str, symbols_dir: Path | str
                       ) -> tuple[Path, breakpad.SymbolFile]:
    """The built crasher and its .sym file under `symbols_dir` (stackwalk's layout)."""
    exe = build_symcrasher(build_dir)
    return exe, breakpad.dump_symbols(exe, Path(symbols_dir))


if __name__ == "__main__":
    exe, symbols = build_with_symbols(Path(sys.argv[1]), Path(sys.argv[2]))
    print(exe)
    print(symbols.path, symbols.os, symbols.cpu, symbols.debug_id, symbols.name)
