"""The viewer's pages, downloads and API, over reports stored through the ingest path.

Pages are parsed with BeautifulSoup; downloads are compared byte for byte with what was
uploaded. Reports go in through POST /submit (Chalice's test client), or, where a test
needs receive times in the past, through submission.parse_submission + ReportStore.put
with an explicit received_at.
"""

from __future__ import annotations

import base64
import datetime
import io
import json
import random
import urllib.parse
import zipfile
from pathlib import Path

import pytest
import requests
from bs4 import BeautifulSoup
from chalice.test import Client

from chalicelib import auth, bundle, report, submission, viewer
from chalicelib.store import ReportNotFound, ReportStore
from tests.conftest import Backend
from tests.testlib import forms

PASSWORD = "viewer-pass"
USERS = "admin:" + auth.hash_password(PASSWORD, 1000)
LOGIN = {"Authorization": "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode(),
         "Accept": "*/*"}
UTC = datetime.timezone.utc
T0 = datetime.datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
LIMITS = submission.Limits(64 * 1024 * 1024, 512, 64 * 1024)


class Viewer:
    """The app behind Chalice's test client, logged in, on one backend."""

    def __init__(self, client: Client, backend: Backend) -> None:
        self.client = client
        self.backend = backend

    def submit(self, annotations: dict[str, str] | None = None, **form) -> str:
        body, headers, query = forms.crashpad_form(annotations or {}, **form)
        path = "/submit?" + "&".join(f"{k}={v}" for k, v in query.items())
        response = self.client.http.post(path, body=body, headers=headers)
        assert response.status_code == 200, response.body
        return response.body.decode()

    def get(self, path: str, **headers: str):
        return self.client.http.get(path, headers={**LOGIN, **headers})

    def page(self, path: str, status: int = 200) -> BeautifulSoup:
        response = self.get(path)
        assert response.status_code == status, response.body[:500]
        assert response.headers["Content-Type"] == "text/html; charset=utf-8"
        return BeautifulSoup(response.body, "html.parser")

    def api(self, path: str, status: int = 200) -> dict:
        response = self.get(path)
        assert response.status_code == status, response.body[:500]
        assert response.headers["Content-Type"].startswith("application/json")
        return json.loads(response.body)


@pytest.fixture
def viewer_on(app_env):
    """viewer_on(backend) -> Viewer; the test client is closed afterwards."""
    clients = []

    def start(backend: Backend) -> Viewer:
        application = app_env(backend, VIEWER_USERS=USERS)
        client = Client(application.app)
        clients.append(client)
        return Viewer(client.__enter__(), backend)

    yield start
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def view(viewer_on, backend) -> Viewer:
    return viewer_on(backend)


@pytest.fixture
def moto_view(viewer_on, moto_backend) -> Viewer:
    return viewer_on(moto_backend)


def store_at(store: ReportStore, when: datetime.datetime, **annotations: str) -> str:
    """Ingest a real Crashpad form as if it had arrived at `when`."""
    body, headers, query = forms.crashpad_form(annotations, dump=forms.fake_dump(600))
    lowered = {k.lower(): v for k, v in headers.items()}
    with submission.parse_submission(io.BytesIO(body), lowered, query, LIMITS, when) as sent:
        return store.put(sent)


def row_ids(soup: BeautifulSoup) -> list[str]:
    return [tr["id"].removeprefix("r-") for tr in soup.select("table.reports tbody tr")]


def cells(soup: BeautifulSoup, report_id: str) -> dict[str, str]:
    row = soup.select_one(f"tr#r-{report_id}")
    found = {td["data-field"]: td.get_text(strip=True) for td in row.select("td[data-field]")}
    tds = row.find_all("td")
    found["received"] = tds[0].get_text(strip=True)
    found["product_version"] = tds[1].get_text(" ", strip=True)
    found["dump"] = tds[-1].get_text(strip=True)
    return found


def count_text(soup: BeautifulSoup) -> str:
    return soup.select_one("nav.pages .count").get_text(strip=True)


def link(soup: BeautifulSoup, rel: str) -> str | None:
    found = soup.select_one(f"nav.pages a[rel={rel}]")
    return found["href"] if found else None


def walk(view: Viewer, start: str, rel: str) -> list[list[str]]:
    """Follow the rel links from `start` until there are none; the ids of every page."""
    pages, path = [], start
    while path:
        soup = view.page(path)
        pages.append(row_ids(soup))
        path = link(soup, rel)
        assert len(pages) < 100
    return pages


