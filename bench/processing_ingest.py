"""Ingest with crash processing on, for bench.processing (`--parts ingest`).

One SeaweedFS, two local-run servers (each its own process and REPORTS_PREFIX): one
without processing, one with a ProcessingPool(1) fed from app.report_stored, wired by
localrun.attach_processing as the local run does. Each round, as in bench.ingest: raw
put_object of the same dump bytes, then real Crashpad-form submissions (the fixture
dumps of up to 500 KB, cycled) to each server (which goes first alternates by round);
after the one with processing its backlog is waited for and timed. At the end every
sent report must be stored, and under the processing prefix processed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

from bench import ingest
from bench.processing import FIXTURES, ROOT, TYPICAL_BYTES
from chalicelib.seaweed import free_port
from tests.testlib import forms

DRAIN_TIMEOUT = 900.0


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def serve_main(workers: int) -> None:
    """In the child: bench.serve's servers, plus the processing pool when `workers`."""
    import app as application
    from bench.serve import peak_rss_mb
    from chalicelib import config, localrun

    servers = localrun.serve(application.app, config.load())
    pool = localrun.attach_processing(application, workers) if workers else None
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    print("ready", flush=True)
    done.wait()
    for server in servers:
        server.close()
    workers_cpu = sum(cpu_seconds(w.pid) for w in multiprocessing.active_children())
    if pool is not None:
        pool.stop()
        for worker in multiprocessing.active_children():  # they would hold stdout open
            worker.terminate()
            worker.join(timeout=10)
    print(json.dumps({
        "s3_requests": dict(application.reports().requests), "peak_rss_mb": peak_rss_mb(),
        "processed": pool.processed if pool else 0, "cpu_seconds": cpu_seconds(os.getpid()),
        "workers_cpu_seconds": workers_cpu,
    }), flush=True)
    os._exit(0)  # the executor's threads would wait for workers that are gone


def start_server(endpoint: str, prefix: str, workers: int,
                 log: IO[str]) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {**os.environ, "AWS_ENDPOINT_URL_S3": endpoint, "AWS_ACCESS_KEY_ID": "local",
           "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": "us-east-1",
           "REPORTS_BUCKET": ingest.BUCKET, "REPORTS_PREFIX": prefix,
           "PROCESSING_WORKERS": str(workers), "SUBMIT_SERVER_PORT": str(port),
           "REPORTS_SERVER_PORT": str(free_port())}
    process = subprocess.Popen([sys.executable, "-m", "bench.processing", "_serve", str(workers)],
                               env=env, stdout=subprocess.PIPE, stderr=log, text=True, cwd=ROOT)
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    return process, port


def typical_dumps(count: int) -> list[bytes]:
    """The fixture dumps of up to 500 KB that can be processed, cycled to `count`."""
    chosen = [p.read_bytes() for p in sorted(FIXTURES.glob("*.dmp"))
              if p.stat().st_size <= TYPICAL_BYTES and not p.name.startswith("corrupt")]
    return [chosen[i % len(chosen)] for i in range(count)]


def submit_round(port: int, dumps: list[bytes], clients: int) -> tuple[dict, list[str], list]:
    wire = [ingest.wire_request(port, form) for form in ingest.make_submissions(dumps)]
    ids: list[str] = []
    failures: list[str] = []

    def send(i: int) -> None:
        try:
            ids.append(ingest.send_raw(port, wire[i]))
        except Exception as error:  # counted as a loss, the round goes on
            failures.append(str(error)[:120])

    elapsed, latencies = ingest.timed_pool(send, range(len(dumps)), clients)
    return ingest.summarize("ingest /submit", len(dumps), elapsed, latencies), ids, failures


def processed_ids(crashes: Any) -> set[str]:
    return {entry.report_id for entry in crashes.iter_crashes()}


def wait_processed(crashes: Any, wanted: set[str]) -> tuple[float, int]:
    """Seconds until every wanted report has a processed crash (or the timeout); and how
    many had one when the wait began."""
    started = time.perf_counter()
    at_start = len(wanted & processed_ids(crashes))
    while not wanted <= processed_ids(crashes):
        if time.perf_counter() - started > DRAIN_TIMEOUT:
            break
        time.sleep(0.25)
    return round(time.perf_counter() - started, 2), at_start


def renice_children(pid: int, niceness: int) -> list[int]:
    """Give the processes `pid` started (the pool's workers) `niceness`; their pids."""
    children = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(c) for c in (task / "children").read_text().split()]
    for child in children:
        os.setpriority(os.PRIO_PROCESS, child, niceness)
    return children


