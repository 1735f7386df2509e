"""Every benchmark, one table: `python -m bench [--quick] [--only NAME ...]` (`make bench`).

Each benchmark runs in its own interpreter with `--json` (as `python -m bench.<name>`
would on its own); the rows below read its figures and put each next to the baseline
the same run measured, with their ratio. `--quick` uses small sizes: a smoke run of the
whole set, not figures to quote.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from bench.table import HEADERS, Row, print_table, ratio


def ingest_rows(result: dict[str, Any]) -> list[Row]:
    raw, ingest = result["runs"]
    rows = [
        ("ingest, reports/s (baseline: raw PutObject/s)", f"{ingest['per_second']}",
         f"{raw['per_second']}", f"{result['ratio_to_raw_put']}"),
        ("ingest p95 ms (baseline: raw PutObject p95)", f"{ingest['p95_ms']}",
         f"{raw['p95_ms']}", ratio(ingest["p95_ms"], raw["p95_ms"])),
    ]
    for label, big in (result.get("one_big_dump") or {}).items():
        if isinstance(big, dict):
            size = result["one_big_dump"]["dump_mb"]
            rows.append((f"one {size} MB dump ({label}): server RSS growth MB (baseline: dump)",
                         f"{big['growth_mb']}", f"{size}", ratio(big["growth_mb"], size)))
    return rows


def prune_rows(result: dict[str, Any]) -> list[Row]:
    rows = []
    for run in result["results"]:
        n = f"{run['reports']:,} reports"
        rows.append((f"prune run s, {n} (baseline: plain listing)", f"{run['prune_seconds']}",
                     f"{run['listing_seconds']}", f"{run['ratio_to_listing']}"))
        rows.append((f"prune peak RSS MiB, {n} (baseline: import only)",
                     f"{run['peak_rss_mib']}", f"{run['baseline_rss_mib']}",
                     ratio(run["peak_rss_mib"], run["baseline_rss_mib"])))
    return rows


def index_rows(lines: list[dict[str, Any]]) -> list[Row]:
    return [
        (f"index {line['page']}, HTTP ms, {line['reports']:,} reports (baseline: one raw list)",
         f"{line['http_ms']}", f"{line['raw_list_ms']}",
         ratio(line["http_ms"], line["raw_list_ms"]))
        for line in lines if "page" in line
    ]


def processing_rows(result: dict[str, Any]) -> list[Row]:
    rows = []
    for dump in result.get("dumps", []):
        rows.append((f"process {dump['dump']} ms (baseline: minidump-stackwalk)",
                     f"{dump['ms']}", f"{dump.get('sw_ms', '-')}",
                     f"{dump.get('ratio_in_process', '-')}"))
    if "ingest" in result:
        median = result["ingest"]["median"]
        rows.append(("ingest with processing, reports/s (baseline: without)",
                     f"{median['with_per_s']}", f"{median['without_per_s']}",
                     f"{median['with_to_without']}"))
    for page in result.get("pages", {}).get("pages", []):
        rows.append((f"{page['page']} ms, summary {page['summary']} (target 300 ms)",
                     f"{page['ms']}", "300", ratio(page["ms"], 300)))
    return rows


def symbols_rows(result: dict[str, Any]) -> list[Row]:
    size = f"{result['sym_mb']} MB .sym"
    rows = []
    local = result.get("local")
    if local:
        rows.append((f"index build s, {size} (baseline: writing the .sym)",
                     f"{local['build']['seconds']}", f"{result['generate_seconds']}",
                     ratio(local["build"]["seconds"], result["generate_seconds"])))
    if "upload" in result:
        rows.append((f"symupload v1 s, {size} (baseline: index build)",
                     f"{result['upload']['seconds']}",
                     f"{local['build']['seconds']}" if local else "-",
                     ratio(result["upload"]["seconds"], local["build"]["seconds"])
                     if local else "-"))
    for crash in result.get("crash", []):
        first = crash["first"]
        rows.append((f"30-frame crash s, {first['range_gets']} range GETs (target 1 s)",
                     f"{first['seconds']}", "1", ratio(first["seconds"], 1)))
        rows.append(("30-frame crash MB read (target 1 MB)",
                     f"{first['bytes_read'] / 1e6:.2f}", "1", f"{first['bytes_read'] / 1e6:.2f}"))
    return rows


def own_rows(result: dict[str, Any]) -> list[Row]:
    """For benchmarks whose JSON carries the table's rows."""
    return [tuple(str(cell) for cell in row) for row in result["rows"]]  # type: ignore[misc]


@dataclasses.dataclass(frozen=True)
class Bench:
    name: str
    full: list[str]
    quick: list[str]
    rows: Callable[[Any], list[Row]]
    json_lines: bool = False


BENCHES = [
    Bench("ingest", [], ["--reports", "60", "--rounds", "1", "--big-mb", "10"], ingest_rows),
    Bench("prune", [], ["--reports", "2000"], prune_rows),
    Bench("index", [], ["--reports", "1000", "--repeat", "2"], index_rows, json_lines=True),
    Bench("processing", [], ["--runs", "2", "--big-mb", "10", "--reports", "60", "--rounds", "1",
                             "--page-reports", "2000", "--signatures", "50", "--repeat", "2"],
          processing_rows),
    Bench("symbols", [], ["--funcs", "20000"], symbols_rows),
    Bench("drain", [], ["--uploads", "8"], own_rows),
    Bench("hostile_parts", [], ["--download-mb", "32"], own_rows),
]


def run_bench(bench: Bench, quick: bool) -> tuple[list[Row], str]:
    args = bench.quick if quick else bench.full
    command = [sys.executable, "-m", f"bench.{bench.name}", "--json", *args]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        return [], done.stderr.strip().splitlines()[-1:][0] if done.stderr.strip() else "failed"
    text = done.stdout.strip()
    if bench.json_lines:
        parsed: Any = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    else:
        parsed = json.loads(text[text.index("{"):])
    return bench.rows(parsed), ""


def show(table: list[tuple[str, Row]]) -> None:
    print_table([("bench", *HEADERS), *[(name, *row) for name, row in table]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--only", nargs="+", choices=[b.name for b in BENCHES])
    args = parser.parse_args()
    table: list[tuple[str, Row]] = []
    failed = []
    for bench in BENCHES:
        if args.only and bench.name not in args.only:
            continue
        started = time.monotonic()
        rows, error = run_bench(bench, args.quick)
        print(f"# {bench.name}: {time.monotonic() - started:.0f} s"
              + (f", FAILED: {error}" if error else ""), file=sys.stderr, flush=True)
        if error:
            failed.append(bench.name)
        table += [(bench.name, row) for row in rows]
    show(table)
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
