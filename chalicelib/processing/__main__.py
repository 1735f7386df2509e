"""Backfill: process stored reports that have no processed crash, or all of them again.

    python -m chalicelib.processing [--reprocess] [--since YYYY-MM-DD] [--dry-run]

Without --reprocess only reports never processed are taken (reports stored before
processing existed, or missed); with it every report in range is processed again,
after a processor change. Idempotent: a report's new result replaces its old one.
Prints one line per report with its progress, then a total.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from collections.abc import Iterable

from chalicelib import config, report
from chalicelib.crash_store import CrashStore
from chalicelib.processing import processor
from chalicelib.processing.worker import unprocessed
from chalicelib.store import ReportStore, StoreError
from chalicelib.symbol_store import SymbolStore


def _since(value: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from None


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m chalicelib.processing",
        description="Process stored crash reports: the unprocessed ones, or all again.",
    )
    parser.add_argument("--reprocess", action="store_true",
                        help="process every report in range again, not only unprocessed ones")
    parser.add_argument("--since", type=_since, default=None,
                        help="only reports received on or after this UTC day (YYYY-MM-DD)")
    parser.add_argument("--dry-run", action="store_true",
                        help="list the reports that would be processed; write nothing")
    args = parser.parse_args(None if argv is None else list(argv))
    try:
        cfg = config.load()
    except config.ConfigError as error:
        parser.error(str(error))
    reports, crashes = ReportStore.from_config(cfg), CrashStore.from_config(cfg)
    symbols = SymbolStore.from_config(cfg)
    newer_than = None
    if args.since is not None:
        midnight = datetime.datetime.combine(args.since, datetime.time(), datetime.timezone.utc)
        newer_than = report.id_bound(midnight - datetime.timedelta(milliseconds=1), True)
    started = time.monotonic()
    try:
        todo = list(
            reports.iter_newest(newer_than=newer_than) if args.reprocess
            else unprocessed(reports, crashes, newer_than)
        )
        print(f"{len(todo)} reports to process", flush=True)
        errors = 0
        for number, stored in enumerate(todo, 1):
            if args.dry_run:
                print(f"[{number}/{len(todo)}] would process {stored.id}", flush=True)
                continue
            entry = processor.process_report(
                reports, crashes, stored, symbols,
                seconds=cfg.processing_seconds, megabytes=cfg.processing_memory_mb,
            )
            errors += entry.is_error
            print(f"[{number}/{len(todo)}] {stored.id} {entry.reason} | {entry.signature}",
                  flush=True)
    except StoreError as error:
        print(f"processing stopped: {error}", file=sys.stderr)
        return 1
    verb = "would process" if args.dry_run else "processed"
    print(f"{verb} {len(todo)} reports ({errors} unreadable) "
          f"in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
