"""The index page: one page of report rows, with links to the pages around it."""

from __future__ import annotations

import threading
import time
import weakref
from typing import Any

from chalicelib import report
from chalicelib.crash_store import CrashEntry, CrashStore
from chalicelib.store import ReportStore, ReportSummary, StoreError
from chalicelib.viewer.paging import Matcher, scan_newer, scan_older, scan_signature
from chalicelib.viewer.query import FILTER_FIELDS, BadQuery, Query
from chalicelib.viewer.urls import Urls

SUMMARY_SECONDS = 30.0


def index_page(
    reports: ReportStore, query: Query, urls: Urls, crashes: CrashStore | None = None
) -> dict[str, Any]:
    """One index page, newest first, with links to the newer and older pages.

    With `crashes`, each row also shows its crash reason and signature (one more list
    request per page); a signature filter needs it.
    """
    match = Matcher(reports, query.fields)
    if query.signature is not None:
        if crashes is None:
            raise BadQuery("the signature filter needs the crash store")
        scan = scan_signature(crashes, query, query.before, match)
        offset = query.offset if query.before else 0
    elif query.after is not None:
        scan = scan_newer(reports, query, query.after, match)
        offset = max(0, query.offset - query.per_page)
        if scan.newest:
            offset = 0
    else:
        scan = scan_older(reports, query, query.before, match)
        offset = query.offset if query.before else 0
    rows = scan.rows
    filters, kept = query.filters(), query.kept()
    first_page = scan.newest or (query.before is None and query.after is None)
    links: dict[str, str | None] = {
        "self": urls.index(kept, before=query.before, after=query.after, offset=query.offset),
        "newest": urls.index(kept),
        "newer": None,
        "older": None,
        "continue": None,
    }
    if not first_page and query.signature is None:  # a signature's listing pages older only
        # An empty page's newer page ends with its cursor: "after" is exclusive, so one less.
        cursor = int(query.before or query.after or "0", 16)
        top = rows[0].id if rows else f"{max(0, cursor - 1):016x}"
        links["newer"] = urls.index(kept, after=top, offset=offset)
    if not scan.complete:
        links["continue"] = urls.index(
            kept, before=scan.stopped_at, offset=offset + len(rows)
        )
    elif scan.more_older and rows:
        links["older"] = urls.index(kept, before=rows[-1].id, offset=offset + len(rows))
    twin = urls.as_html() if urls.api else urls.as_api()
    links["alternate"] = twin.index(
        kept, before=query.before, after=query.after, offset=query.offset
    )
    total = None if query.filtered else stored_count(reports)
    if total is not None:
        total = max(total, offset + len(rows))
    processed = crashes.crash_entries([row.id for row in rows]) if crashes and rows else {}
    return {
        "reports": [report_row(summary, urls, processed.get(summary.id), crashes is not None)
                    for summary in rows],
        "filters": filters,
        "filter_fields": list(FILTER_FIELDS),
        "per_page": query.per_page,
        "first": offset + 1 if rows else 0,
        "last": offset + len(rows),
        "total_estimate": total,
        "newest_page": first_page,
        "empty_bucket": not rows and not query.filtered and first_page and scan.complete,
        "scan": {
            "complete": scan.complete,
            "keys_scanned": scan.scanned,
            "stopped_at": scan.stopped_at,
            "reads_to_confirm": match.confirmed,
        },
        "links": links,
    }


def report_row(
    summary: ReportSummary, urls: Urls, entry: CrashEntry | None = None, crashes: bool = False
) -> dict[str, Any]:
    """One report's row; with `crashes`, its `crash` (None until processed)."""
    row: dict[str, Any] = {
        "id": summary.id,
        "received_at": report.isoformat(summary.received_at),
        "facts": {field: summary.facts.get(field, "") for field in report.FACT_FIELDS},
        "truncated": sorted(summary.truncated),
        "dump_size": summary.dump_size,
        "url": urls.report(summary.id),
    }
    if crashes:
        row["crash"] = None if entry is None else {
            "reason": entry.reason,
            "error": entry.is_error,
            "sig": None if entry.is_error else entry.sig,
            "signature": entry.signature,
            "signature_cut": entry.signature_cut,
            "signature_url": None if entry.is_error else urls.signature(entry.sig),
        }
    return row


# -- totals -------------------------------------------------------------------------

_counts: weakref.WeakKeyDictionary[ReportStore, tuple[float, int | None]] = (
    weakref.WeakKeyDictionary()
)
_counts_lock = threading.Lock()


def stored_count(reports: ReportStore) -> int | None:
    """How many reports the pruner counted at its last run, or None without a summary.

    Read at most every SUMMARY_SECONDS per store: it changes once per pruning run.
    """
    now = time.monotonic()
    with _counts_lock:
        cached = _counts.get(reports)
    if cached is not None and cached[0] > now:
        return cached[1]
    try:
        summary = reports.get_summary()
    except (StoreError, ValueError) as error:  # unreadable: show no total
        summary = {"error": str(error)}
    count = None
    if isinstance(summary, dict):
        count = summary.get("total_reports", summary.get("reports"))
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        count = None
    with _counts_lock:
        _counts[reports] = (now + SUMMARY_SECONDS, count)
    return count
