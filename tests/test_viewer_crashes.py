"""The Crashes page and the signature pages: ranking, facts, charts, paging, JSON twins.

The pruner's signature summary is written by hand (tests/testlib/viewing.py); reports
go in through the ingest path and their processed crashes through CrashStore.put_crash.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import pytest

from chalicelib import report, viewer
from chalicelib.crash_store import signature_id
from chalicelib.viewer import summary as summary_module
from tests.testlib.viewing import (
    UTC,
    Viewer,
    crash_store,
    last_days,
    logged_in,
    ok_crash,
    put_crash,
    signature_summary,
    store_at,
)

END = datetime.date(2026, 11, 26)
DAYS = last_days(END)
BIG, SMALL, OLD = "SIGSEGV | big_crash", "SIGABRT | small_crash", "SIGILL | old_crash"


@pytest.fixture
def view(app_env, moto_backend) -> Iterator[Viewer]:
    with logged_in(app_env, moto_backend) as started:
        yield started


def rid(day: str, n: int = 0) -> str:
    """A report id received at noon on `day`."""
    when = datetime.datetime.fromisoformat(day + "T12:00:00+00:00")
    return f"{int(when.timestamp() * 1000):011x}{n:05x}"


def put_summary(view: Viewer, entries: dict, **totals: int) -> dict:
    data = signature_summary(END, entries, **totals)
    crash_store(view.backend).put_signature_summary(data)
    return data


def three_signatures(view: Viewer) -> dict:
    """BIG: 12 reports this week; SMALL: 3 this week, 20 earlier in the month; OLD: none
    in the 30 days, 50 in all."""
    return put_summary(view, {
        BIG: {"by_day": {DAYS[-1]: {"1.0": 3, "": 1}, DAYS[-2]: {"1.0": 8}},
              "versions": {"1.0": 11, "": 1}, "platforms": {"linux": 10, "win64": 2},
              "first_seen": rid(DAYS[-2]), "last_seen": rid(DAYS[-1], 5)},
        SMALL: {"by_day": {DAYS[-3]: {"2.0": 3}, DAYS[5]: {"2.0": 20}},
                "reason": "SIGABRT", "versions": {"2.0": 23}, "platforms": {"macos": 23}},
        OLD: {"by_day": {}, "count": 50, "reason": "SIGILL / ILL_ILLOPN",
              "versions": {"0.9": 50}, "platforms": {"linux": 50}},
    }, total_reports=1234, processed=1200, unprocessed=30, errors=4)


def rows(soup) -> list[tuple[str, str]]:
    return [(tr.select_one("td.sig").get_text(strip=True),
             tr.select_one("td[data-field=count]").get_text(strip=True))
            for tr in soup.select("table.signatures tbody tr")]


# -- the Crashes page -------------------------------------------------------------------


def test_without_a_summary_the_page_says_so_and_links_to_the_reports(view) -> None:
    soup = view.page("/")
    empty = soup.select_one("#no-summary")
    assert "No crash counts yet" in empty.get_text()
    assert "PRUNE_RATE_MINUTES" in empty.get_text()
    assert empty.a["href"] == "/reports"
    data = view.api("/api/crashes")
    assert data["summary"] is False and data["signatures"] == []
    assert data["links"]["reports"] == "/api/reports"


@pytest.mark.parametrize("body", [b"not json", b"[1]", b'{"schema": 2, "days": [], '
                                  b'"signatures": {}}', b'{"schema": 1, "days": "x"}'])
def test_an_odd_summary_counts_as_none(view, body: bytes) -> None:
    backend = view.backend
    backend.client.put_object(Bucket=backend.bucket, Key=backend.prefix + "signatures.json",
                              Body=body)
    assert view.page("/").select_one("#no-summary") is not None


def test_signatures_are_ranked_by_reports_in_the_window(view) -> None:
    three_signatures(view)
    soup = view.page("/")
    assert rows(soup) == [(BIG, "12"), (SMALL, "3")]
    # The chart shows all 30 days whatever the window.
    assert soup.select_one("#chart-all .legend").get_text(" ", strip=True) == (
        "2.0 (23) 1.0 (11) no version (1)")
    assert " ".join(soup.select_one("#as-of").get_text().split()).startswith(
        "As of 2026-11-26 14:00:00 UTC: 1,234 reports, 1,200 processed, 30 waiting, 4 unreadable")
    assert soup.select_one(".windows strong").get_text() == "last 7 days"
    assert rows(view.page("/?window=30")) == [(SMALL, "23"), (BIG, "12")]
    assert rows(view.page("/?window=all")) == [(OLD, "50"), (SMALL, "23"), (BIG, "12")]
    assert [a["href"] for a in soup.select(".windows a")] == ["/?window=30", "/?window=all"]
    assert "window must be" in view.page("/?window=365", status=400).select_one(
        "p.message").get_text()


def test_a_row_shows_reason_first_and_last_seen_versions_platforms_and_links(view) -> None:
    three_signatures(view)
    soup = view.page("/")
    row = soup.select_one(f"tr#s-{signature_id(BIG)}")
    text = {td["data-field"]: td.get_text(" ", strip=True) for td in row.select("td[data-field]")}
    assert text == {
        "reason": "SIGSEGV / SEGV_MAPERR", "count": "12",
        "first_seen": "2026-11-25 12:00:00", "last_seen": "2026-11-26 12:00:00",
        "versions": "1.0 (11) , none (1)", "platforms": "linux (10) , win64 (2)",
    }
    assert row.select_one("td.sig a")["href"] == f"/signatures/{signature_id(BIG)}"
    assert row.select_one("td[data-field=last_seen] a")["href"] == \
        f"/reports/{rid(DAYS[-1], 5)}"
    spark = row.select("td.spark rect.day")
    assert len(spark) == 30
    assert [r["height"] for r in spark[-2:]] == ["20.0", "10.0"]  # 8 then 4 reports
    assert spark[-1].title.get_text() == "2026-11-26: 4"
    assert spark[0]["height"] == "0.0"


def test_a_cut_signature_ends_with_an_ellipsis(view) -> None:
    put_summary(view, {"A" * 240: {"signature_cut": True, "by_day": {DAYS[-1]: {"1": 1}}}})
    cell = view.page("/").select_one("td.sig")
    assert cell.get_text(strip=True) == "A" * 240 + "…"


def test_the_chart_stacks_the_top_five_versions_and_the_rest(view) -> None:
    day = {f"v{n}": n + 1 for n in range(7)}  # v6 has 7 reports ... v0 has 1
    put_summary(view, {BIG: {"by_day": {DAYS[-1]: day, DAYS[-4]: {"v6": 7}}}})
    soup = view.page("/?window=30")
    legend = [li.get_text(" ", strip=True) for li in soup.select("#chart-all .legend li")]
    assert legend == ["v6 (14)", "v5 (6)", "v4 (5)", "v3 (4)", "v2 (3)",
                      "other versions (3)"]
    bars = {g["data-day"]: g for g in soup.select("#chart-all g.bar")}
    assert len(bars) == 30
    today = bars[DAYS[-1]]
    assert today.title.get_text() == (
        "2026-11-26: 28 reports (v6: 7, v5: 6, v4: 5, v3: 4, v2: 3, other versions: 3)")
    heights = [float(r["height"]) for r in today.select("rect.seg")]
    assert heights == [30.0, 25.71, 21.43, 17.14, 12.86, 12.86]
    assert round(sum(heights), 1) == 120.0  # the tallest bar fills the plot
    assert [float(r["height"]) for r in bars[DAYS[-4]].select("rect.seg")] == [30.0]
    assert bars[DAYS[-4]].title.get_text() == "2026-11-23: 7 reports (v6: 7)"
    assert bars[DAYS[0]].select("rect.seg") == []
    fills = {r["fill"] for r in today.select("rect.seg")}
    assert len(fills) == 6  # each series has its own pattern
    patterns = soup.select("#chart-all pattern")
    assert [p["id"] for p in patterns] == [f"chart-all-p{n}" for n in range(6)]
    table = soup.select("#chart-all details.chart-data tbody tr")
    assert [td.get_text() for td in table[-1].select("td")] == [
        DAYS[-1], "7", "6", "5", "4", "3", "3", "28"]
    assert soup.find("script") is None


def test_fifty_signatures_a_page(view) -> None:
    put_summary(view, {f"sig {n:03}": {"by_day": {DAYS[-1]: {"1": 200 - n}}}
                       for n in range(120)})
    first = view.page("/")
    assert len(rows(first)) == 50 and rows(first)[0] == ("sig 000", "200")
    assert first.select_one("nav.pages .count").get_text() == "Signatures 1–50 of 120"
    third = view.page(first.select_one("a[rel=next]")["href"].replace("page=2", "page=3"))
    assert rows(third)[-1] == ("sig 119", "81") and len(rows(third)) == 20
    assert third.select_one("a[rel=next]") is None
    assert third.select_one("a[rel=prev]")["href"] == "/?page=2"
    assert view.api("/api/crashes?page=4", status=400)["status"] == 400


def test_the_api_is_the_page_dict(view) -> None:
    three_signatures(view)
    data = view.api("/api/crashes?window=30")
    built = viewer.crashes_page(crash_store(view.backend), {"window": "30"},
                                viewer.Urls().as_api())
    assert data == built
    assert [r["signature"] for r in data["signatures"]] == [SMALL, BIG]
    assert data["signatures"][1]["url"] == f"/api/signatures/{signature_id(BIG)}"
    assert data["links"]["alternate"] == "/?window=30"
    assert data["chart"]["total"] == 35
    assert data["generated_at"] == "2026-11-26T14:00:00.000Z"


def test_the_summary_is_read_at_most_every_30_seconds(view, monkeypatch) -> None:
    three_signatures(view)
    assert len(rows(view.page("/"))) == 2
    put_summary(view, {BIG: {"by_day": {DAYS[-1]: {"1": 1}}}})
    assert len(rows(view.page("/"))) == 2  # still the one read before
    monkeypatch.setattr(summary_module, "SUMMARY_SECONDS", 0.0)
    summary_module._cache.clear()
    assert rows(view.page("/")) == [(BIG, "1")]


# -- signature pages ----------------------------------------------------------------------


def stored_with_crashes(view: Viewer, signature: str, count: int, version: str = "1.0",
                        start: datetime.datetime | None = None) -> list[str]:
    """`count` reports a minute apart, each processed with `signature`; oldest first."""
    start = start or datetime.datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
    ids = []
    for n in range(count):
        report_id = store_at(view.backend.store(), start + datetime.timedelta(minutes=n),
                             prod="Jami", ver=version, platform="linux", build_id=f"b{n}")
        put_crash(view.backend, report_id, ok_crash(signature))
        ids.append(report_id)
    return ids


def test_a_signature_page_shows_its_facts_chart_and_reports(view) -> None:
    ids = stored_with_crashes(view, BIG, 3)
    stored_with_crashes(view, SMALL, 1)
    three_signatures(view)
    sig = signature_id(BIG)
    soup = view.page(f"/signatures/{sig}")
    assert soup.select_one("#signature").get_text() == BIG
    facts = {d["data-field"]: d.strong.get_text(" ", strip=True) for d in soup.select(".facts div")}
    assert facts["reason"] == "SIGSEGV / SEGV_MAPERR" and facts["count"] == "12"
    assert facts["versions"] == "1.0 (11) , none (1)"
    assert facts["first_seen"] == "2026-11-25 12:00:00"
    assert [tr["id"] for tr in soup.select("table.reports tbody tr")] == [
        f"r-{i}" for i in reversed(ids)]
    bars = {g["data-day"]: g for g in soup.select("#chart-sig g.bar")}
    assert bars[DAYS[-2]].title.get_text() == "2026-11-25: 8 reports (1.0: 8)"
    assert [float(r["height"]) for r in bars[DAYS[-2]].select("rect.seg")] == [120.0]
    assert [float(r["height"]) for r in bars[DAYS[-1]].select("rect.seg")] == [45.0, 15.0]
    assert soup.select_one("a[href='/reports?signature=" + sig + "']") is not None
    data = view.api(f"/api/signatures/{sig}")
    assert [r["id"] for r in data["reports"]] == ids[::-1]
    assert data["count"] == 12 and data["in_summary"] is True
    assert data == viewer.signature_page(crash_store(view.backend), sig, {},
                                         viewer.Urls().as_api())


def test_a_signatures_reports_page_older_by_cursor(view) -> None:
    ids = stored_with_crashes(view, BIG, 27)
    sig = signature_id(BIG)
    first = view.page(f"/signatures/{sig}")
    shown = [tr["id"][2:] for tr in first.select("table.reports tbody tr")]
    assert shown == ids[::-1][:25]
    older = first.select_one("a[rel=next]")["href"]
    assert older == f"/signatures/{sig}?before={ids[2]}"
    second = view.page(older)
    assert [tr["id"][2:] for tr in second.select("table.reports tbody tr")] == [ids[1], ids[0]]
    assert second.select_one("a[rel=next]") is None
    assert second.select_one("a[rel=first]")["href"] == f"/signatures/{sig}"


def test_a_new_signature_has_a_page_before_the_summary_counts_it(view) -> None:
    three_signatures(view)
    now = datetime.datetime.now(UTC).replace(microsecond=0)
    ids = stored_with_crashes(view, "SIGFPE | brand_new", 2, "3.0", now)
    soup = view.page(f"/signatures/{signature_id('SIGFPE | brand_new')}")
    assert soup.select_one("#signature").get_text() == "SIGFPE | brand_new"
    assert soup.select_one("#not-counted") is not None
    facts = {d["data-field"]: d.strong.get_text(" ", strip=True) for d in soup.select(".facts div")}
    assert facts["reason"] == "SIGSEGV / SEGV_MAPERR"
    assert facts["count"] == "not counted yet"
    assert facts["versions"] == "3.0 (2)"
    assert facts["last_seen"] == report.report_time(ids[-1]).strftime("%Y-%m-%d %H:%M:%S")
    today = soup.select("#chart-sig g.bar")[-1]
    assert today["data-day"] == now.date().isoformat() and today["data-total"] == "2"


def test_a_cut_signature_is_shown_whole_from_its_newest_crash(view) -> None:
    text = "SIGSEGV | " + " | ".join(f"frame_{n}" for n in range(60))
    stored_with_crashes(view, text, 1)
    entry = crash_store(view.backend).iter_crashes().__next__()
    assert entry.signature_cut
    soup = view.page(f"/signatures/{signature_id(text)}")
    assert soup.select_one("#signature").get_text() == text


def test_unknown_and_malformed_signatures_are_404(view) -> None:
    three_signatures(view)
    for sig in ["0123456789abcdef", "zz", "0123456789ABCDEF", "0123456789abcdef0"]:
        assert "404" in view.page(f"/signatures/{sig}", status=404).h1.get_text()
        assert view.api(f"/api/signatures/{sig}", status=404)["status"] == 404
    assert "before must be" in view.api(
        f"/api/signatures/{signature_id(OLD)}?before=nope", status=400)["error"]
    # Known to the summary but with no stored report (all pruned): still a page.
    soup = view.page(f"/signatures/{signature_id(OLD)}")
    assert soup.select_one(".facts div[data-field=count] strong").get_text() == "50"
    assert soup.select("table.reports") == []


def test_hostile_signature_text_is_escaped(view) -> None:
    hostile = '<script>alert("s")</script> | <img src=x onerror=alert(1)>'
    ids = stored_with_crashes(view, hostile, 1)
    put_summary(view, {hostile: {"by_day": {DAYS[-1]: {'<b>"v"</b>': 1}},
                                 "reason": "<i>why</i>", "versions": {"<b>v</b>": 1},
                                 "platforms": {"<svg onload=x>": 1}}})
    sig = signature_id(hostile)
    for path in ["/", f"/signatures/{sig}", "/reports", f"/reports/{ids[0]}",
                 f"/reports?signature={sig}"]:
        body = view.get(path).body
        assert b"<script>" not in body and b"<img" not in body and b"<svg onload" not in body
        assert b"<b>" not in body and b"<i>why" not in body
    assert hostile in view.page("/").select_one("td.sig").get_text()
    assert hostile in view.page(f"/signatures/{sig}").select_one("#signature").get_text()


def test_each_page_costs_a_few_requests_however_many_reports(view) -> None:
    import app as application

    ids = stored_with_crashes(view, BIG, 30)
    three_signatures(view)
    reports, crashes = application.reports(), application.crashes()

    def cost(path: str) -> tuple[dict, dict]:
        reports.requests.clear()
        crashes.requests.clear()
        view.page(path)
        return dict(reports.requests), dict(crashes.requests)

    sig = signature_id(BIG)
    assert cost("/") == ({}, {"GetObject": 1})
    assert cost("/?window=all&page=1") == ({}, {})  # the summary is read at most every 30 s
    assert cost(f"/signatures/{sig}") == ({}, {"ListObjectsV2": 1})
    assert cost(f"/signatures/{sig}?before={ids[10]}") == ({}, {"ListObjectsV2": 1})
    assert cost("/reports") == ({"ListObjectsV2": 1, "GetObject": 1}, {"ListObjectsV2": 1})
    assert cost(f"/reports?signature={sig}") == ({}, {"ListObjectsV2": 2})
    assert cost(f"/reports/{ids[3]}") == ({"ListObjectsV2": 1, "GetObject": 1},
                                          {"ListObjectsV2": 1, "GetObject": 1})
