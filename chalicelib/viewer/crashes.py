"""The Crashes page (signatures ranked by reports) and one page per signature.

Both read the pruner's signature summary (viewer.summary: one GET at most every 30 s).
A signature page lists the signature's reports live from its markers, so a signature
the summary does not know yet still has its page, with the facts its newest reports
give.
"""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Mapping
from typing import Any

from chalicelib import report
from chalicelib.crash_store import CrashStore, is_signature_id
from chalicelib.store import ReportNotFound, ReportSummary
from chalicelib.viewer import charts
from chalicelib.viewer.index import report_row
from chalicelib.viewer.query import BadQuery
from chalicelib.viewer.summary import count, counts, signature_summary
from chalicelib.viewer.urls import Urls

WINDOWS = {"7": "last 7 days", "30": "last 30 days", "all": "all stored"}
DEFAULT_WINDOW = "7"
SIGNATURES_PER_PAGE = 50
REPORTS_PER_PAGE = 25
TOP_FACTS = 3


def crashes_page(crashes: CrashStore, params: Mapping[str, str], urls: Urls) -> dict[str, Any]:
    """Signatures ranked by their reports in the window (?window=7|30|all, ?page=N)."""
    window = params.get("window", "") or DEFAULT_WINDOW
    if window not in WINDOWS:
        raise BadQuery("window must be 7, 30 or all")
    page = _page_number(params.get("page", ""))
    twin = urls.as_html() if urls.api else urls.as_api()
    summary = signature_summary(crashes)
    data: dict[str, Any] = {
        "summary": summary is not None,
        "window": window,
        "windows": [{"value": value, "label": label, "url": urls.crashes(value),
                     "current": value == window} for value, label in WINDOWS.items()],
        "links": {"self": urls.crashes(window, page), "alternate": twin.crashes(window, page),
                  "reports": urls.index(), "newer": None, "older": None},
    }
    if summary is None:
        return {**data, "generated_at": None, "totals": None, "signatures": [],
                "signature_count": 0, "page": 1, "pages": 1, "first": 0, "last": 0,
                "chart": None}
    days = summary["days"][-30:]
    counted_days = {"7": days[-7:], "30": days, "all": None}[window]
    ranked, every_day = [], []
    for sig, entry in summary["signatures"].items():
        if not is_signature_id(sig) or not isinstance(entry, dict):
            continue
        by_day = _by_day(entry, days)
        every_day.append(by_day)
        if counted_days is None:
            reports = count(entry.get("count"))
        else:
            reports = sum(sum(by_day.get(day, {}).values()) for day in counted_days)
        if reports > 0:
            ranked.append((reports, str(entry.get("last_seen") or ""), sig, entry, by_day))
    ranked.sort(key=lambda item: item[2])
    ranked.sort(key=lambda item: (item[0], item[1]), reverse=True)
    pages = max(1, -(-len(ranked) // SIGNATURES_PER_PAGE))
    if page > pages:
        raise BadQuery(f"page must be between 1 and {pages}")
    start = (page - 1) * SIGNATURES_PER_PAGE
    shown = ranked[start:start + SIGNATURES_PER_PAGE]
    if page > 1:
        data["links"]["newer"] = urls.crashes(window, page - 1)
    if page < pages:
        data["links"]["older"] = urls.crashes(window, page + 1)
    return {
        **data,
        "generated_at": str(summary.get("generated_at", "")),
        "totals": {name: count(summary.get(name)) for name in
                   ("total_reports", "processed", "unprocessed", "errors")},
        "omitted_signatures": count(summary.get("omitted_signatures")),
        "signature_count": len(ranked),
        "page": page,
        "pages": pages,
        "first": start + 1 if shown else 0,
        "last": start + len(shown),
        "signatures": [
            _signature_row(sig, entry, by_day, reports, days, urls)
            for reports, _, sig, entry, by_day in shown
        ],
        "chart": charts.reports_chart(days, charts.merge_days(every_day, days)),
    }


def signature_page(
    crashes: CrashStore, sig: str, params: Mapping[str, str], urls: Urls
) -> dict[str, Any]:
    """One signature: its facts, its chart and its reports, newest first (?before=<id>).

    Raises ReportNotFound for a malformed id, or one with neither a summary entry nor
    reports.
    """
    if not is_signature_id(sig):
        raise ReportNotFound(f"signature {sig}")
    before = params.get("before", "") or None
    if before is not None and not report.is_report_id(before):
        raise BadQuery("before must be a report id (16 lowercase hex digits)")
    listed = list(itertools.islice(
        crashes.iter_signature_reports(sig, before, REPORTS_PER_PAGE + 1), REPORTS_PER_PAGE + 1
    ))
    rows, more = listed[:REPORTS_PER_PAGE], len(listed) > REPORTS_PER_PAGE
    summary = signature_summary(crashes)
    entry = (summary or {}).get("signatures", {}).get(sig)
    entry = entry if isinstance(entry, dict) else None
    if entry is None and not rows and before is None:
        raise ReportNotFound(f"signature {sig}")
    days = summary["days"][-30:] if summary else []
    facts = _facts_from_summary(sig, entry, days, urls) if entry else \
        _facts_from_listing(crashes, sig, rows, urls)
    if facts["signature_cut"] and rows:
        # The summary and the keys hold a cut text: the newest report's crash has it whole.
        full = (crashes.get_crash(rows[0].id) or {}).get("signature")
        if isinstance(full, str) and full:
            facts["signature"], facts["signature_cut"] = full, False
    twin = urls.as_html() if urls.api else urls.as_api()
    return {
        "sig": sig,
        **facts,
        "in_summary": entry is not None,
        "generated_at": str(summary.get("generated_at", "")) if summary else None,
        "reports": [report_row(row, urls) for row in rows],
        "newest_page": before is None,
        "links": {
            "self": urls.signature(sig, before),
            "alternate": twin.signature(sig, before),
            "newest": urls.signature(sig),
            "older": urls.signature(sig, rows[-1].id) if more and rows else None,
            "crashes": urls.crashes(),
            "reports": urls.index({"signature": sig}),
        },
    }


def _page_number(value: str) -> int:
    if not value:
        return 1
    if not (value.isascii() and value.isdigit()) or len(value) > 6 or int(value) < 1:
        raise BadQuery("page must be a whole number from 1")
    return int(value)


def _by_day(entry: Mapping[str, Any], days: list[str]) -> dict[str, dict[str, int]]:
    by_day = entry.get("by_day")
    if not isinstance(by_day, dict):
        return {}
    return {day: counts(by_day[day]) for day in days if day in by_day}


def _top(value: Any) -> list[dict[str, Any]]:
    ranked = sorted(counts(value).items(), key=lambda item: (-item[1], item[0]))
    return [{"name": name, "count": n} for name, n in ranked]


def _seen(report_id: Any, urls: Urls) -> dict[str, str] | None:
    if not isinstance(report_id, str) or not report.is_report_id(report_id):
        return None
    return {"id": report_id, "at": report.isoformat(report.report_time(report_id)),
            "url": urls.report(report_id)}


def _signature_row(
    sig: str, entry: Mapping[str, Any], by_day: dict, reports: int, days: list[str],
    urls: Urls,
) -> dict[str, Any]:
    versions, platforms = _top(entry.get("versions")), _top(entry.get("platforms"))
    return {
        "sig": sig,
        "signature": str(entry.get("signature") or ""),
        "signature_cut": bool(entry.get("signature_cut")),
        "reason": str(entry.get("reason") or ""),
        "count": reports,
        "total": count(entry.get("count")),
        "first_seen": _seen(entry.get("first_seen"), urls),
        "last_seen": _seen(entry.get("last_seen"), urls),
        "versions": versions[:TOP_FACTS],
        "more_versions": max(0, len(versions) - TOP_FACTS),
        "platforms": platforms[:TOP_FACTS],
        "more_platforms": max(0, len(platforms) - TOP_FACTS),
        "sparkline": charts.sparkline(days, by_day),
        "url": urls.signature(sig),
    }


def _facts_from_summary(
    sig: str, entry: Mapping[str, Any], days: list[str], urls: Urls
) -> dict[str, Any]:
    return {
        "signature": str(entry.get("signature") or ""),
        "signature_cut": bool(entry.get("signature_cut")),
        "reason": str(entry.get("reason") or ""),
        "count": count(entry.get("count")),
        "first_seen": _seen(entry.get("first_seen"), urls),
        "last_seen": _seen(entry.get("last_seen"), urls),
        "versions": _top(entry.get("versions")),
        "platforms": _top(entry.get("platforms")),
        "products": _top(entry.get("products")),
        "chart": charts.reports_chart(days, _by_day(entry, days)),
    }


def _facts_from_listing(
    crashes: CrashStore, sig: str, rows: list[ReportSummary], urls: Urls
) -> dict[str, Any]:
    """What this page's reports tell, until the next summary counts the signature."""
    newest = crashes.crash_entries([rows[0].id]).get(rows[0].id) if rows else None
    today = datetime.datetime.now(datetime.timezone.utc).date()
    days = [(today - datetime.timedelta(days=back)).isoformat() for back in range(29, -1, -1)]
    by_day: dict[str, dict[str, int]] = {}
    for row in rows:
        day = by_day.setdefault(report.isoformat(row.received_at)[:10], {})
        day[row.facts.get("version", "")] = day.get(row.facts.get("version", ""), 0) + 1
    return {
        "signature": newest.signature if newest else "",
        "signature_cut": newest.signature_cut if newest else False,
        "reason": newest.reason if newest else "",
        "count": None,
        "first_seen": None,
        "last_seen": _seen(rows[0].id, urls) if rows else None,
        "versions": _tally(rows, "version"),
        "platforms": _tally(rows, "platform"),
        "products": _tally(rows, "product"),
        "chart": charts.reports_chart(days, by_day) if rows else None,
    }


def _tally(rows: list[ReportSummary], field: str) -> list[dict[str, Any]]:
    tallied: dict[str, int] = {}
    for row in rows:
        tallied[row.facts.get(field, "")] = tallied.get(row.facts.get(field, ""), 0) + 1
    return _top(tallied)
