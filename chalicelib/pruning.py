"""Pruning: keep the stored reports under MAX_REPORTS_SIZE_MB, oldest whole reports first.

One listing of the prefix is the whole input: it gives every report (its commit marker
key, with id and facts), every part with its size and age, and nothing needs opening.
From it a run decides what goes, deletes it in DeleteObjects batches, and writes the
summary object the viewer reads for its totals. docs/storage-layout.md states the rules,
docs/pruning.md the command and the log line.

    python -m chalicelib.pruning [--dry-run] [--max-mb N]
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import dataclasses
import datetime
import json
import logging
import sys
import time
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from chalicelib import config, crash_store, crash_summary, prune_scan, report, report_keys
from chalicelib.prune_scan import FACETS, Output, Report
from chalicelib.store import ReportStore, StoreError

log = logging.getLogger("pruning")
# On Lambda the root logger stays at WARNING; the run's one line must still get out.
if log.level == logging.NOTSET:
    log.setLevel(logging.INFO)

SUMMARY_SCHEMA = 1
# Most values kept per facet in the summary; the rest are summed into "omitted", so
# client-chosen versions or products cannot grow the object without bound.
FACET_LIMIT = 1000
CLAIM_CHECKS = 16  # orphan claims checked at once before they are deleted


@dataclasses.dataclass
class PruneResult:
    """What one run saw and did; `as_log_line()` is the line it logs."""

    objects_scanned: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    limit_bytes: int = 0
    reports_deleted: int = 0
    orphans_removed: int = 0
    orphan_bytes: int = 0
    in_progress_uploads: int = 0
    other_keys: int = 0
    processing_orphans_removed: int = 0
    unprocessed: int = 0
    s3_requests: dict[str, int] = dataclasses.field(default_factory=dict)
    duration_ms: int = 0
    dry_run: bool = False
    newest_deleted_id: str | None = None
    deleted_reports: list[tuple[str, list[str]]] = dataclasses.field(default_factory=list)
    orphan_keys: list[str] = dataclasses.field(default_factory=list)
    summary: dict[str, Any] | None = None
    signature_summary: dict[str, Any] | None = None
    unprocessed_ids: list[str] = dataclasses.field(default_factory=list)
    reprocess_ids: list[str] = dataclasses.field(default_factory=list)

    LOGGED: ClassVar[tuple[str, ...]] = (
        "objects_scanned", "bytes_before", "bytes_after", "limit_bytes", "reports_deleted",
        "orphans_removed", "orphan_bytes", "in_progress_uploads", "other_keys",
        "processing_orphans_removed", "unprocessed", "s3_requests",
        "duration_ms", "dry_run", "newest_deleted_id",
    )

    @property
    def deleted_ids(self) -> list[str]:
        return [report_id for report_id, _ in self.deleted_reports]

    def as_log_line(self) -> str:
        return json.dumps({name: getattr(self, name) for name in self.LOGGED}, sort_keys=True)


def prune_to_limit(
    store: ReportStore,
    max_bytes: int,
    orphan_grace_seconds: int,
    now: datetime.datetime | None = None,
    dry_run: bool = False,
) -> PruneResult:
    """Delete the oldest reports, each whole, until the stored reports fit in max_bytes.

    Counted bytes are every report (metadata, dump, attachments) plus the parts of
    uploads that have not committed yet; keys outside the layout and summary.json are
    neither counted nor touched. Parts without a report whose newest part is older
    than orphan_grace_seconds are removed as orphans. Unless dry_run, the summary
    object is rewritten from the reports kept.

    Args:
        now: the time orphan ages are measured against (default: the clock).
        dry_run: decide and report, but delete and write nothing.
    Raises:
        StoreError (or StoreUnavailable) when listing, a delete batch or the summary
        write fails; batches already sent stay deleted.
    """
    started = time.monotonic()
    requests_before = collections.Counter(store.requests)
    now = now or datetime.datetime.now(datetime.timezone.utc)
    result = PruneResult(limit_bytes=max_bytes, dry_run=dry_run)

    reports, uploads, output = prune_scan.scan(store, result)
    reports.sort(key=lambda item: item.id)
    # A stem's parts go with its newest report: normally the only one, but a report
    # whose dump was pruned could be re-uploaded under the same claim with a new id.
    newest_of_stem = {item.claim: item for item in reports}
    for stem, item in newest_of_stem.items():
        upload = uploads.pop(stem, None)
        if upload is not None:
            item.parts_size, item.part_keys = upload.size, upload.keys

    cutoff = now.timestamp() - orphan_grace_seconds
    prune_scan.attach_resumed_claims(reports, uploads, cutoff)
    in_progress_bytes = 0
    for upload in uploads.values():  # parts no report claims
        # A retry never writes to a listed stem (it resumes under a fresh one), so
        # parts older than the grace period stay dead until they are deleted.
        if upload.newest < cutoff:
            result.orphan_keys.extend(upload.keys)
            result.orphan_bytes += upload.size
        else:
            result.in_progress_uploads += 1
            in_progress_bytes += upload.size
    result.orphans_removed = len(result.orphan_keys)

    kept_bytes = sum(item.meta_size + item.parts_size for item in reports)
    result.bytes_before = kept_bytes + in_progress_bytes + result.orphan_bytes
    cut = 0
    while cut < len(reports) and kept_bytes + in_progress_bytes > max_bytes:
        kept_bytes -= reports[cut].meta_size + reports[cut].parts_size
        cut += 1
    deleted, kept = reports[:cut], reports[cut:]
    result.bytes_after = kept_bytes + in_progress_bytes
    result.reports_deleted = len(deleted)
    result.newest_deleted_id = deleted[-1].id if deleted else None
    _attach_output(reports, output, result, cutoff)
    result.deleted_reports = [
        (item.id, [item.key, *item.part_keys, *item.output_keys]) for item in deleted
    ]
    result.summary = build_summary(kept, now)
    result.signature_summary = crash_summary.build(
        (crash_summary.CountedReport(item.id, *item.facets) for item in kept),
        output.crashes, now,
    )
    result.signature_summary["missing_symbols"] = crash_summary.missing_symbols(
        collections.Counter({module: len(ids) for module, ids in output.notes.items()}),
        output.with_symbols,
    )
    # Notes of modules that have symbols now: a reprocessing that did not finish.
    kept_ids = {item.id for item in kept}
    result.reprocess_ids = sorted(
        report_id for module in output.notes.keys() & output.with_symbols
        for report_id in output.notes[module] if report_id in kept_ids
    )

    if not dry_run:
        # Every commit marker goes in the same or an earlier batch than any part, so a
        # failed batch leaves parts without a report (orphans, removed later) rather
        # than a listed report whose dump is gone. Claims go last, in batches of their
        # own: while a claim exists a new upload of it writes under a fresh stem, so a
        # stem is only ever reused once every key listed under it is gone.
        keys = [item.key for item in deleted]
        keys += [key for item in deleted for key in item.part_keys]
        keys += result.orphan_keys
        keys += [key for item in deleted for key in item.output_keys]
        keys += output.orphan_keys
        claims = [key for key in keys if report_keys.is_claim_key(key)]
        store.delete_keys([key for key in keys if not report_keys.is_claim_key(key)])
        kept = _committed_since(store, result)
        store.delete_keys([key for key in claims if key not in kept])
        store.put_summary(result.summary)
        store.put_json(crash_store.SIGNATURE_SUMMARY, result.signature_summary)

    result.s3_requests = dict(collections.Counter(store.requests) - requests_before)
    result.duration_ms = round((time.monotonic() - started) * 1000)
    log.info(result.as_log_line())
    return result


def _committed_since(store: ReportStore, result: PruneResult) -> set[str]:
    """The orphans' claims whose report a retry has committed since the listing: they
    stay, so that a later retry still answers that id. Two requests per orphan claim
    (orphans are cut uploads: rare), CLAIM_CHECKS at a time."""
    claims = {key: claim for key in result.orphan_keys if (claim := report_keys.claim_of(key))}
    if not claims:
        return set()
    with concurrent.futures.ThreadPoolExecutor(CLAIM_CHECKS) as pool:
        answers = list(pool.map(store.claim_committed, claims.values()))
    return {key for key, committed in zip(claims, answers, strict=True) if committed}


def _attach_output(
    reports: Sequence[Report], output: Output, result: PruneResult, cutoff: float
) -> None:
    """Give each report its processing keys; keys of no listed report are orphans once
    older than the grace period (a report pruned while it was being processed)."""
    for item in reports:
        item.output_keys = [key for key, _ in output.keys.pop(item.id, ())]
        if item.id not in output.crashes:
            result.unprocessed += 1
            result.unprocessed_ids.append(item.id)
    for keys in [*output.keys.values(), output.staged]:
        for key, modified in keys:
            if modified < cutoff:
                output.orphan_keys.append(key)
    result.processing_orphans_removed = len(output.orphan_keys)


def build_summary(kept: Sequence[Report], now: datetime.datetime) -> dict[str, Any]:
    """The viewer's totals: count, bytes, counts per product/version/platform and UTC day.

    `newest_id` marks where this run's listing began: reports above it came later.
    """
    by_facet = {name: collections.Counter[str]() for name in FACETS}
    by_day: collections.Counter[str] = collections.Counter()
    total_bytes = 0
    for item in kept:
        total_bytes += item.meta_size + item.parts_size
        for name, value in zip(FACETS, item.facets, strict=True):
            by_facet[name][value] += 1
        by_day[report.report_time(item.id).date().isoformat()] += 1
    summary: dict[str, Any] = {
        "schema": SUMMARY_SCHEMA,
        "generated_at": report.isoformat(now),
        "total_reports": len(kept),
        "total_bytes": total_bytes,
        "oldest_id": kept[0].id if kept else None,
        "newest_id": kept[-1].id if kept else None,
        "by_day": dict(sorted(by_day.items())),
        "omitted": {},
    }
    for name, counts in by_facet.items():
        top = counts.most_common(FACET_LIMIT)
        summary[f"by_{name}"] = dict(sorted(top))
        summary["omitted"][f"by_{name}"] = len(kept) - sum(count for _, count in top)
    return summary


def _print_plan(result: PruneResult, out: Any) -> None:
    for report_id, keys in result.deleted_reports:
        print(f"would delete report {report_id}", file=out)
        for key in keys:
            print(f"  {key}", file=out)
    for key in result.orphan_keys:
        print(f"would delete orphan part {key}", file=out)


def main(argv: Iterable[str] | None = None) -> int:
    """The command line: one run against the configured bucket, then its JSON line."""
    parser = argparse.ArgumentParser(
        prog="python -m chalicelib.pruning",
        description="Delete the oldest crash reports until the bucket fits the size limit.",
    )
    parser.add_argument("--dry-run", action="store_true",
                        help="print what would be deleted; delete and write nothing")
    parser.add_argument("--max-mb", type=float, default=None,
                        help="size limit in MiB (default: MAX_REPORTS_SIZE_MB)")
    args = parser.parse_args(None if argv is None else list(argv))
    try:
        cfg = config.load()
    except config.ConfigError as error:
        parser.error(str(error))
    if args.max_mb is not None and args.max_mb < 0:
        parser.error("--max-mb must not be negative")
    limit = cfg.max_reports_bytes if args.max_mb is None else int(args.max_mb * config.MIB)
    try:
        result = prune_to_limit(
            ReportStore.from_config(cfg), limit, cfg.orphan_grace_seconds, dry_run=args.dry_run
        )
    except StoreError as error:
        print(f"pruning failed: {error}", file=sys.stderr)
        return 1
    if args.dry_run:
        _print_plan(result, sys.stdout)
    print(result.as_log_line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
