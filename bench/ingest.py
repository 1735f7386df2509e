"""Ingest throughput: real-form gzip submissions through the local HTTP server into
SeaweedFS, next to raw put_object of the same dump bytes into the same server.

    python -m bench.ingest [--reports 500] [--dump-kb 200] [--clients 8] [--json]

Prints reports/s, p50/p95 latency, S3 requests per report and the ratio to raw PUT,
then the server's peak memory for one 100 MB dump (gzip and plain).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import requests

from chalicelib.seaweed import SeaweedServer, free_port
from tests.testlib import forms

BUCKET = "bench-reports"


def timed_pool(work, items, clients: int) -> tuple[float, list[float]]:
    latencies: list[float] = []

    def one(item):
        started = time.perf_counter()
        work(item)
        latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, items))
    return time.perf_counter() - started, latencies


def start_server(endpoint: str, env_extra: dict[str, str]) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {**os.environ, "AWS_ENDPOINT_URL_S3": endpoint, "AWS_ACCESS_KEY_ID": "local",
           "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": "us-east-1",
           "REPORTS_BUCKET": BUCKET, "SUBMIT_SERVER_PORT": str(port),
           "REPORTS_SERVER_PORT": str(free_port()), **env_extra}
    process = subprocess.Popen([sys.executable, "-m", "bench.serve"], env=env,
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "ready"
    return process, port


def stop_server(process: subprocess.Popen) -> dict:
    process.terminate()
    out, _ = process.communicate(timeout=30)
    return json.loads(out.strip().splitlines()[-1])


def summarize(name: str, count: int, elapsed: float, latencies: list[float]) -> dict:
    ordered = sorted(latencies)
    return {
        "name": name, "count": count, "seconds": round(elapsed, 3),
        "per_second": round(count / elapsed, 1),
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p95_ms": round(ordered[int(len(ordered) * 0.95) - 1] * 1000, 1),
    }


def wire_request(port: int, form: tuple[bytes, dict, dict]) -> bytes:
    """The exact bytes a Crashpad client sends: headers, then the body in 65524-byte chunks.

    Built before timing, so the client side costs as little CPU as libcurl would.
    """
    body, headers, query = form
    lines = [f"POST /submit?{urllib.parse.urlencode(query)} HTTP/1.1",
             f"Host: 127.0.0.1:{port}", "Accept: */*", "Transfer-Encoding: chunked"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    out = bytearray(("\r\n".join(lines) + "\r\n\r\n").encode())
    for chunk in forms.chunked(body):
        out += b"%x\r\n" % len(chunk) + chunk + b"\r\n"
    out += b"0\r\n\r\n"
    return bytes(out)


def send_raw(port: int, request: bytes) -> str:
    """Send one pre-built request on a new connection; return the 200 reply's body."""
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        sock.sendall(request)
        reply = http.client.HTTPResponse(sock)
        reply.begin()
        body = reply.read().decode()
    if reply.status != 200:
        raise RuntimeError(f"{reply.status}: {body}")
    return body


def post(url: str, form: tuple[bytes, dict, dict]) -> str:
    body, headers, query = form
    response = requests.post(url, data=forms.chunked(body), headers=headers, params=query,
                             timeout=120)
    response.raise_for_status()
    return response.text


def make_submissions(dumps: list[bytes]) -> list[tuple[bytes, dict, dict]]:
    annotations = {"platform": "linux", "client_sha": "c" * 40, "jamicore_sha": "d" * 40,
                   "build_id": "b1"}
    return [forms.crashpad_form(annotations, dump=d, gzip=True) for d in dumps]


