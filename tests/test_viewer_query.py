"""Index filters and query strings: fields, dates, bad queries, cut values (viewer.query)."""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import pytest

from chalicelib import viewer
from tests.testlib.viewing import UTC, Viewer, count_text, link, logged_in, row_ids, store_at, walk


@pytest.fixture
def view(app_env, backend) -> Iterator[Viewer]:
    with logged_in(app_env, backend) as started:
        yield started


@pytest.fixture
def moto_view(app_env, moto_backend) -> Iterator[Viewer]:
    with logged_in(app_env, moto_backend) as started:
        yield started


FACTS = [
    {"prod": "Jami", "ver": "1.0", "platform": "linux", "build_id": "b1",
     "client_sha": "aaa", "jamicore_sha": "xxx"},
    {"prod": "Jami", "ver": "2.0", "platform": "win64", "build_id": "b2",
     "client_sha": "bbb", "jamicore_sha": "xxx"},
    {"prod": "Other", "ver": "1.0", "platform": "linux", "build_id": "b2",
     "client_sha": "aaa", "jamicore_sha": "yyy"},
    {"prod": "Jami", "ver": "1.0", "platform": "macos", "build_id": "b3",
     "client_sha": "ccc", "jamicore_sha": "yyy"},
]
FIELD_OF = {"prod": "product", "ver": "version"}


@pytest.fixture
def four(view) -> tuple[Viewer, list[str]]:
    return view, [view.submit(facts) for facts in FACTS]


@pytest.mark.parametrize("annotation", ["prod", "ver", "platform", "build_id", "client_sha",
                                        "jamicore_sha"])
def test_each_filter_shows_exactly_the_matching_reports(four, annotation: str) -> None:
    view, ids = four
    field = FIELD_OF.get(annotation, annotation)
    for value in {facts[annotation] for facts in FACTS}:
        expected = [i for i, f in zip(ids, FACTS) if f[annotation] == value][::-1]
        soup = view.page(f"/reports?{field}={value}")
        assert row_ids(soup) == expected, (field, value)
        # The filter stays in the form, so the page can be refined and shared.
        assert soup.select_one(f"form.filters input[name={field}]")["value"] == value
        assert [r["id"] for r in view.api(f"/api/reports?{field}={value}")["reports"]] == expected
    assert row_ids(view.page(f"/reports?{field}=nothing-like-this")) == []


def test_filters_combine_and_match_exactly(four) -> None:
    view, ids = four
    soup = view.page("/reports?product=Jami&version=1.0&jamicore_sha=yyy")
    assert row_ids(soup) == [ids[3]]
    assert row_ids(view.page("/reports?product=Jami&platform=linux&build_id=b1")) == [ids[0]]
    assert row_ids(view.page("/reports?product=jami")) == []  # exact, case and all
    assert row_ids(view.page("/reports?client_sha=aa")) == []  # no prefix matches
    empty = view.page("/reports?product=Jami&platform=win64&build_id=b1")
    assert "No reports match these filters" in empty.select_one(".empty").get_text()


def test_pages_of_a_filter_keep_the_filter_in_their_links(view) -> None:
    ids = [view.submit({"platform": "linux" if n % 3 else "win64"}) for n in range(14)]
    linux = [i for n, i in enumerate(ids) if n % 3][::-1]
    pages = walk(view, "/reports?platform=linux&per_page=3", "next")
    assert sum(pages, []) == linux
    soup = view.page("/reports?platform=linux&per_page=3")
    assert link(soup, "next").startswith("/reports?platform=linux&per_page=3&before=")
    assert count_text(soup) == "Showing 1–3 of the matches"
    back = walk(view, link(view.page(link(soup, "next")), "prev"), "prev")
    assert back == [pages[0]]


def test_date_range_filters_by_receive_day_in_utc(moto_view) -> None:
    store = moto_view.backend.store()
    days = [datetime.datetime(2026, 1, d, h, tzinfo=UTC) for d, h in
            [(1, 0), (1, 23), (2, 12), (3, 0), (3, 23), (5, 9)]]
    ids = [store_at(store, when, platform="linux") for when in days]
    view = moto_view
    assert row_ids(view.page("/reports?since=2026-01-02&until=2026-01-03")) == ids[2:5][::-1]
    assert row_ids(view.page("/reports?since=2026-01-03")) == ids[3:][::-1]
    assert row_ids(view.page("/reports?until=2026-01-01")) == ids[:2][::-1]
    assert row_ids(view.page("/reports?since=2026-01-04&until=2026-01-04")) == []
    both = "/reports?since=2026-01-01&until=2026-01-05&platform=linux"
    assert row_ids(view.page(both)) == ids[::-1]
    soup = view.page("/reports?since=2026-01-01&per_page=2")
    assert soup.select_one("input[name=since]")["value"] == "2026-01-01"
    assert sum(walk(view, "/reports?since=2026-01-02&per_page=2", "next"), []) == ids[2:][::-1]
    # A date range costs no extra request: it becomes the listing's bounds.
    store.requests.clear()
    viewer.index_page(store, viewer.Query.parse({"until": "2026-01-01"}), viewer.Urls())
    assert store.requests == {"ListObjectsV2": 1}


@pytest.mark.parametrize("query, reason", [
    ("since=yesterday", "since must be a date"),
    ("since=2026-02-02&until=2026-02-01", "since must not be after until"),
    ("before=xyz", "before must be a report id"),
    ("before=0123456789abcdef&after=0123456789abcdef", "either before or after"),
    ("per_page=0", "per_page must be between"),
    ("per_page=many", "per_page must be a whole number"),
])
def test_bad_queries_get_400_with_the_reason(moto_view, query: str, reason: str) -> None:
    soup = moto_view.page("/reports?" + query, status=400)
    assert reason in soup.select_one("p.message").get_text()
    assert reason in moto_view.api("/api/reports?" + query, status=400)["error"]


def test_a_value_cut_in_the_key_is_confirmed_from_the_metadata(view) -> None:
    long = "build-" + "x" * 200
    wanted = view.submit({"build_id": long + "-wanted"})
    other = view.submit({"build_id": long + "-other"})
    short = view.submit({"build_id": "build-x"})
    data = view.api("/api/reports?build_id=" + long + "-wanted")
    assert [r["id"] for r in data["reports"]] == [wanted]
    assert data["scan"]["reads_to_confirm"] == 2  # both long ones share the key prefix
    assert data["reports"][0]["truncated"] == ["build_id"]
    soup = view.page("/reports?build_id=" + long + "-other")
    assert row_ids(soup) == [other]
    assert soup.select_one(f"tr#r-{other} td[data-field=build_id]").get_text().endswith("…")
    assert row_ids(view.page("/reports?build_id=build-x")) == [short]
    # A cut value cannot filter exactly: its cell links to the report, whose page has the
    # full value and a filter link that finds it.
    cell_link = soup.select_one(f"tr#r-{other} td[data-field=build_id] a")["href"]
    assert cell_link.endswith(f"/reports/{other}")
    report = view.page(cell_link)
    full_link = report.select_one("div[data-field=build_id] a")["href"]
    assert row_ids(view.page(full_link)) == [other]
