"""Index paging: older and newer pages, scan budgets, request counts (viewer.paging)."""

from __future__ import annotations

import datetime
import random
import urllib.parse
from collections.abc import Iterator

import pytest

from chalicelib import report, viewer
from chalicelib.viewer import paging
from tests.testlib.viewing import UTC, Viewer, count_text, link, logged_in, row_ids, store_at, walk


@pytest.fixture
def view(app_env, backend) -> Iterator[Viewer]:
    with logged_in(app_env, backend) as started:
        yield started


@pytest.fixture
def moto_view(app_env, moto_backend) -> Iterator[Viewer]:
    with logged_in(app_env, moto_backend) as started:
        yield started


def test_pagination_shows_every_report_once_both_ways(view) -> None:
    ids = [view.submit({"platform": "linux", "client_sha": f"sha{n}"}) for n in range(23)]
    newest_first = ids[::-1]
    older = walk(view, "/reports?per_page=5", "next")
    assert [len(p) for p in older] == [5, 5, 5, 5, 3]
    assert sum(older, []) == newest_first
    soup = view.page("/reports?per_page=5")
    second = view.page(link(soup, "next"))
    assert count_text(second) == "Showing 6–10"
    assert "per_page=5" in link(second, "next") and "offset=10" in link(second, "next")
    # Back from the last page with the newer links: the same pages in reverse.
    last = link(view.page(link(view.page(link(view.page(link(second, "next")), "next")),
                               "next")), "prev")
    newer = walk(view, last, "prev")
    assert newer == older[-2::-1]


def test_newer_pages_find_reports_across_gaps_of_any_size(moto_view) -> None:
    store = moto_view.backend.store()
    rng = random.Random(4)
    when, ids = datetime.datetime(2015, 1, 1, tzinfo=UTC), []
    for n in range(40):
        ids.append(store_at(store, when, platform="win64" if n % 3 else "linux",
                            client_sha=f"sha{n}"))
        # bursts within a second, then gaps up to 200 days
        when += datetime.timedelta(seconds=rng.choice([0.01, 0.3, 5, 700, 86_400, 200 * 86_400]))
    assert when < datetime.datetime.now(UTC)
    newest_first = ids[::-1]
    older = walk(moto_view, "/reports?per_page=6", "next")
    assert sum(older, []) == newest_first
    last = moto_view.page("/reports?per_page=6&before=" + older[-2][-1])
    assert row_ids(last) == older[-1]
    assert walk(moto_view, link(last, "prev"), "prev") == older[-2::-1]
    # The same with a filter, which lists whole time bands instead of probing.
    win64 = [i for n, i in enumerate(ids) if n % 3][::-1]
    older = walk(moto_view, "/reports?platform=win64&per_page=4", "next")
    assert sum(older, []) == win64
    last = moto_view.page("/reports?platform=win64&per_page=4&before=" + older[-2][-1])
    assert walk(moto_view, link(last, "prev"), "prev") == older[-2::-1]
    older = walk(moto_view, "/reports?per_page=6", "next")
    # Each newer page costs a bounded number of list requests, whatever the gaps.
    urls = viewer.Urls()
    for page in older[1:]:
        store.requests.clear()
        query = viewer.Query.parse({"after": page[0], "per_page": "6"})
        viewer.index_page(store, query, urls)
        # about log16(gap / 1 s) probes up, then a few bisections; each asks for 24 keys
        assert store.requests["ListObjectsV2"] <= 16, store.requests
        assert store.requests["GetObject"] <= 1


def test_page_one_costs_one_list_request_and_no_read_per_row(view) -> None:
    for _ in range(30):
        view.submit({"platform": "linux"})
    import app as application

    store = application.reports()
    store.requests.clear()
    soup = view.page("/reports")
    assert len(row_ids(soup)) == 25
    assert store.requests["ListObjectsV2"] == 1
    assert store.requests["GetObject"] <= 1  # the summary, no read per row
    store.requests.clear()
    view.page(link(soup, "next"))
    assert store.requests["ListObjectsV2"] == 1 and store.requests["GetObject"] == 0