# -- index --------------------------------------------------------------------------


def test_an_empty_bucket_shows_a_friendly_empty_state(view) -> None:
    soup = view.page("/")
    assert "No crash reports yet" in soup.select_one(".empty").get_text()
    assert "/submit" in soup.select_one(".empty").get_text()
    assert soup.select("table.reports") == []
    assert view.api("/api/reports")["reports"] == []
    assert view.api("/api/reports")["empty_bucket"] is True


def test_index_rows_show_the_facts_newest_first(view) -> None:
    first = view.submit({"prod": "Jami", "ver": "1.0", "platform": "linux",
                         "client_sha": "c1" * 20, "jamicore_sha": "j1" * 20,
                         "build_id": "b-100"}, guid="guid-one")
    second = view.submit({"prod": "Jami", "ver": "2.0", "platform": "win64",
                          "client_sha": "c2" * 20, "jamicore_sha": "j2" * 20,
                          "build_id": "b-200"}, guid="guid-two",
                         dump=forms.fake_dump(3 * 1024 * 1024))
    soup = view.page("/")
    assert row_ids(soup) == [second, first]
    assert cells(soup, second) == {
        "received": report.report_time(second).strftime("%Y-%m-%d %H:%M:%S"),
        "product_version": "Jami 2.0", "platform": "win64", "client_sha": "c2" * 20,
        "jamicore_sha": "j2" * 20, "build_id": "b-200", "guid": "guid-two",
        "dump": "3.0 MiB",
    }
    assert cells(soup, first)["dump"] == f"{len(forms.fixture_dump()) / 1024:.1f} KiB"
    assert soup.select_one(f"tr#r-{first} a")["href"] == f"/reports/{first}"
    # Each value links to the index filtered by it.
    assert soup.select_one(f"tr#r-{first} td[data-field=platform] a")["href"] == "/?platform=linux"
    assert count_text(soup) == "Showing 1–2"
    assert link(soup, "next") is None and link(soup, "prev") is None


def test_totals_come_from_the_pruners_summary(view) -> None:
    ids = [view.submit({"platform": "linux"}) for _ in range(3)]
    view.backend.store().put_summary({"schema": 1, "total_reports": 1234, "total_bytes": 5})
    soup = view.page("/?per_page=2")
    assert count_text(soup) == "Showing 1–2 of about 1,234"
    soup = view.page(link(soup, "next"))
    assert row_ids(soup) == [ids[0]]
    assert count_text(soup) == "Showing 3–3 of about 1,234"
    assert view.api("/api/reports")["total_estimate"] == 1234


@pytest.mark.parametrize("summary", [b"not json", b"[1, 2]", b'{"total_reports": "many"}',
                                     b'{"total_reports": -1}', b'{"total_reports": true}'])
def test_an_odd_summary_is_ignored(moto_view, summary: bytes) -> None:
    moto_view.submit()
    backend = moto_view.backend
    backend.client.put_object(Bucket=backend.bucket, Key=backend.prefix + "summary.json",
                              Body=summary)
    assert count_text(moto_view.page("/")) == "Showing 1–1"


def test_pagination_shows_every_report_once_both_ways(view) -> None:
    ids = [view.submit({"platform": "linux", "client_sha": f"sha{n}"}) for n in range(23)]
    newest_first = ids[::-1]
    older = walk(view, "/?per_page=5", "next")
    assert [len(p) for p in older] == [5, 5, 5, 5, 3]
    assert sum(older, []) == newest_first
    soup = view.page("/?per_page=5")
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
    older = walk(moto_view, "/?per_page=6", "next")
    assert sum(older, []) == newest_first
    last = moto_view.page("/?per_page=6&before=" + older[-2][-1])
    assert row_ids(last) == older[-1]
    assert walk(moto_view, link(last, "prev"), "prev") == older[-2::-1]
    # The same with a filter, which lists whole time bands instead of probing.
    win64 = [i for n, i in enumerate(ids) if n % 3][::-1]
    older = walk(moto_view, "/?platform=win64&per_page=4", "next")
    assert sum(older, []) == win64
    last = moto_view.page("/?platform=win64&per_page=4&before=" + older[-2][-1])
    assert walk(moto_view, link(last, "prev"), "prev") == older[-2::-1]
    older = walk(moto_view, "/?per_page=6", "next")
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
    soup = view.page("/")
    assert len(row_ids(soup)) == 25
    assert store.requests["ListObjectsV2"] == 1
    assert store.requests["GetObject"] <= 1  # the summary, no read per row
    store.requests.clear()
    view.page(link(soup, "next"))
    assert store.requests["ListObjectsV2"] == 1 and store.requests["GetObject"] == 0


