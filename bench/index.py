"""Viewer index latency on a real SeaweedFS with 1,000 / 10,000 / 100,000 stored reports.

For each N the bench seeds a fresh prefix with N reports received over 30 days (the
metadata object under its layout key only: the index reads nothing else), writes a
pruner summary, then times, each as the median of --repeat runs after one warm-up:

- baseline: one raw list_objects_v2 of 26 keys, the floor of any index page;
- page 1, page 40 (reached by following the older cursor 39 times; only the 40th
  request is timed), a one-field filter (1 report in 50 matches) and a rare filter
  (no match: the page stops at its scan budget), a "newer" page (back from page 40),
  each directly through viewer.index_page and through the real local-run HTTP viewer
  (HTML, logged in), with the S3 requests each page made.

    python -m bench.index [--reports 1000 10000 100000] [--repeat 7] [--json] [--versions]
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import datetime
import gc
import hashlib
import io
import json
import os
import platform
import random
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

BUCKET = "crash-reports"
SEED = 20261125
PASSWORD = "bench"
PRODUCTS = ("Jami", "jami-daemon", "jami-qt")
PLATFORMS = ("linux", "win64", "macos", "android")
CLIENT_SHAS = tuple(hashlib.sha1(f"client{n}".encode()).hexdigest() for n in range(50))
CORE_SHAS = tuple(hashlib.sha1(f"core{n}".encode()).hexdigest() for n in range(20))


def seed_reports(store: Any, count: int, workers: int) -> list[str]:
    """Write `count` committed reports over 30 days; returns their ids, oldest first.

    Only the metadata object is written (one PUT per report, under the key
    ReportStore.put would use): index pages and filters read the listing alone.
    """
    from chalicelib import report
    from chalicelib.store import claim_for
    from chalicelib.submission import FilePart, Submission

    end = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    step = datetime.timedelta(days=30) / count
    start = end - step * count

    def put(index: int) -> str:
        rng = random.Random(SEED + index)
        size = rng.randrange(20_000, 900_000)
        dump = FilePart("upload_file_minidump", "x.dmp", io.BytesIO(b""), size,
                        hashlib.sha256(str(index).encode()).hexdigest())
        guid = str(uuid.UUID(int=rng.getrandbits(128)))
        annotations = {
            "prod": rng.choice(PRODUCTS), "ver": f"2026.{rng.randrange(1, 11)}.{rng.randrange(3)}",
            "platform": rng.choice(PLATFORMS), "build_id": f"b{rng.randrange(400)}",
            "client_sha": rng.choice(CLIENT_SHAS), "jamicore_sha": rng.choice(CORE_SHAS),
            "guid": guid,
        }
        sent = Submission(
            annotations=annotations, dump=dump, attachments=[],
            received_at=start + step * index, user_agent="Crashpad/0.8.0 bench",
            crashpad_uuid=str(uuid.UUID(int=rng.getrandbits(128))), client_guid=guid,
            query={"product": annotations["prod"], "version": annotations["ver"]},
        )
        report_id = report.new_report_id(sent.received_at)
        meta = report.describe(sent, report_id)
        key = store._report_key(report_id, claim_for(sent), meta["facts"], size)
        store.s3.put_object(Bucket=store.bucket, Key=key, Body=json.dumps(meta).encode(),
                            ContentType="application/json")
        return report_id

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(put, range(count), chunksize=64))


def median_ms(action: Callable[[], Any], repeat: int) -> float:
    action()  # warm-up: connections, template compilation, the summary cache
    gc.collect()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1000, 1)


def requests_of(store: Any, action: Callable[[], Any]) -> dict[str, int]:
    store.requests.clear()
    action()
    return dict(sorted(store.requests.items()))


def bench_one(server: Any, count: int, repeat: int, workers: int) -> list[dict[str, Any]]:
    import app as application
    from chalicelib import auth, localrun, viewer
    from chalicelib.seaweed import free_port
    from chalicelib.store import ReportStore

    prefix = f"bench-index-{count}-{uuid.uuid4().hex[:6]}/"
    client = server.client()
    seeding = ReportStore(client, BUCKET, prefix)
    started = time.perf_counter()
    seed_reports(seeding, count, workers)
    seed_seconds = time.perf_counter() - started
    seeding.put_summary({"schema": 1, "total_reports": count, "total_bytes": 0})

    os.environ.update({
        "REPORTS_BUCKET": BUCKET, "REPORTS_PREFIX": prefix, "AWS_ENDPOINT_URL_S3": server.endpoint,
        "SUBMIT_SERVER_PORT": str(free_port()), "REPORTS_SERVER_PORT": str(free_port()),
        "VIEWER_USERS": "admin:" + auth.hash_password(PASSWORD),
    })
    application.settings.cache_clear()
    application.reports.cache_clear()
    servers = localrun.serve(application.app, application.settings())
    http = requests.Session()
    http.auth = ("admin", PASSWORD)
    base = f"http://127.0.0.1:{application.settings().reports_port}"
    store = application.reports()  # the store the HTTP viewer uses, for its counts
    direct = ReportStore(server.client(), BUCKET, prefix)
    urls = viewer.Urls()

    def page(params: dict[str, str]) -> dict[str, Any]:
        return viewer.index_page(direct, viewer.Query.parse(params), urls)

    cursor: dict[str, str] = {}
    for _ in range(39):  # page 40 starts where page 39 ends
        rows = page(cursor)["reports"]
        cursor = {"before": rows[-1]["id"], "offset": str(975)}
    first_of_40 = page(cursor)["reports"][0]["id"]
    wanted = CLIENT_SHAS[7]
    cases = {
        "page 1": {},
        "page 40": cursor,
        "newer (39 from 40)": {"after": first_of_40, "offset": "975"},
        "filter client_sha (1 in 50)": {"client_sha": wanted},
        "filter, no match": {"client_sha": "0" * 40},
    }
    raw = lambda: client.list_objects_v2(  # noqa: E731
        Bucket=BUCKET, Prefix=prefix + "reports/", MaxKeys=26)
    raw_ms = median_ms(raw, repeat)
    results = []
    try:
        for name, params in cases.items():
            shown = page(params)
            direct_ms = median_ms(lambda p=params: page(p), repeat)
            direct_requests = requests_of(direct, lambda p=params: page(p))
            auth_header = "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()

            def fetch(p: dict[str, str] = params) -> None:
                answer = http.get(base + "/reports", params=p, timeout=30,
                                  headers={"Authorization": auth_header})
                answer.raise_for_status()

            http_ms = median_ms(fetch, repeat)
            http_requests = requests_of(store, fetch)
            results.append({
                "reports": count, "page": name, "rows": len(shown["reports"]),
                "keys_scanned": shown["scan"]["keys_scanned"],
                "direct_ms": direct_ms, "http_ms": http_ms, "raw_list_ms": raw_ms,
                "ratio_to_raw_list": round(http_ms / raw_ms, 1),
                "s3_requests_direct": direct_requests, "s3_requests_http": http_requests,
                "seed_seconds": round(seed_seconds, 1),
            })
    finally:
        for running in servers:
            running.close()
    return results


def versions() -> dict[str, str]:
    import boto3

    from chalicelib.seaweed import weed_binary

    weed = subprocess.run([weed_binary(), "version"], capture_output=True, text=True,
                          check=False).stdout.splitlines()
    return {"python": platform.python_version(), "boto3": boto3.__version__,
            "seaweedfs": weed[0] if weed else "?", "machine": platform.machine(),
            "cpus": str(os.cpu_count())}


def short(counts: dict[str, int]) -> str:
    names = {"ListObjectsV2": "list", "GetObject": "get"}
    return " ".join(f"{names.get(k, k)}={v}" for k, v in counts.items()) or "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reports", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--json", action="store_true", help="print JSON lines only")
    parser.add_argument("--versions", action="store_true")
    args = parser.parse_args()
    if args.versions:
        print(json.dumps(versions()))
        return
    for name, value in {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        os.environ.setdefault(name, value)
    from chalicelib.seaweed import SeaweedServer

    with tempfile.TemporaryDirectory() as data:
        server = SeaweedServer(Path(data), BUCKET).start()
        os.environ["AWS_ENDPOINT_URL_S3"] = server.endpoint
        try:
            if not args.json:
                print(f"{'reports':>8} {'page':<28} {'rows':>4} {'scanned':>7} "
                      f"{'direct ms':>9} {'http ms':>8} {'x raw list':>10}  S3 requests (http)")
            for count in args.reports:
                for row in bench_one(server, count, args.repeat, args.workers):
                    if args.json:
                        print(json.dumps(row), flush=True)
                    else:
                        print(f"{row['reports']:>8} {row['page']:<28} {row['rows']:>4} "
                              f"{row['keys_scanned']:>7} {row['direct_ms']:>9} "
                              f"{row['http_ms']:>8} {row['ratio_to_raw_list']:>10}  "
                              f"{short(row['s3_requests_http'])}", flush=True)
                if not args.json:
                    print(f"{'':>8} (seeded {count:,} reports in {row['seed_seconds']} s; "
                          f"raw 26-key list {row['raw_list_ms']} ms)", flush=True)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
