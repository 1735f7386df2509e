"""The private report viewer: index pages and report details as plain dicts.

Every function here returns plain dicts (lists, strings, numbers) that the HTML
templates and the JSON API both render, so the two cannot drift apart. Index rows come
from the bucket listing alone (the store's keys carry the facts): a page costs list
requests, never a GET per row. docs/storage-layout.md ("Filters and their cost")
gives the request count of each page and filter.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import threading
import time
import urllib.parse
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from chalicelib import bundle, report
from chalicelib.store import (
    LIST_PAGE,
    ReportNotFound,
    ReportStore,
    ReportSummary,
    StoredReport,
    StoreError,
)

PER_PAGE = 25
MAX_PER_PAGE = 100
# Keys one filtered page may examine before it shows what it found and offers to
# continue: 5 list requests.
SCAN_BUDGET = 5 * LIST_PAGE
FILTER_FIELDS = report.FACT_FIELDS
DATE_FIELDS = ("since", "until")
# A "newer" page looks for reports in time bands above its cursor, 1 s wide at first
# and 16 times wider each step (S3 lists in one direction only).
FIRST_BAND_MS = 1000
BAND_GROWTH = 16
SUMMARY_SECONDS = 30.0
_META_FIELDS = {"schema", "id", "received_at", "annotations", "query", "user_agent", "dump",
                "attachments", "crashpad_uuid", "facts"}


class BadQuery(ValueError):
    """A filter, cursor or page size in the URL cannot be used."""


@dataclasses.dataclass(frozen=True)
class Query:
    """What an index page shows: filters, a cursor, the page size.

    `before` shows reports older than that id, `after` the ones just newer; both are
    16 hex digits (any value works, not only existing ids). `offset` is only a hint for
    "Showing X-Y": cursors, not offsets, decide what a page holds.
    """

    fields: tuple[tuple[str, str], ...] = ()
    since: datetime.date | None = None
    until: datetime.date | None = None
    before: str | None = None
    after: str | None = None
    offset: int = 0
    per_page: int = PER_PAGE

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> Query:
        """Read a query string's values; empty values mean "not filtered". Raises BadQuery."""
        fields = tuple(
            (name, params[name]) for name in FILTER_FIELDS if params.get(name, "") != ""
        )
        since, until = _date(params, "since"), _date(params, "until")
        if since and until and since > until:
            raise BadQuery("since must not be after until")
        before, after = _cursor(params, "before"), _cursor(params, "after")
        if before and after:
            raise BadQuery("use either before or after, not both")
        offset = _number(params, "offset", 0, 0, 10**9)
        per_page = _number(params, "per_page", PER_PAGE, 1, MAX_PER_PAGE)
        return cls(fields, since, until, before, after, offset, per_page)

    @property
    def filtered(self) -> bool:
        return bool(self.fields or self.since or self.until)

    def filters(self) -> dict[str, str]:
        """The active filters as query-string values (for links and display)."""
        active = dict(self.fields)
        for name in DATE_FIELDS:
            value = getattr(self, name)
            if value is not None:
                active[name] = value.isoformat()
        return active

    def kept(self) -> dict[str, str]:
        """What every link from the page carries along: the filters and the page size."""
        carried = self.filters()
        if self.per_page != PER_PAGE:
            carried["per_page"] = str(self.per_page)
        return carried

    def id_range(self) -> tuple[str | None, str | None]:
        """(older_than, newer_than) ids for the date range: UTC days, both inclusive."""
        older_than = newer_than = None
        if self.until is not None:
            end = _midnight(self.until + datetime.timedelta(days=1))
            older_than = report.id_bound(end, upper=False)
        if self.since is not None:
            start = _midnight(self.since) - datetime.timedelta(milliseconds=1)
            newer_than = report.id_bound(start, upper=True)
        return older_than, newer_than


def _date(params: Mapping[str, str], name: str) -> datetime.date | None:
    value = params.get(name, "")
    if not value:
        return None
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        raise BadQuery(f"{name} must be a date like 2026-01-31") from None


def _cursor(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name, "")
    if not value:
        return None
    if not report.is_report_id(value):
        raise BadQuery(f"{name} must be a report id (16 lowercase hex digits)")
    return value


def _number(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    value = params.get(name, "")
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise BadQuery(f"{name} must be a whole number") from None
    if not low <= number <= high:
        raise BadQuery(f"{name} must be between {low} and {high}")
    return number


def _midnight(day: datetime.date) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time(), datetime.timezone.utc)