# -- filters --------------------------------------------------------------------------

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
        soup = view.page(f"/?{field}={value}")
        assert row_ids(soup) == expected, (field, value)
        # The filter stays in the form, so the page can be refined and shared.
        assert soup.select_one(f"form.filters input[name={field}]")["value"] == value
        assert [r["id"] for r in view.api(f"/api/reports?{field}={value}")["reports"]] == expected
    assert row_ids(view.page(f"/?{field}=nothing-like-this")) == []


def test_filters_combine_and_match_exactly(four) -> None:
    view, ids = four
    soup = view.page("/?product=Jami&version=1.0&jamicore_sha=yyy")
    assert row_ids(soup) == [ids[3]]
    assert row_ids(view.page("/?product=Jami&platform=linux&build_id=b1")) == [ids[0]]
    assert row_ids(view.page("/?product=jami")) == []  # exact, case and all
    assert row_ids(view.page("/?client_sha=aa")) == []  # no prefix matches
    empty = view.page("/?product=Jami&platform=win64&build_id=b1")
    assert "No reports match these filters" in empty.select_one(".empty").get_text()


def test_pages_of_a_filter_keep_the_filter_in_their_links(view) -> None:
    ids = [view.submit({"platform": "linux" if n % 3 else "win64"}) for n in range(14)]
    linux = [i for n, i in enumerate(ids) if n % 3][::-1]
    pages = walk(view, "/?platform=linux&per_page=3", "next")
    assert sum(pages, []) == linux
    soup = view.page("/?platform=linux&per_page=3")
    assert link(soup, "next").startswith("/?platform=linux&per_page=3&before=")
    assert count_text(soup) == "Showing 1–3 of the matches"
    back = walk(view, link(view.page(link(soup, "next")), "prev"), "prev")
    assert back == [pages[0]]


def test_date_range_filters_by_receive_day_in_utc(moto_view) -> None:
    store = moto_view.backend.store()
    days = [datetime.datetime(2026, 1, d, h, tzinfo=UTC) for d, h in
            [(1, 0), (1, 23), (2, 12), (3, 0), (3, 23), (5, 9)]]
    ids = [store_at(store, when, platform="linux") for when in days]
    view = moto_view
    assert row_ids(view.page("/?since=2026-01-02&until=2026-01-03")) == ids[2:5][::-1]
    assert row_ids(view.page("/?since=2026-01-03")) == ids[3:][::-1]
    assert row_ids(view.page("/?until=2026-01-01")) == ids[:2][::-1]
    assert row_ids(view.page("/?since=2026-01-04&until=2026-01-04")) == []
    assert row_ids(view.page("/?since=2026-01-01&until=2026-01-05&platform=linux")) == ids[::-1]
    soup = view.page("/?since=2026-01-01&per_page=2")
    assert soup.select_one("input[name=since]")["value"] == "2026-01-01"
    assert sum(walk(view, "/?since=2026-01-02&per_page=2", "next"), []) == ids[2:][::-1]
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
    soup = moto_view.page("/?" + query, status=400)
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
    soup = view.page("/?build_id=" + long + "-other")
    assert row_ids(soup) == [other]
    assert soup.select_one(f"tr#r-{other} td[data-field=build_id]").get_text().endswith("…")
    assert row_ids(view.page("/?build_id=build-x")) == [short]
    # A cut value cannot filter exactly: its cell links to the report, whose page has the
    # full value and a filter link that finds it.
    cell_link = soup.select_one(f"tr#r-{other} td[data-field=build_id] a")["href"]
    assert cell_link.endswith(f"/reports/{other}")
    report = view.page(cell_link)
    full_link = report.select_one("div[data-field=build_id] a")["href"]
    assert row_ids(view.page(full_link)) == [other]


def test_odd_attachment_numbers_are_not_found() -> None:
    for value in ["²", "١", "-1", "1e3", "99999", ""]:
        with pytest.raises(ReportNotFound):
            viewer.attachment_index(value)


