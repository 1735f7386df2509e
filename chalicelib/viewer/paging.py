"""Index listings: which reports one page holds, found from the bucket listing.

S3 lists keys newest first only, so an older page lists down from its cursor and a
newer page searches upwards in growing time bands. Filtered listings stop after
SCAN_BUDGET keys and say where they stopped, so no page costs more than a few list
requests; docs/storage-layout.md ("Filters and their cost") gives the counts.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import time
from collections.abc import Callable, Iterable, Iterator

from chalicelib.crash_store import CrashStore
from chalicelib.store import LIST_PAGE, ReportNotFound, ReportStore, ReportSummary
from chalicelib.viewer.query import Query

# Keys one filtered page may examine before it shows what it found and offers to
# continue: 5 list requests.
SCAN_BUDGET = 5 * LIST_PAGE
# A "newer" page looks for reports in time bands above its cursor, 1 s wide at first
# and 16 times wider each step (S3 lists in one direction only).
FIRST_BAND_MS = 1000
BAND_GROWTH = 16


@dataclasses.dataclass
class Scan:
    """What a page's listing found, and where it stopped."""

    rows: list[ReportSummary]
    scanned: int = 0
    complete: bool = True  # False: the scan budget ran out first
    stopped_at: str | None = None  # the last id examined, when incomplete
    more_older: bool = False
    newest: bool = False


class Matcher:
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


def _min_id(*ids: str | None) -> str | None:
    present = [i for i in ids if i is not None]
    return min(present) if present else None


def scan_older(
    reports: ReportStore, query: Query, before: str | None, match: Callable[..., bool]
) -> Scan:
    """Up to per_page matches older than `before`, newest first; peeks one past them."""
    upper, lower = query.id_range()
    listing = reports.iter_newest(_min_id(before, upper), lower, _page_size(query))
    return _scan(listing, query, before, match)


def scan_signature(
    crashes: CrashStore, query: Query, before: str | None, match: Callable[..., bool]
) -> Scan:
    """scan_older over one signature's reports (its markers carry the report keys)."""
    upper, lower = query.id_range()
    listing = crashes.iter_signature_reports(
        query.signature or "", _min_id(before, upper), _page_size(query)
    )
    if lower is not None:
        listing = itertools.takewhile(lambda summary: summary.id > lower, listing)
    return _scan(listing, query, before, match)


def _page_size(query: Query) -> int:
    # Unfiltered pages need only per_page + 1 keys: ask for no more, the answer is smaller.
    return LIST_PAGE if query.fields else query.per_page + 1


def _scan(
    listing: Iterable[ReportSummary], query: Query, before: str | None,
    match: Callable[..., bool],
) -> Scan:
    filtered = bool(query.fields)
    scan = Scan(rows=[])
    for summary in listing:
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


def scan_newer(
    reports: ReportStore, query: Query, after: str, match: Callable[..., bool]
) -> Scan:
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
) -> Scan:
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
            return scan_older(reports, query, None, match)
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
        return Scan(rows=rows[len(rows) - limit:], scanned=len(rows), more_older=True,
                     newest=newest)
    raise AssertionError("unreachable: the last band is final")


def _newer_by_bands(
    reports: ReportStore, query: Query, after: str, match: Callable[..., bool]
) -> Scan:
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
                return Scan(rows=list(band), scanned=scanned, complete=False,
                             stopped_at=summary.id, more_older=True)
        if final and found + len(kept) <= query.per_page:
            first = scan_older(reports, query, None, match)
            first.scanned += scanned
            return first
        need = query.per_page - len(kept)
        kept = list(band)[len(band) - min(need, len(band)):] + kept
        if final or found > need:
            return Scan(rows=kept, scanned=scanned, more_older=True)
        if found == need:  # full, but are there newer matches above this band?
            newest = not _any_newer(reports, query, kept[0].id, match)
            return Scan(rows=kept, scanned=scanned, more_older=True, newest=newest)
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
