"""The Crashes page and signature pages at scale, for bench.processing (`--parts pages`).

Seeds --page-reports report keys as bench.index does (metadata only, over 30 days),
gives each report one of --signatures signatures (seeded, a few common and a long
tail, as crashes come), builds signatures.json with crash_summary.build from those
crash entries, and writes the crash keys and signature markers of the signatures
whose pages are timed (the other reports' crash keys are read by nothing timed here:
the Crashes page reads signatures.json only, a signature page its own markers).
Then, over HTTP through the local-run viewer (logged in), each page as the median of
--repeat requests: cold (the viewer's 30 s summary cache emptied before each) and warm.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import datetime
import os
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

TARGET_MS = 300.0
REASONS = ("SIGSEGV / SEGV_MAPERR", "EXCEPTION_ACCESS_VIOLATION_READ", "SIGABRT",
           "EXC_BAD_ACCESS / KERN_INVALID_ADDRESS", "EXCEPTION_STACK_BUFFER_OVERRUN")


def signature_text(rank: int) -> str:
    # Kept short: SeaweedFS refuses a key segment over 255 bytes, and the crash key's
    # last segment holds the percent-encoded signature.
    return (f"jami::SIPCall::onMedia{rank} | jami::Manager::pollEvents{rank % 7} | "
            f"libjami.so@0x{0x1000 + rank * 0x40:x}")


def assign_signatures(ids: list[str], signatures: int, seed: int) -> list[int]:
    """A signature rank for each report: weights 1/(rank+1), so rank 0 is the commonest."""
    rng = random.Random(seed)
    weights = [1 / (rank + 1) for rank in range(signatures)]
    ranks = rng.choices(range(signatures), weights, k=len(ids))
    for rank in range(min(signatures, len(ids))):  # every signature has a report
        ranks[rank * (len(ids) // signatures)] = rank
    return ranks


def seed_crashes(application: Any, server: Any, args: argparse.Namespace) -> dict[str, Any]:
    from bench.index import BUCKET, seed_reports
    from chalicelib import crash_summary
    from chalicelib.crash_store import (
        CRASHES, SIGNATURES, CrashEntry, crash_key_name, signature_id,
    )
    from chalicelib.store import ReportStore

    prefix = f"bench-pages-{uuid.uuid4().hex[:6]}/"
    reports = ReportStore(server.client(), BUCKET, prefix)
    started = time.perf_counter()
    seed_reports(reports, args.page_reports, 16)
    listed = list(reports.iter_newest())
    ranks = assign_signatures([r.id for r in listed], args.signatures, seed=7)
    texts = [signature_text(rank) for rank in range(args.signatures)]
    sigs = [signature_id(text) for text in texts]
    entries = {
        r.id: CrashEntry(r.id, "", sigs[rank], REASONS[rank % len(REASONS)], texts[rank], False)
        for r, rank in zip(listed, ranks, strict=True)
    }
    summary = crash_summary.build(
        (crash_summary.CountedReport(r.id, r.facts.get("product", ""),
                                     r.facts.get("version", ""), r.facts.get("platform", ""))
         for r in listed), entries, datetime.datetime.now(datetime.timezone.utc))
    counts = sorted(((s["count"], sig) for sig, s in summary["signatures"].items()),
                    reverse=True)
    timed = {"top": counts[0], "median": counts[len(counts) // 2]}
    wanted = {sig for _, sig in timed.values()}
    client = server.client()

    def put(r: Any) -> None:
        entry = entries[r.id]
        name = crash_key_name(r.id, entry.sig, entry.reason, entry.signature)
        client.put_object(Bucket=BUCKET, Key=prefix + CRASHES + name, Body=b"{}")
        client.put_object(Bucket=BUCKET, Body=b"",
                          Key=f"{prefix}{SIGNATURES}{entry.sig}/{r.key.rsplit('/', 1)[-1]}")

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(put, [r for r in listed if entries[r.id].sig in wanted]))
    os.environ["REPORTS_PREFIX"] = prefix
    for cached in (application.settings, application.reports, application.crashes):
        cached.cache_clear()
    crashes = application.crashes()
    crashes.put_signature_summary(summary)
    return {"prefix": prefix, "seconds": round(time.perf_counter() - started, 1),
            "timed": timed, "summary_bytes": len(crashes.s3.get_object(
                Bucket=BUCKET, Key=prefix + "signatures.json")["Body"].read())}


def run(args: argparse.Namespace) -> dict[str, Any]:
    import requests

    from bench.index import BUCKET, PASSWORD
    from chalicelib import auth, localrun
    from chalicelib.seaweed import SeaweedServer, free_port
    from chalicelib.viewer import summary as summary_cache
    from chalicelib.viewer.crashes import SIGNATURES_PER_PAGE

    for name, value in {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        os.environ.setdefault(name, value)
    with tempfile.TemporaryDirectory() as data, SeaweedServer(Path(data), BUCKET) as server:
        os.environ.update({
            "REPORTS_BUCKET": BUCKET, "AWS_ENDPOINT_URL_S3": server.endpoint,
            "SUBMIT_SERVER_PORT": str(free_port()), "REPORTS_SERVER_PORT": str(free_port()),
            "VIEWER_USERS": "admin:" + auth.hash_password(PASSWORD),
        })
        import app as application

        seeded = seed_crashes(application, server, args)
        localrun.serve(application.app, application.settings())  # daemon threads
        base = f"http://127.0.0.1:{application.settings().reports_port}"
        http = requests.Session()
        http.headers["Authorization"] = "Basic " + base64.b64encode(
            f"admin:{PASSWORD}".encode()).decode()
        stores = (application.crashes(), application.reports())
        middle = max(1, -(-args.signatures // SIGNATURES_PER_PAGE) // 2)
        cases = {"crashes (7 days)": "/", f"crashes (all, page {middle})":
                 f"/?window=all&page={middle}",
                 **{f"signature ({name}, {count:,} reports)": f"/signatures/{sig}"
                    for name, (count, sig) in seeded["timed"].items()}}
        rows = []
        for name, path in cases.items():
            for cold in (True, False):
                def fetch(path: str = path, cold: bool = cold) -> None:
                    if cold:
                        summary_cache._cache.clear()
                    answer = http.get(base + path, timeout=60)
                    answer.raise_for_status()
                    assert "signature" in answer.text
                fetch()
                times = []
                for _ in range(args.repeat):
                    for store in stores:
                        store.requests.clear()
                    started = time.perf_counter()
                    fetch()
                    times.append(time.perf_counter() - started)
                used: dict[str, int] = {}
                for store in stores:
                    for kind, n in store.requests.items():
                        used[kind] = used.get(kind, 0) + n
                ms = round(statistics.median(times) * 1000, 1)
                rows.append({"page": name, "summary": "cold" if cold else "cached",
                             "ms": ms, "s3_requests": used,
                             "target": "PASS" if ms <= TARGET_MS else "MISS"})
    return {"reports": args.page_reports, "signatures": args.signatures,
            "seed_seconds": seeded["seconds"], "summary_bytes": seeded["summary_bytes"],
            "pages": rows}


def show(result: dict[str, Any]) -> None:
    print(f"\npages: {result['reports']:,} reports, {result['signatures']:,} signatures; "
          f"signatures.json {result['summary_bytes'] / 1e6:.2f} MB; seeded in "
          f"{result['seed_seconds']} s")
    print(f"{'page':<42}{'summary':<9}{'http ms':>8}  S3 requests per page  target "
          f"{TARGET_MS:.0f} ms")
    for row in result["pages"]:
        used = " ".join(f"{k}={v}" for k, v in sorted(row["s3_requests"].items())) or "-"
        print(f"{row['page']:<42}{row['summary']:<9}{row['ms']:>8}  {used:<32}{row['target']}")