def test_a_rare_match_is_searched_in_bounded_steps(moto_view, monkeypatch) -> None:
    monkeypatch.setattr(viewer, "SCAN_BUDGET", 4)
    view = moto_view
    ids = [view.submit({"platform": "win64" if n in (1, 5) else "linux"}) for n in range(12)]
    soup = view.page("/?platform=win64")
    assert row_ids(soup) == []
    note = soup.select_one(".note").get_text(" ", strip=True)
    assert "Searched 4 reports" in note
    assert "Continue searching older" in note
    found, path, steps = [], "/?platform=win64", 0
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


# -- one report -------------------------------------------------------------------------


def test_report_page_shows_every_annotation_server_field_and_attachment(view) -> None:
    annotations = {"prod": "Jami", "ver": "3.1", "platform": "linux", "client_sha": "c" * 40,
                   "jamicore_sha": "j" * 40, "build_id": "b9", "extra_note": "multi\nline",
                   "empty": ""}
    attachments = {"log.txt": b"log text", "config.json": b'{"a": 1}' * 300}
    dump = forms.fixture_dump("windows-x86-breakpad-access-violation.dmp")
    report_id = view.submit(annotations, attachments=attachments, dump=dump, guid="g-1",
                            report_uuid="c5c85cff-cb1c-4326-99de-7c36efb89e5b")
    soup = view.page(f"/reports/{report_id}")
    assert soup.h1.get_text(" ", strip=True) == f"Report {report_id}"
    shown = {tr.th.get_text(): tr.td.get_text() for tr in soup.select("table.annotations tr")}
    assert shown == {**annotations, "guid": "g-1"}
    server = {tr.th.get_text(): tr.td.get_text() for tr in soup.select("table.server tr")}
    assert server["id"] == report_id
    assert server["crashpad_uuid"] == "c5c85cff-cb1c-4326-99de-7c36efb89e5b"
    assert server["user_agent"] == "Crashpad/0.8.0 test"
    assert server["dump size"] == f"{len(dump)} bytes"
    assert server["query: product"] == "Jami" and server["query: guid"] == "g-1"
    assert server["received_at"] == report.isoformat(report.report_time(report_id))
    facts = {div["data-field"]: div.strong.get_text() for div in soup.select(".facts div")}
    assert facts["version"] == "3.1" and facts["client_sha"] == "c" * 40
    rows = [[td.get_text(strip=True) for td in tr.select("td")]
            for tr in soup.select("table.attachments tbody tr")]
    assert [(r[1], r[3]) for r in rows] == [("config.json", "2.3 KiB"), ("log.txt", "8 B")]
    links = [a["href"] for a in soup.select("table.attachments a")]
    assert links == [f"/reports/{report_id}/attachments/0", f"/reports/{report_id}/attachments/1"]
    assert soup.select_one("a#dump")["href"] == f"/reports/{report_id}/dump"
    bundle_link = soup.select_one("a#bundle")
    assert bundle_link["href"] == f"/reports/{report_id}/bundle"
    assert f"{'c' * 40}-{'j' * 40}-linux.zip" in bundle_link.get_text()


def test_unknown_or_malformed_ids_are_404_everywhere(view) -> None:
    view.submit()
    missing = "0000000000000001"
    for path in [f"/reports/{missing}", "/reports/not-an-id", "/reports/..%2F..%2Fetc"]:
        assert "404" in view.page(path, status=404).h1.get_text()
    assert view.api(f"/api/reports/{missing}", status=404)["status"] == 404
    for suffix in ["dump", "bundle", "attachments/0"]:
        assert view.get(f"/reports/{missing}/{suffix}").status_code == 404


def test_client_values_are_escaped_everywhere(view) -> None:
    script, quotes = '<script>alert("x")</script>', '\'"><img src=x onerror=alert(1)>'
    report_id = view.submit({"platform": script, "client_sha": quotes, "<i>k</i>'": quotes},
                            attachments={"<b>.txt": b"x"})
    for path in ["/", f"/reports/{report_id}", "/?platform=" + requests.utils.quote(script)]:
        response = view.get(path)
        assert b"<script>" not in response.body and b"<img" not in response.body
        soup = BeautifulSoup(response.body, "html.parser")
        assert soup.find("script") is None and soup.find("img") is None
        assert script in soup.get_text() and quotes in soup.get_text()
    soup = view.page(f"/reports/{report_id}")
    shown = {tr.th.get_text(): tr.td.get_text() for tr in soup.select("table.annotations tr")}
    assert shown["<i>k</i>'"] == quotes
    assert soup.select_one("table.attachments a").get_text() == "<b>.txt"
    index = view.page("/")
    assert index.select_one("td[data-field=client_sha]")["title"] == quotes
    assert index.select_one("td[data-field=platform] a")["href"] == (
        "/?platform=%3Cscript%3Ealert%28%22x%22%29%3C%2Fscript%3E")
    headers = view.get("/").headers
    assert "script-src" not in headers["Content-Security-Policy"]
    assert headers["Content-Security-Policy"].startswith("default-src 'none'")