def test_a_rare_match_is_searched_in_bounded_steps(moto_view, monkeypatch) -> None:
    monkeypatch.setattr(paging, "SCAN_BUDGET", 4)
    view = moto_view
    ids = [view.submit({"platform": "win64" if n in (1, 5) else "linux"}) for n in range(12)]
    soup = view.page("/reports?platform=win64")
    assert row_ids(soup) == []
    note = soup.select_one(".note").get_text(" ", strip=True)
    assert "Searched 4 reports" in note
    assert "Continue searching older" in note
    found, path, steps = [], "/reports?platform=win64", 0
    while path:
        soup = view.page(path)
        found += row_ids(soup)
        cont = soup.select_one("a.continue") or soup.select_one("nav.pages a[rel=next]")
        path = cont["href"] if cont else None
        steps += 1
    assert found == [ids[5], ids[1]]
    # 12 reports, 4 per step; the listing is not asked past the budget, so a last step
    # finds the end (an extra list request avoided on every step, one page more here).
    assert steps == 4
    assert "No reports match these filters" in soup.select_one(".empty").get_text()
    assert view.api("/api/reports?platform=win64")["scan"]["complete"] is False


def query_of(url: str) -> viewer.Query:
    return viewer.Query.parse(dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query)))


@pytest.mark.parametrize("seed", range(6))
def test_paging_agrees_with_a_plain_sort_on_random_stores(moto_backend, seed: int) -> None:
    """Older pages chain through every match once; each newer page is the one before."""
    rng = random.Random(seed)
    store = moto_backend.store()
    when, facts = datetime.datetime(2020, 1, 1, tzinfo=UTC), {}
    for _ in range(rng.randrange(20, 70)):
        when += datetime.timedelta(seconds=rng.choice([0.001, 0.5, 30, 3600, 86_400 * 40]))
        platform = rng.choice(["linux", "win64", "macos"])
        facts[store_at(store, when, platform=platform)] = platform
    urls = viewer.Urls(api=True)
    for params in [{}, {"platform": "linux"}, {"since": "2020-01-02"}]:
        params = {**params, "per_page": str(rng.randrange(1, 9))}
        since = params.get("since", "0000")
        expected = sorted((i for i, p in facts.items()
                           if params.get("platform", p) == p
                           and report.isoformat(report.report_time(i))[:10] >= since),
                          reverse=True)
        pages, query = [], viewer.Query.parse(params)
        while True:
            page = viewer.index_page(store, query, urls)
            pages.append([r["id"] for r in page["reports"]])
            if len(pages) > 1:
                back = query_of(page["links"]["newer"])
                got = [r["id"] for r in viewer.index_page(store, back, urls)["reports"]]
                assert got == pages[-2], (seed, params)
            else:
                assert page["links"]["newer"] is None
            if not page["links"]["older"]:
                break
            query = query_of(page["links"]["older"])
        assert sum(pages, []) == expected, (seed, params)


@pytest.mark.parametrize("seed", range(4))
def test_with_a_tiny_scan_budget_continuing_still_finds_every_match_once(
    moto_backend, monkeypatch, seed: int
) -> None:
    monkeypatch.setattr(paging, "SCAN_BUDGET", 7)
    rng = random.Random(seed)
    store = moto_backend.store()
    when, ids = datetime.datetime(2021, 1, 1, tzinfo=UTC), []
    for n in range(rng.randrange(30, 60)):
        when += datetime.timedelta(seconds=rng.choice([0.01, 60, 86_400]))
        rare = rng.random() < 0.2
        ids.append((store_at(store, when, platform="rare" if rare else "common"), rare))
    expected = [i for i, rare in ids if rare][::-1]
    urls, found = viewer.Urls(api=True), []
    query = viewer.Query.parse({"platform": "rare", "per_page": "3"})
    for _ in range(100):
        page = viewer.index_page(store, query, urls)
        assert page["scan"]["keys_scanned"] <= 7
        found += [r["id"] for r in page["reports"]]
        following = page["links"]["continue"] or page["links"]["older"]
        if not following:
            break
        query = query_of(following)
    assert found == expected