def run(args: argparse.Namespace) -> dict[str, Any]:
    from chalicelib.crash_store import CrashStore
    from chalicelib.seaweed import SeaweedServer
    from chalicelib.store import ReportStore

    dumps = typical_dumps(args.reports)
    result: dict[str, Any] = {"reports": args.reports, "clients": args.clients,
                              "worker_nice": args.worker_nice,
                              "dump_kb_mean": round(sum(map(len, dumps)) / len(dumps) / 1024)}
    with tempfile.TemporaryDirectory() as tmp, SeaweedServer(Path(tmp), ingest.BUCKET) as s3, \
            open(Path(tmp) / "servers.log", "w+") as log:
        client = s3.client()
        for i in range(100):  # let SeaweedFS grow its volumes before anything is timed
            client.put_object(Bucket=ingest.BUCKET, Key=f"warm/{i:06d}",
                              Body=dumps[i % len(dumps)])
        plain, plain_port = start_server(s3.endpoint, "plain/", 0, log)
        busy, busy_port = start_server(s3.endpoint, "processing/", 1, log)
        crashes = CrashStore(s3.client(), ingest.BUCKET, "processing/")
        sent = {"plain/": set(), "processing/": set()}
        for port, prefix in ((plain_port, "plain/"), (busy_port, "processing/")):
            warm_up = ingest.wire_request(port, forms.crashpad_form())
            sent[prefix].add(ingest.send_raw(port, warm_up))
        wait_processed(crashes, sent["processing/"])  # the worker process has started
        if args.worker_nice:
            renice_children(busy.pid, args.worker_nice)
        rounds, failures = [], []
        for number in range(args.rounds):
            elapsed, latencies = ingest.timed_pool(
                lambda i, n=number: client.put_object(
                    Bucket=ingest.BUCKET, Key=f"raw/{n}/{i:06d}", Body=dumps[i]),
                range(args.reports), args.clients)
            raw = ingest.summarize("raw put_object", args.reports, elapsed, latencies)
            figures = {}
            # Alternate which server goes first; the backlog drains before anything else.
            for prefix in sorted(sent, reverse=number % 2 == 1):
                port = busy_port if prefix == "processing/" else plain_port
                figures[prefix], ids, lost = submit_round(port, dumps, args.clients)
                sent[prefix].update(ids)
                failures += lost
                if prefix == "processing/":
                    drain, done_in_round = wait_processed(crashes, set(ids))
            without, with_processing = figures["plain/"], figures["processing/"]
            rounds.append({
                "raw_per_s": raw["per_second"], "without_per_s": without["per_second"],
                "with_per_s": with_processing["per_second"],
                "without_p95_ms": without["p95_ms"], "with_p95_ms": with_processing["p95_ms"],
                "without_to_raw": round(without["per_second"] / raw["per_second"], 2),
                "with_to_raw": round(with_processing["per_second"] / raw["per_second"], 2),
                "with_to_without": round(with_processing["per_second"]
                                         / without["per_second"], 2),
                "processed_during_round": done_in_round, "drain_seconds": drain,
            })
        servers = {"without": ingest.stop_server(plain), "with": ingest.stop_server(busy)}
        stored = {prefix: {r.id for r in ReportStore(s3.client(), ingest.BUCKET, prefix)
                           .iter_newest()} for prefix in sent}
        entries = list(crashes.iter_crashes())
        result.update({
            "rounds": rounds,
            "median": {key: sorted(r[key] for r in rounds)[len(rounds) // 2]
                       for key in rounds[0]},
            "failed_submissions": len(failures), "failures": failures[:5],
            "sent": sum(map(len, sent.values())),
            "missing": sum(len(sent[p] - stored[p]) for p in sent),
            "unprocessed": len(sent["processing/"] - {e.report_id for e in entries}),
            "processing_errors": sum(e.is_error for e in entries),
            "servers": {name: {
                "peak_rss_mb": round(s["peak_rss_mb"], 1), "s3_requests": s["s3_requests"],
                "processed": s["processed"],
                "cpu_ms_per_report": round(s["cpu_seconds"] * 1000 / len(sent[prefix]), 1),
                "worker_cpu_ms_per_report": round(
                    s["workers_cpu_seconds"] * 1000 / max(1, s["processed"]), 1),
            } for (name, s), prefix in zip(servers.items(), sent, strict=True)},
        })
        with_to_without = result["median"]["with_to_without"]
        result["target"] = "PASS" if with_to_without >= 0.95 else "MISS"
    return result


def show(result: dict[str, Any]) -> None:
    print(f"\ningest: {result['reports']} submissions a round (fixture dumps, mean "
          f"{result['dump_kb_mean']} KB), {result['clients']} clients, worker niceness "
          f"{result['worker_nice']}")
    print(f"{'round':<7}{'raw/s':>7}{'without/s':>10}{'with/s':>8}{'without/raw':>12}"
          f"{'with/raw':>9}{'with/without':>13}{'p95 w/o':>8}{'p95 with':>9}"
          f"{'done in round':>14}{'drain s':>8}")
    for name, r in [*enumerate(result["rounds"], 1), ("median", result["median"])]:  # by column
        print(f"{name:<7}{r['raw_per_s']:>7}{r['without_per_s']:>10}{r['with_per_s']:>8}"
              f"{r['without_to_raw']:>12}{r['with_to_raw']:>9}{r['with_to_without']:>13}"
              f"{r['without_p95_ms']:>8}{r['with_p95_ms']:>9}"
              f"{r['processed_during_round']:>14}{r['drain_seconds']:>8}")
    print(f"sent {result['sent']}, failed {result['failed_submissions']}, not stored "
          f"{result['missing']}, not processed {result['unprocessed']}, processed as errors "
          f"{result['processing_errors']} {result['failures'] or ''}")
    for name, s in result["servers"].items():
        print(f"server {name}: peak RSS {s['peak_rss_mb']} MB, S3 requests {s['s3_requests']},"
              f" CPU per report {s['cpu_ms_per_report']} ms in the server, "
              f"{s['worker_cpu_ms_per_report']} ms in its worker")
    print(f"target: ingest rate with processing >= 0.95 x without: {result['target']}")