# -- downloads ------------------------------------------------------------------------------


def test_downloads_are_the_uploaded_bytes(view) -> None:
    dump = forms.fixture_dump("linux-x86_64-crashpad-chromeos-chrome-sigsegv.dmp")
    attachments = {"a.log": b"first attachment", "b.bin": bytes(range(256)) * 40}
    report_id = view.submit({"platform": "linux", "client_sha": "abc", "jamicore_sha": "def"},
                            dump=dump, attachments=attachments)
    response = view.get(f"/reports/{report_id}/dump")
    assert response.body == dump
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["Content-Disposition"] == f'attachment; filename="{report_id}.dmp"'
    for index, (name, data) in enumerate(sorted(attachments.items())):
        response = view.get(f"/reports/{report_id}/attachments/{index}")
        assert response.body == data
        assert response.headers["Content-Disposition"] == f'attachment; filename="{name}"'
    assert view.get(f"/reports/{report_id}/attachments/2").status_code == 404
    assert view.get(f"/reports/{report_id}/attachments/x").status_code == 404

    response = view.get(f"/reports/{report_id}/bundle")
    assert response.headers["Content-Type"] == "application/zip"
    assert response.headers["Content-Disposition"] == 'attachment; filename="abc-def-linux.zip"'
    with zipfile.ZipFile(io.BytesIO(response.body)) as archive:
        assert archive.namelist() == ["minidump.dmp", "metadata.json", "attachments/00-a.log",
                                      "attachments/01-b.bin"]
        assert archive.read("minidump.dmp") == dump
        assert archive.read("attachments/00-a.log") == attachments["a.log"]
        assert archive.read("attachments/01-b.bin") == attachments["b.bin"]
        meta = json.loads(archive.read("metadata.json"))
    assert meta["id"] == report_id and meta["annotations"]["client_sha"] == "abc"
    assert meta == view.backend.store().get(report_id).meta


def test_binary_downloads_need_an_accept_header_chalice_can_match(moto_view) -> None:
    report_id = moto_view.submit()
    # Browsers and HTTP clients send */* (or the type); Chalice refuses anything else.
    assert moto_view.get(f"/reports/{report_id}/dump", Accept="text/html,*/*;q=0.8").status_code \
        == 200
    assert moto_view.get(f"/reports/{report_id}/dump",
                         Accept="application/octet-stream").status_code == 200
    assert moto_view.get(f"/reports/{report_id}/bundle", Accept="application/zip").status_code \
        == 200
    # Without Accept, Chalice (and API Gateway) will not send binary: so the page's links
    # are plain navigations (browsers send */*), never <a download> fetches (no Accept).
    response = moto_view.client.http.get(f"/reports/{report_id}/dump",
                                         headers={"Authorization": LOGIN["Authorization"]})
    assert response.status_code == 400
    soup = moto_view.page(f"/reports/{report_id}")
    assert all(not a.has_attr("download") for a in soup.select("a"))


@pytest.mark.parametrize("facts, expected", [
    ({"client_sha": "abc", "jamicore_sha": "def", "platform": "linux"}, "abc-def-linux.zip"),
    ({"client_sha": "../../etc/passwd", "jamicore_sha": "a b\"c", "platform": "win/64"},
     "etc_passwd-a_b_c-win_64.zip"),
    ({"client_sha": "", "jamicore_sha": "", "platform": ""}, "unknown-unknown-unknown.zip"),
    ({"client_sha": "..", "jamicore_sha": ".hidden", "platform": "\r\nX-Header: 1"},
     "unknown-hidden-X-Header_1.zip"),
    ({"client_sha": "é" * 10 + "ok", "jamicore_sha": "x" * 300, "platform": "linux"},
     "ok-" + "x" * 64 + "-linux.zip"),
    ({}, "unknown-unknown-unknown.zip"),
])
def test_bundle_names_are_sanitized(facts: dict, expected: str) -> None:
    assert bundle.name_for({"facts": facts}) == expected


