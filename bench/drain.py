"""Graceful stop of the local run: how long SIGTERM takes with uploads under way.

    python -m bench.drain [--uploads 16] [--dump-mb 2] [--json] [--versions]

Starts `python -m chalicelib.localrun` (embedded SeaweedFS, as `make run`) twice in a temp
dir. A burst is `--uploads` clients, each sending a Crashpad-like gzip form of a
`--dump-mb` random dump chunked; it is timed from the moment every client has sent its
first chunk to the last answer. In the first run: one upload alone (the median of three),
a burst without a stop (the baseline of the drain), then SIGTERM to exit with nothing
under way. In the second: a burst with SIGTERM sent when every client has sent its first
chunk, timed to the last answer and to the process's exit. It then reads the bucket back
through a fresh SeaweedFS and counts the reports stored byte-exact (by the dump's SHA-256
in each report's metadata).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

from bench.table import Row, emit
from chalicelib.seaweed import SeaweedServer, free_port
from tests.testlib import forms

BUCKET = "bench-drain"


def start_run(data: Path) -> tuple[subprocess.Popen, str]:
    """A local run on free ports; returns it (ready) and its submit URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"SUBMIT_SERVER_PORT": str(port), "REPORTS_SERVER_PORT": str(free_port()),
                "LOCAL_S3_PORT": str(free_port()), "REPORTS_BUCKET": BUCKET,
                "PROCESSING_WORKERS": "0"})
    process = subprocess.Popen(
        [sys.executable, "-m", "chalicelib.localrun", "--data", str(data)], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    for line in process.stdout:
        if line.startswith("Ctrl-C stops"):
            threading.Thread(target=process.stdout.read, daemon=True).start()
            return process, f"http://127.0.0.1:{port}/submit"
    raise RuntimeError(f"local run exited with {process.wait()}")


def stop_run(process: subprocess.Popen) -> float:
    """SIGTERM; seconds until the process has exited."""
    started = time.perf_counter()
    process.send_signal(signal.SIGTERM)
    process.wait(120)
    return time.perf_counter() - started


def upload(url: str, form: tuple[bytes, dict, dict], on_first_chunk=None) -> requests.Response:
    body, headers, query = form

    def chunks():
        for n, chunk in enumerate(forms.chunked(body)):
            yield chunk
            if n == 0 and on_first_chunk is not None:
                on_first_chunk()

    return requests.post(url, data=chunks(), headers=headers, params=query, timeout=120)


def burst(url: str, built: list, process: subprocess.Popen | None = None) -> dict:
    """Send every form at once; SIGTERM `process` once each has sent its first chunk."""
    sending = threading.Semaphore(0)
    answers: dict[int, tuple[int, float]] = {}

    def client(n: int) -> None:
        try:
            status = upload(url, built[n], sending.release).status_code
        except requests.RequestException:
            status = 0
        answers[n] = (status, time.perf_counter())

    threads = [threading.Thread(target=client, args=(n,)) for n in range(len(built))]
    for thread in threads:
        thread.start()
    for _ in built:
        sending.acquire()
    started = time.perf_counter()
    stop = stop_run(process) if process is not None else None
    for thread in threads:
        thread.join(120)
    return {"last_answer_s": max(t for _, t in answers.values()) - started, "stop_s": stop,
            "answered_200": sum(1 for status, _ in answers.values() if status == 200)}


def stored_digests(data: Path) -> list[str]:
    """The dump SHA-256 of every report in the run's bucket."""
    with SeaweedServer(data, BUCKET) as server:
        client = server.client()
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="reports/")
        keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
        return [json.loads(client.get_object(Bucket=BUCKET, Key=key)["Body"].read())["dump"]
                ["sha256"] for key in keys]


def measure(uploads: int = 16, dump_mb: float = 2) -> dict:
    size = int(dump_mb * 1024 * 1024)
    dumps = [forms.fake_dump(size, seed=n) for n in range(2 * uploads + 3)]
    built = [forms.crashpad_form({"prod": "Bench", "ver": "1"}, dump=d) for d in dumps]
    with tempfile.TemporaryDirectory() as tmp:
        process, url = start_run(Path(tmp) / "one")
        alone = []
        for form in built[2 * uploads:]:
            started = time.perf_counter()
            assert upload(url, form).status_code == 200
            alone.append(time.perf_counter() - started)
        unstopped = burst(url, built[uploads: 2 * uploads])
        idle_stop = stop_run(process)

        data = Path(tmp) / "burst"
        process, url = start_run(data)
        stopped = burst(url, built[:uploads], process)
        digests = stored_digests(data / "s3")
    sent = {hashlib.sha256(d).hexdigest() for d in dumps[:uploads]}
    return {
        "uploads": uploads, "dump_mb": dump_mb,
        "one_upload_alone_s": round(statistics.median(alone), 3),
        "burst_without_stop_s": round(unstopped["last_answer_s"], 3),
        "idle_stop_s": round(idle_stop, 3),
        "last_answer_after_sigterm_s": round(stopped["last_answer_s"], 3),
        "sigterm_to_exit_s": round(stopped["stop_s"], 3),
        "answered_200": stopped["answered_200"],
        "stored_byte_exact": len(sent & set(digests)),
    }


def rows(result: dict) -> list[Row]:
    """(figure, value, same-run baseline, ratio) rows of a measure() result."""
    n, mb = result["uploads"], result["dump_mb"]
    alone, idle = result["one_upload_alone_s"], result["idle_stop_s"]
    last, total = result["last_answer_after_sigterm_s"], result["sigterm_to_exit_s"]
    unstopped = result["burst_without_stop_s"]
    return [
        (f"drain: SIGTERM to last answer s, {n} x {mb:g} MB uploads under way"
         " (baseline: the same burst, no stop)", f"{last}", f"{unstopped}",
         f"{last / unstopped:.2f}"),
        (f"drain: SIGTERM to last answer s, {n} uploads (baseline: one upload alone)",
         f"{last}", f"{alone}", f"{last / alone:.2f}"),
        ("drain: SIGTERM to exit s, S3 stop included (baseline: SIGTERM to exit, idle)",
         f"{total}", f"{idle}", f"{total / idle:.2f}"),
        (f"drain: uploads under way answered 200 and stored byte-exact (of {n})",
         f"{min(result['answered_200'], result['stored_byte_exact'])}", f"{n}",
         f"{min(result['answered_200'], result['stored_byte_exact']) / n:.2f}"),
    ]


def run(uploads: int = 16, dump_mb: float = 2) -> list[Row]:
    return rows(measure(uploads, dump_mb))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--uploads", type=int, default=16)
    parser.add_argument("--dump-mb", type=float, default=2)
    parser.add_argument("--json", action="store_true", help="print JSON only (with its rows)")
    parser.add_argument("--versions", action="store_true", help="print versions and exit")
    args = parser.parse_args()
    if args.versions:
        print(f"Python {platform.python_version()}, requests {requests.__version__}")
        return
    result = measure(args.uploads, args.dump_mb)
    emit(result, rows(result), args.json)


if __name__ == "__main__":
    main()
