"""Server memory under hostile uploads and large downloads (docs/limits.md).

    python -m bench.hostile_parts [--uploads 16] [--parts 60] [--download-mb 256] [--json]

Each load runs against a fresh local server in its own process (`bench.serve`) on a
SeaweedFS of its own. Its store is built by one ordinary upload first (as `make run`'s
startup check builds it), then its peak RSS (VmHWM) is reset and read after the load:

- hostile: `--uploads` concurrent gzip uploads of `--parts` file parts of 1 MiB of zeros
  (about 70 KB on the wire each); baseline: as many concurrent ordinary uploads of one
  1 MiB dump.
- download: one `--download-mb` MiB dump downloaded from the viewer; baseline: its size.
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import tempfile
import time
import uuid
from pathlib import Path

import requests

from bench.table import Row, emit, ratio
from chalicelib.seaweed import SeaweedServer
from chalicelib.store import ReportStore
from tests.testlib import forms, served
from tests.testlib.viewing import LOGIN, USERS

BUCKET = "bench-hostile"
MIB = 1024 * 1024
BOUND_MIB = 256


def warm(app: served.ServedApp) -> float:
    """One ordinary upload builds the server's store; then its peak is reset. Its RSS."""
    assert served.post_all(app.submit_url, [forms.crashpad_form()])[0][0] == 200
    Path(f"/proc/{app.process.pid}/clear_refs").write_text("5")
    return app.memory_mib("VmRSS")


def load(endpoint: str, uploads: list[tuple[bytes, dict, dict]]) -> dict:
    """Send every upload at once to a fresh server; its RSS figures and the answers."""
    with served.ServedApp(endpoint, BUCKET, f"b-{uuid.uuid4().hex[:8]}/",
                          STORAGE_RETRY_SECONDS="240") as app:
        idle = warm(app)
        started = time.monotonic()
        answers = served.post_all(app.submit_url, uploads)
        seconds = time.monotonic() - started
        peak = app.memory_mib("VmHWM")
    return {"idle_mib": round(idle, 1), "peak_mib": round(peak, 1),
            "growth_mib": round(peak - idle, 1), "seconds": round(seconds, 2),
            "answered_200": sum(status == 200 for status, _ in answers),
            "statuses": sorted({status for status, _ in answers})}


def download(endpoint: str, s3: SeaweedServer, megabytes: int) -> dict:
    """Store one dump of `megabytes` MiB without the server, then download it once."""
    prefix = f"b-{uuid.uuid4().hex[:8]}/"
    report_id, digest = served.store_big_dump(ReportStore(s3.client(), BUCKET, prefix, 60),
                                       megabytes * MIB)
    with served.ServedApp(endpoint, BUCKET, prefix, VIEWER_USERS=USERS) as app:
        idle = warm(app)
        received, started = hashlib.sha256(), time.monotonic()
        with requests.get(f"{app.viewer_url}/reports/{report_id}/dump", headers=LOGIN,
                          stream=True, timeout=300) as reply:
            reply.raise_for_status()
            for chunk in reply.iter_content(MIB):
                received.update(chunk)
        seconds = time.monotonic() - started
        peak = app.memory_mib("VmHWM")
    return {"megabytes": megabytes, "idle_mib": round(idle, 1), "peak_mib": round(peak, 1),
            "growth_mib": round(peak - idle, 1), "seconds": round(seconds, 2),
            "byte_exact": received.hexdigest() == digest}


def measure(uploads: int = 16, parts: int = 60, download_mb: int = 256) -> dict:
    with tempfile.TemporaryDirectory() as data:
        s3 = SeaweedServer(Path(data) / "s3", BUCKET).start()
        try:
            ordinary = [forms.crashpad_form(dump=forms.fake_dump(MIB, seed=n))
                        for n in range(uploads)]
            baseline = load(s3.endpoint, ordinary)
            del ordinary
            hostile_forms = [served.hostile_form(parts) for _ in range(uploads)]
            wire = len(hostile_forms[0][0])
            hostile = load(s3.endpoint, hostile_forms)
            del hostile_forms
            big = download(s3.endpoint, s3, download_mb) if download_mb else None
        finally:
            s3.stop()
    return {"uploads": uploads, "parts": parts, "hostile_wire_bytes": wire,
            "baseline": baseline, "hostile": hostile, "download": big,
            "bound_mib": BOUND_MIB}


def rows(result: dict) -> list[Row]:
    """(figure, value, same-run baseline, ratio) rows of a measure() result."""
    n, parts = result["uploads"], result["parts"]
    base, hostile = result["baseline"], result["hostile"]

    table = [
        (f"hostile parts: server peak RSS growth MiB, {n} x {parts} parts of 1 MiB "
         f"(baseline: {n} x one 1 MiB dump; bound {result['bound_mib']})",
         f"{hostile['growth_mib']}", f"{base['growth_mib']}",
         ratio(hostile["growth_mib"], base["growth_mib"])),
        (f"hostile parts: answered 200 (of {n}; baseline: ordinary uploads answered 200)",
         f"{hostile['answered_200']}", f"{base['answered_200']}",
         ratio(hostile["answered_200"], base["answered_200"])),
        ("hostile parts: burst s (baseline: the ordinary burst)",
         f"{hostile['seconds']}", f"{base['seconds']}",
         ratio(hostile["seconds"], base["seconds"])),
    ]
    big = result.get("download")
    if big:
        table.append((
            f"download of one {big['megabytes']} MiB dump: server peak RSS growth MiB "
            f"(baseline: the dump's size; byte-exact: {big['byte_exact']})",
            f"{big['growth_mib']}", f"{big['megabytes']}",
            ratio(big["growth_mib"], big["megabytes"])))
    return table


def run(uploads: int = 16, parts: int = 60, download_mb: int = 256) -> list[Row]:
    return rows(measure(uploads, parts, download_mb))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--uploads", type=int, default=16)
    parser.add_argument("--parts", type=int, default=60)
    parser.add_argument("--download-mb", type=int, default=256, help="0: no download")
    parser.add_argument("--json", action="store_true", help="print JSON only (with its rows)")
    parser.add_argument("--versions", action="store_true", help="print versions and exit")
    args = parser.parse_args()
    if args.versions:
        print(f"Python {platform.python_version()}, requests {requests.__version__}")
        return
    result = measure(args.uploads, args.parts, args.download_mb)
    emit(result, rows(result), args.json)


if __name__ == "__main__":
    main()