def test_a_bundle_named_from_hostile_values_downloads_under_a_safe_name(view) -> None:
    report_id = view.submit({"client_sha": "../../x", "jamicore_sha": 'a";b', "platform": ""},
                            attachments={"../../evil.sh": b"#!"})
    response = view.get(f"/reports/{report_id}/bundle")
    assert response.headers["Content-Disposition"] == 'attachment; filename="x-a_b-unknown.zip"'
    with zipfile.ZipFile(io.BytesIO(response.body)) as archive:
        assert archive.namelist()[2] == "attachments/00-evil.sh"
        assert all(".." not in name and not name.startswith("/") for name in archive.namelist())
    response = view.get(f"/reports/{report_id}/attachments/0")
    assert response.headers["Content-Disposition"] == 'attachment; filename="evil.sh"'


# -- API ---------------------------------------------------------------------------------------


def test_the_api_mirrors_the_pages(view) -> None:
    ids = [view.submit({"prod": "Jami", "platform": "linux", "client_sha": f"s{n}"},
                       attachments={"a.txt": b"x" * n}) for n in range(1, 5)]
    data = view.api("/api/reports?per_page=3&product=Jami")
    assert [r["id"] for r in data["reports"]] == ids[:0:-1]
    assert data["reports"][0]["facts"]["client_sha"] == "s4"
    assert data["reports"][0]["url"] == f"/api/reports/{ids[3]}"
    assert data["filters"] == {"product": "Jami"}
    assert data["links"]["older"] == (
        f"/api/reports?product=Jami&per_page=3&before={ids[1]}&offset=3")
    assert data["links"]["alternate"] == "/?product=Jami&per_page=3"
    older = view.api(data["links"]["older"])
    assert [r["id"] for r in older["reports"]] == [ids[0]]
    assert older["links"]["older"] is None
    assert view.api(older["links"]["newer"])["reports"] == data["reports"]
    soup = view.page(data["links"]["alternate"])
    assert row_ids(soup) == [r["id"] for r in data["reports"]]
    assert soup.select_one("header a[href^='/api/reports']")["href"] == (
        "/api/reports?product=Jami&per_page=3")

    one = view.api(f"/api/reports/{ids[1]}")
    assert one["id"] == ids[1]
    assert one["annotations"]["client_sha"] == "s2"
    assert one["attachments"] == [{
        "index": 0, "name": "a.txt", "field": "a.txt", "size": 2,
        "sha256": one["attachments"][0]["sha256"], "url": f"/reports/{ids[1]}/attachments/0",
        "download_name": "a.txt"}]
    assert one["dump"]["url"] == f"/reports/{ids[1]}/dump"
    assert one["bundle"] == {"name": "s2-unknown-linux.zip", "url": f"/reports/{ids[1]}/bundle"}
    assert one["links"]["alternate"] == f"/reports/{ids[1]}"


# -- real HTTP --------------------------------------------------------------------------------


@pytest.mark.seaweedfs
def test_over_real_http_pages_and_downloads(live_servers, seaweed_backend) -> None:
    servers = live_servers(seaweed_backend, VIEWER_USERS=USERS)
    body, headers, query = forms.crashpad_form(
        {"platform": "linux", "client_sha": "abc", "jamicore_sha": "def"},
        attachments={"note.txt": b"hello"})
    sent = requests.post(servers.submit_url, data=forms.chunked(body), headers=headers,
                         params=query, timeout=30)
    report_id = sent.text
    auth_pair = ("admin", PASSWORD)
    page = requests.get(servers.viewer_url + "/?platform=linux", auth=auth_pair, timeout=10)
    assert row_ids(BeautifulSoup(page.text, "html.parser")) == [report_id]
    response = requests.get(f"{servers.viewer_url}/reports/{report_id}/bundle", auth=auth_pair,
                            timeout=10)
    assert response.status_code == 200
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert archive.read("minidump.dmp") == forms.fixture_dump()
        assert archive.read("attachments/00-note.txt") == b"hello"
    # The submit port serves no viewer route.
    port = servers.submit_url.rsplit(":", 1)[1].split("/")[0]
    assert requests.get(f"http://127.0.0.1:{port}/", auth=auth_pair,
                        timeout=10).status_code == 404


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
    monkeypatch.setattr(viewer, "SCAN_BUDGET", 7)
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


def test_every_viewer_route_is_documented() -> None:
    import app as application

    text = (Path(__file__).resolve().parents[1] / "docs" / "viewer.md").read_text()
    for path in application.app.routes:
        if path in ("/submit", "/"):
            continue
        documented = path.replace("{report_id}", "<id>").replace("{index}", "<n>")
        assert f"`{documented}" in text, path