class Urls:
    """Every link the viewer shows; templates reach it as `urls`.

    In API mode, index and report links point at the JSON twins, so the API's
    dicts link to the API and the pages' dicts to pages.
    """

    def __init__(self, base: str = "", api: bool = False) -> None:
        self.base = base.rstrip("/")
        self.api = api

    def as_api(self) -> Urls:
        return Urls(self.base, api=True)

    def as_html(self) -> Urls:
        return Urls(self.base, api=False)

    def path(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        pairs = {k: v for k, v in (params or {}).items() if v is not None and v != ""}
        query = "?" + urllib.parse.urlencode(pairs) if pairs else ""
        return self.base + path + query

    def index(self, filters: Mapping[str, str] | None = None, **cursor: Any) -> str:
        if cursor.get("offset") == 0:
            cursor.pop("offset")
        return self.path("/api/reports" if self.api else "/", {**(filters or {}), **cursor})

    def filter_by(self, filters: Mapping[str, str], field: str, value: str) -> str:
        """The index with one more filter (a table cell's link)."""
        return self.index({**filters, field: value})

    def report(self, report_id: str) -> str:
        return self.path(("/api/reports/" if self.api else "/reports/") + report_id)

    def dump(self, report_id: str) -> str:
        return self.path(f"/reports/{report_id}/dump")

    def attachment(self, report_id: str, index: int) -> str:
        return self.path(f"/reports/{report_id}/attachments/{index}")

    def bundle(self, report_id: str) -> str:
        return self.path(f"/reports/{report_id}/bundle")


# -- index ------------------------------------------------------------------------


@dataclasses.dataclass
class _Scan:
    """What a page's listing found, and where it stopped."""

    rows: list[ReportSummary]
    scanned: int = 0
    complete: bool = True  # False: the scan budget ran out first
    stopped_at: str | None = None  # the last id examined, when incomplete
    more_older: bool = False
    newest: bool = False


class _Matcher:
    """Field filters on listing keys; truncated key values are confirmed by a read."""

    def __init__(self, reports: ReportStore, fields: tuple[tuple[str, str], ...]) -> None:
        self.reports = reports
        self.fields = fields
        self.confirmed = 0

    def __call__(self, summary: ReportSummary) -> bool:
        needs_read = False
        for field, wanted in self.fields:
            value = summary.facts.get(field, "")
            if field not in summary.truncated:
                if value != wanted:
                    return False
                continue
            # The key holds a cut prefix (a cut mid-character decodes to U+FFFD).
            if not wanted.startswith(value.rstrip("\ufffd")):
                return False
            needs_read = True
        if not needs_read:
            return True
        self.confirmed += 1
        try:
            facts = self.reports.get(summary.id).meta.get("facts", {})
        except ReportNotFound:  # pruned since the listing
            return False
        return all(facts.get(field, "") == wanted for field, wanted in self.fields)


def index_page(reports: ReportStore, query: Query, urls: Urls) -> dict[str, Any]:
    """One index page, newest first, with links to the newer and older pages."""
    match = _Matcher(reports, query.fields)
    if query.after is not None:
        scan = _newer(reports, query, query.after, match)
        offset = max(0, query.offset - query.per_page)
        if scan.newest:
            offset = 0
    else:
        scan = _older(reports, query, query.before, match)
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
    if not first_page:
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
    return {
        "reports": [_row(summary, urls) for summary in rows],
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


def _row(summary: ReportSummary, urls: Urls) -> dict[str, Any]:
    return {
        "id": summary.id,
        "received_at": report.isoformat(summary.received_at),
        "facts": {field: summary.facts.get(field, "") for field in report.FACT_FIELDS},
        "truncated": sorted(summary.truncated),
        "dump_size": summary.dump_size,
        "url": urls.report(summary.id),
    }


def _min_id(*ids: str | None) -> str | None:
    present = [i for i in ids if i is not None]
    return min(present) if present else None


def _older(
    reports: ReportStore, query: Query, before: str | None, match: Callable[..., bool]
) -> _Scan:
    """Up to per_page matches older than `before`, newest first; peeks one past them."""
    upper, lower = query.id_range()
    filtered = bool(query.fields)
    # Unfiltered pages need only per_page + 1 keys: ask for no more, the answer is smaller.
    page_size = LIST_PAGE if filtered else query.per_page + 1
    scan = _Scan(rows=[])
    for summary in reports.iter_newest(_min_id(before, upper), lower, page_size):
        if len(scan.rows) == query.per_page:
            scan.more_older = True
            break
        scan.scanned += 1
        scan.stopped_at = summary.id
        if match(summary):
            scan.rows.append(summary)
        if filtered and scan.scanned == SCAN_BUDGET:
            # Stop before the listing asks for more keys; "more" is assumed, not peeked.
            scan.more_older = True
            scan.complete = len(scan.rows) == query.per_page
            break
    if scan.complete:
        scan.stopped_at = None
    scan.newest = before is None
    return scan


def _newer(
    reports: ReportStore, query: Query, after: str, match: Callable[..., bool]
) -> _Scan:
    """The per_page matches just newer than `after`, newest first.

    S3 lists newest first only, so the page is found from above: see _newer_by_probes
    and _newer_by_bands. With no more than a page of newer matches, the answer is the
    first page.
    """
    if query.fields:
        return _newer_by_bands(reports, query, after, match)
    return _newer_by_probes(reports, query, after, match)


def _band_tops(query: Query, after: str) -> Iterator[tuple[str | None, bool]]:
    """(top id, reaches the newest?) of bands above `after`: 1 s, then 16 times wider."""
    upper, _ = query.id_range()
    cursor_ms = int(after[:11], 16)
    now_ms = int(time.time() * 1000)
    width = FIRST_BAND_MS
    while True:
        top_ms = cursor_ms + width
        final = top_ms > now_ms + 60_000  # past now, with clock skew between writers to spare
        top = upper if final else _min_id(upper, f"{min(top_ms, 16**11 - 1):011x}00000")
        yield top, final or (upper is not None and top == upper)
        width *= BAND_GROWTH


def _newer_by_probes(
    reports: ReportStore, query: Query, after: str, match: Callable[..., bool]
) -> _Scan:
    """Unfiltered: probe small listings down to the cursor from ever higher tops.

    A probe lists at most 4 * per_page keys below a top id (one small request). Tops
    grow as time bands do until a probe holds more than a page; a top that holds too
    many is bisected (over ids) with the last one that held few enough. Cost: one small
    list request per probe, about log16(gap / 1 s) + a few.
    """
    limit = query.per_page
    most = min(LIST_PAGE, 4 * limit)
    _, lower = query.id_range()
    floor = max(after, lower) if lower else after

    def probe(top: str | None) -> list[ReportSummary] | None:
        """The reports between the cursor and `top`, or None when `most` or more."""
        found: list[ReportSummary] = []
        for summary in reports.iter_newest(top, floor, most):
            found.append(summary)
            if len(found) == most:
                return None
        return found

    low = floor  # invariant: probe(low) holds at most a page
    for top, final in _band_tops(query, after):
        rows = probe(top)
        if rows is not None and len(rows) < limit and final:
            return _older(reports, query, None, match)
        if rows is not None and len(rows) <= limit and not final:
            # Exactly a page may still have newer reports above: look higher first.
            low = top or low
            continue
        from_top, high = rows is not None, int(top or "f" * 16, 16)
        while rows is None:  # too many below `high`: bisect between low and high
            middle = f"{(int(low, 16) + high) // 2:016x}"
            rows = probe(middle)
            if rows is None:
                high = int(middle, 16)
            elif len(rows) < limit:
                low, rows = middle, None
        newest = final and from_top and len(rows) == limit
        return _Scan(rows=rows[len(rows) - limit:], scanned=len(rows), more_older=True,
                     newest=newest)
    raise AssertionError("unreachable: the last band is final")


def _newer_by_bands(
    reports: ReportStore, query: Query, after: str, match: Callable[..., bool]
) -> _Scan:
    """Filtered: list whole time bands above the cursor, nearest first, keeping matches.

    Each band's listing asks for about 16 times the keys the previous band held (100
    to 1,000 a request), and all bands together examine at most SCAN_BUDGET keys.
    """
    _, lower = query.id_range()
    kept: list[ReportSummary] = []  # matches between the cursor and the last band
    low = max(after, lower) if lower else after
    scanned, page_size = 0, 100
    for high, final in _band_tops(query, after):
        band: collections.deque[ReportSummary] = collections.deque(maxlen=query.per_page)
        found = in_band = 0
        for summary in reports.iter_newest(high, low, page_size):
            scanned += 1
            in_band += 1
            if match(summary):
                band.append(summary)
                found += 1
            if scanned == SCAN_BUDGET:
                # Out of budget mid-band: show this band's matches down to here and
                # continue older from here, so no match is skipped either way.
                return _Scan(rows=list(band), scanned=scanned, complete=False,
                             stopped_at=summary.id, more_older=True)
        if final and found + len(kept) <= query.per_page:
            first = _older(reports, query, None, match)
            first.scanned += scanned
            return first
        need = query.per_page - len(kept)
        kept = list(band)[len(band) - min(need, len(band)):] + kept
        if final or found > need:
            return _Scan(rows=kept, scanned=scanned, more_older=True)
        if found == need:  # full, but are there newer matches above this band?
            newest = not _any_newer(reports, query, kept[0].id, match)
            return _Scan(rows=kept, scanned=scanned, more_older=True, newest=newest)
        assert high is not None  # a band that is not final has a top
        low = f"{int(high, 16) - 1:016x}"
        page_size = max(100, min(LIST_PAGE, in_band * BAND_GROWTH + 50))
    raise AssertionError("unreachable: the last band is final")


def _any_newer(
    reports: ReportStore, query: Query, than: str, match: Callable[..., bool]
) -> bool:
    """Whether a match newer than `than` exists (True when the scan budget runs out)."""
    upper, _ = query.id_range()
    for scanned, summary in enumerate(reports.iter_newest(upper, than, LIST_PAGE), 1):
        if match(summary) or scanned == SCAN_BUDGET:
            return True
    return False


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


# -- one report ---------------------------------------------------------------------


def report_page(reports: ReportStore, report_id: str, urls: Urls) -> dict[str, Any]:
    """Everything stored about one report, with download links. Raises ReportNotFound."""
    meta = reports.get(report_id).meta
    return describe(meta, report_id, urls)


def describe(meta: Mapping[str, Any], report_id: str, urls: Urls) -> dict[str, Any]:
    """The report page's dict from its metadata JSON."""
    dump = meta.get("dump") or {}
    twin = urls.as_html() if urls.api else urls.as_api()
    return {
        "id": report_id,
        "received_at": meta.get("received_at", report.isoformat(report.report_time(report_id))),
        "facts": {f: str((meta.get("facts") or {}).get(f, "")) for f in report.FACT_FIELDS},
        "annotations": dict(sorted((meta.get("annotations") or {}).items())),
        "query": dict(sorted((meta.get("query") or {}).items())),
        "server": {
            "id": report_id,
            "received_at": meta.get("received_at", ""),
            "user_agent": meta.get("user_agent", ""),
            "crashpad_uuid": meta.get("crashpad_uuid", ""),
            "schema": meta.get("schema", ""),
        },
        "dump": {
            "filename": dump.get("filename", ""),
            "size": dump.get("size", 0),
            "sha256": dump.get("sha256", ""),
            "url": urls.dump(report_id),
            "download_name": f"{report_id}.dmp",
        },
        "attachments": [
            {
                "index": index,
                "name": item.get("name", ""),
                "field": item.get("field", ""),
                "size": item.get("size", 0),
                "sha256": item.get("sha256", ""),
                "url": urls.attachment(report_id, index),
                "download_name": bundle.safe_filename(item.get("name", ""), "attachment"),
            }
            for index, item in enumerate(meta.get("attachments") or [])
        ],
        "bundle": {"name": bundle.name_for(meta), "url": urls.bundle(report_id)},
        # Fields later versions add (crash facts, for one) show up without a code change.
        "other": {k: v for k, v in sorted(meta.items()) if k not in _META_FIELDS},
        "links": {
            "self": urls.report(report_id),
            "alternate": twin.report(report_id),
            "index": urls.index(),
        },
    }


def attachment_index(value: str) -> int:
    """The attachment number from a URL; anything but a small number is not found."""
    if not (value.isascii() and value.isdigit()) or len(value) > 4:
        raise ReportNotFound(f"attachment {value}")
    return int(value)


def attachment_meta(stored: StoredReport, index: int) -> dict[str, Any]:
    """The metadata entry of attachment `index`; raises ReportNotFound past the end."""
    if not 0 <= index < len(stored.attachments):
        raise ReportNotFound(f"{stored.id} attachment {index}")
    return stored.attachments[index]


def attachment_filename(stored: StoredReport, index: int) -> str:
    """The safe download name of attachment `index`; raises ReportNotFound past the end."""
    name = attachment_meta(stored, index).get("name", "")
    return bundle.safe_filename(str(name), "attachment")