def run(args: argparse.Namespace) -> dict:
    results: dict = {"reports": args.reports, "dump_kb": args.dump_kb, "clients": args.clients}
    with tempfile.TemporaryDirectory() as tmp, SeaweedServer(Path(tmp), BUCKET) as s3:
        client = s3.client()
        dumps = [forms.fake_dump(args.dump_kb * 1024, seed=i) for i in range(args.reports)]

        for i in range(100):  # let SeaweedFS grow its volumes before anything is timed
            client.put_object(Bucket=BUCKET, Key=f"warm/{i:06d}", Body=dumps[i % len(dumps)])
        process, port = start_server(s3.endpoint, {})
        send_raw(port, wire_request(port, forms.crashpad_form()))  # warm its S3 connection
        rounds = []
        for number in range(args.rounds):
            # new forms each round (fresh report uuids), so none is a retry of an earlier one
            wire = [wire_request(port, form) for form in make_submissions(dumps)]
            elapsed, latencies = timed_pool(
                lambda i, n=number: client.put_object(
                    Bucket=BUCKET, Key=f"raw/{n}/{i:06d}", Body=dumps[i]),
                range(args.reports), args.clients)
            raw = summarize("raw put_object", args.reports, elapsed, latencies)
            elapsed, latencies = timed_pool(
                lambda i: send_raw(port, wire[i]), range(args.reports), args.clients)
            ingest = summarize("ingest /submit", args.reports, elapsed, latencies)
            rounds.append((raw, ingest, ingest["per_second"] / raw["per_second"]))
        served = stop_server(process)
        raw, ingest, _ = sorted(rounds, key=lambda r: r[2])[len(rounds) // 2]
        total_requests = sum(served["s3_requests"].values())
        ingest["s3_requests_per_report"] = round(
            total_requests / (args.reports * args.rounds + 1), 2)
        ingest["s3_requests"] = served["s3_requests"]
        results["runs"] = [raw, ingest]
        results["ratio_to_raw_put"] = round(sorted(r[2] for r in rounds)[len(rounds) // 2], 2)
        results["ratios_by_round"] = [round(r[2], 2) for r in rounds]

        memory = {}
        big = forms.fake_dump(args.big_mb * 1024 * 1024, seed=7)
        for use_gzip in (False, True):
            process, port = start_server(s3.endpoint, {"MAX_SUBMISSION_MB": "512"})
            idle = stop_rss_probe(process)
            form = forms.crashpad_form(dump=big, gzip=use_gzip)
            post(f"http://127.0.0.1:{port}/submit", form)
            served = stop_server(process)
            label = "gzip" if use_gzip else "plain"
            memory[label] = {"idle_rss_mb": round(idle, 1),
                             "peak_rss_mb": round(served["peak_rss_mb"], 1),
                             "growth_mb": round(served["peak_rss_mb"] - idle, 1)}
        results["one_big_dump"] = {"dump_mb": args.big_mb, **memory}
    return results


def stop_rss_probe(process: subprocess.Popen) -> float:
    """Current RSS of the server process in MiB (from /proc)."""
    for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reports", type=int, default=500)
    parser.add_argument("--dump-kb", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--big-mb", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3,
                        help="raw/ingest rounds, interleaved; the median ratio is shown")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    parser.add_argument("--versions", action="store_true", help="print versions and exit")
    args = parser.parse_args()
    if args.versions:
        print(platform.python_version(), requests.__version__)
        return
    results = run(args)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{args.reports} submissions of {args.dump_kb} KB dumps, {args.clients} clients")
    print(f"{'run':<18}{'per s':>8}{'p50 ms':>9}{'p95 ms':>9}")
    for row in results["runs"]:
        print(f"{row['name']:<18}{row['per_second']:>8}{row['p50_ms']:>9}{row['p95_ms']:>9}")
    ingest = results["runs"][1]
    print(f"ratio ingest / raw put: {results['ratio_to_raw_put']} (median round; rounds:"
          f" {results['ratios_by_round']})")
    print(f"S3 requests per report: {ingest['s3_requests_per_report']} {ingest['s3_requests']}")
    for label, row in results["one_big_dump"].items():
        if isinstance(row, dict):
            print(f"one {args.big_mb} MB dump ({label}): server RSS {row['idle_rss_mb']} MB idle,"
                  f" {row['peak_rss_mb']} MB peak (+{row['growth_mb']} MB)")


if __name__ == "__main__":
    main()
