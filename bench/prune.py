"""Benchmark one pruning run over N stored reports on a real SeaweedFS.

For each N the bench seeds a fresh prefix with N small reports (dump + metadata, one in
four with an attachment) through ReportStore.put, turns 1% of them into orphans by
dropping their metadata, then, with the limit at half the bytes:

- baseline: a plain paginated listing of the same keys (what pruning cannot go below);
- a dry run in process under tracemalloc: the peak Python memory of the scan and plan;
- the real run, as the documented command in a child process: its duration, S3
  requests by kind and peak RSS (next to the RSS of a child that only builds the store).

    python -m bench.prune [--reports 20000 100000] [--json] [--versions]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import gc
import hashlib
import io
import json
import math
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

BUCKET = "crash-reports"
REPO = Path(__file__).resolve().parents[1]
SEED = 20261101
GRACE_SECONDS = 3600
PRODUCTS = ("Jami", "jami-daemon", "jami-qt")
PLATFORMS = ("linux", "win64", "macos", "android")
VERSIONS = tuple(f"2026.{month}.{patch}" for month in range(1, 11) for patch in range(3))


def seed_reports(store: Any, count: int, workers: int) -> None:
    """Store `count` reports received over 30 days, oldest first by seed."""
    from chalicelib.submission import Submission

    start = datetime.datetime(2026, 10, 1, tzinfo=datetime.timezone.utc)
    step = datetime.timedelta(days=30) / count

    def put(index: int) -> str:
        rng = random.Random(SEED + index)
        dump = b"MDMP\x93\xa7\x00\x00" + rng.randbytes(rng.randrange(120, 400))
        annotations = {
            "prod": rng.choice(PRODUCTS), "ver": rng.choice(VERSIONS),
            "platform": rng.choice(PLATFORMS), "guid": str(uuid.UUID(int=rng.getrandbits(128))),
        }
        attachments = []
        if index % 4 == 0:
            log = b"log line\n" * rng.randrange(5, 40)
            attachments.append(_file("app.log", log))
        submission = Submission(
            annotations=annotations,
            dump=_file("upload_file_minidump", dump),
            attachments=attachments,
            received_at=start + step * index,
            user_agent="Crashpad/0.8.0 bench",
            crashpad_uuid=str(uuid.UUID(int=rng.getrandbits(128))),
            client_guid=annotations["guid"],
            query={"product": annotations["prod"], "version": annotations["ver"]},
        )
        return store.put(submission)

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(put, range(count), chunksize=64):
            pass


def _file(field: str, data: bytes) -> Any:
    from chalicelib.submission import FilePart

    return FilePart(field, f"{field}.bin", io.BytesIO(data), len(data),
                    hashlib.sha256(data).hexdigest())


def make_orphans(store: Any, share: float) -> int:
    """Drop the metadata of a seeded share of reports, leaving their parts behind."""
    rng = random.Random(SEED)
    report_keys = [o.key for o in store.iter_objects() if o.kind == "report"]
    chosen = rng.sample(report_keys, max(1, int(len(report_keys) * share)))
    store.delete_keys(chosen)
    return len(chosen)


def raw_listing(client: Any, prefix: str) -> tuple[float, int, int]:
    """(seconds, objects, bytes) of a plain paginated listing: the baseline."""
    started = time.perf_counter()
    count = size = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        count += len(page.get("Contents", []))
        size += sum(item["Size"] for item in page.get("Contents", []))
    return time.perf_counter() - started, count, size


def bench_one(server: Any, count: int, workers: int) -> dict[str, Any]:
    from chalicelib import config, pruning
    from chalicelib.store import ReportStore

    prefix = f"bench-prune-{count}-{uuid.uuid4().hex[:6]}/"
    cfg = config.Config.from_env({"REPORTS_BUCKET": BUCKET, "REPORTS_PREFIX": prefix})
    store = ReportStore.from_config(cfg)

    started = time.perf_counter()
    seed_reports(store, count, workers)
    seed_seconds = time.perf_counter() - started
    orphans = make_orphans(store, 0.01)

    list_seconds, objects, total_bytes = raw_listing(server.client(), prefix)
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=2)
    limit = total_bytes // 2

    gc.collect()
    tracemalloc.start()
    pruning.prune_to_limit(store, limit, GRACE_SECONDS, now=later, dry_run=True)
    _, peak_bytes = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    env = {**os.environ, "REPORTS_BUCKET": BUCKET, "REPORTS_PREFIX": prefix}
    baseline_rss, _, _ = run_child("pass", env)
    # A grace of 0, which the configuration refuses, so that the seeded orphans count as old.
    rss, wall_seconds, out = run_child(
        "print(pruning.prune_to_limit(store.ReportStore.from_config(config.load()),"
        f" {limit}, 0).as_log_line())", env)
    logged = json.loads(out.splitlines()[-1])
    requests = logged["s3_requests"]
    left = raw_listing(server.client(), prefix)[1] - 1  # the run wrote summary.json
    deleted_keys = objects - left
    # plus a HEAD and a list per orphan's claim, checked just before it is deleted
    assert requests.get("ListObjectsV2", 0) <= math.ceil(objects / 1000) + orphans
    assert requests.get("HeadObject", 0) <= orphans
    # claims go last, in batches of their own: at most one batch more
    assert requests.get("DeleteObjects", 0) <= math.ceil(deleted_keys / 1000) + 1
    prune_seconds = logged["duration_ms"] / 1000
    return {
        "reports": count,
        "objects": objects,
        "seed_seconds": round(seed_seconds, 1),
        "orphans_seeded": orphans,
        "limit_bytes": limit,
        "bytes_before": logged["bytes_before"],
        "bytes_after": logged["bytes_after"],
        "reports_deleted": logged["reports_deleted"],
        "orphans_removed": logged["orphans_removed"],
        "deleted_keys": deleted_keys,
        "prune_seconds": round(prune_seconds, 2),
        "command_seconds": round(wall_seconds, 2),
        "listing_seconds": round(list_seconds, 2),
        "ratio_to_listing": round(prune_seconds / list_seconds, 2),
        "s3_requests": dict(sorted(requests.items())),
        "peak_rss_mib": round(rss / 2**20, 1),
        "baseline_rss_mib": round(baseline_rss / 2**20, 1),
        "peak_traced_mib": round(peak_bytes / 2**20, 1),
    }


def run_child(statement: str, env: dict[str, str]) -> tuple[int, float, str]:
    """(peak RSS bytes, wall seconds, stdout) of a fresh interpreter that imports the
    pruning module, builds the configured store and runs `statement`.

    The peak is the child's own VmHWM: rusage would count the parent's pages at fork.
    """
    code = (
        "from chalicelib import config, pruning, store\n"
        "store.ReportStore.from_config(config.load())\n"
        f"{statement}\n"
        "import sys\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
        "print(int(hwm.split()[1]) * 1024, file=sys.stderr)\n"
    )
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO,
                          capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"child exited with {done.returncode}:\n{done.stderr}")
    return int(done.stderr.splitlines()[-1]), wall, done.stdout


def versions() -> dict[str, str]:
    import boto3

    from chalicelib.seaweed import weed_binary

    weed = subprocess.run([weed_binary(), "version"], capture_output=True, text=True,
                          check=False).stdout.splitlines()
    return {"python": platform.python_version(), "boto3": boto3.__version__,
            "seaweedfs": weed[0] if weed else "?"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reports", type=int, nargs="+", default=[20000, 100000],
                        help="stored report counts to bench (default: 20000 100000)")
    parser.add_argument("--workers", type=int, default=32, help="threads that seed")
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    parser.add_argument("--versions", action="store_true", help="print versions and exit")
    args = parser.parse_args()
    if args.versions:
        print(json.dumps(versions()))
        return

    from chalicelib.seaweed import SeaweedServer

    for name in [n for n in os.environ if n.startswith("AWS_")]:
        del os.environ[name]
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                      AWS_DEFAULT_REGION="us-east-1")
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-prune-") as data:
        with SeaweedServer(Path(data), BUCKET) as server:
            os.environ["AWS_ENDPOINT_URL_S3"] = server.endpoint
            for count in args.reports:
                results.append(bench_one(server, count, args.workers))
                if not args.json:
                    _print_row(results[-1])
    if args.json:
        print(json.dumps({"versions": versions(), "results": results}, indent=2))


def _print_row(row: dict[str, Any]) -> None:
    print(f"{row['reports']:>7} reports, {row['objects']} objects "
          f"(seeded in {row['seed_seconds']} s, {row['orphans_seeded']} orphaned)")
    print(f"  prune {row['prune_seconds']} s ({row['command_seconds']} s as a command) = "
          f"{row['ratio_to_listing']}x a plain listing "
          f"({row['listing_seconds']} s); deleted {row['reports_deleted']} reports + "
          f"{row['orphans_removed']} orphan parts = {row['deleted_keys']} keys")
    print(f"  S3 requests {row['s3_requests']}")
    print(f"  peak RSS {row['peak_rss_mib']} MiB (a process that only builds the store: "
          f"{row['baseline_rss_mib']} MiB); Python heap peak {row['peak_traced_mib']} MiB")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
