"""The viewer's pages, downloads and API, over reports stored through the ingest path.

Pages are parsed with BeautifulSoup; downloads are compared byte for byte with what was
uploaded. The client and page helpers live in tests/testlib/viewing.py; paging and
filters have their own test modules.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from bs4 import BeautifulSoup

from chalicelib import bundle, report, viewer
from chalicelib.store import ReportNotFound
from tests.testlib import forms
from tests.testlib.viewing import (
    LOGIN,
    PASSWORD,
    USERS,
    Viewer,
    cells,
    count_text,
    link,
    logged_in,
    row_ids,
)


@pytest.fixture
def view(app_env, backend) -> Iterator[Viewer]:
    with logged_in(app_env, backend) as started:
        yield started


@pytest.fixture
def moto_view(app_env, moto_backend) -> Iterator[Viewer]:
    with logged_in(app_env, moto_backend) as started:
        yield started


# -- index --------------------------------------------------------------------------


def test_an_empty_bucket_shows_a_friendly_empty_state(view) -> None:
    soup = view.page("/reports")
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
    soup = view.page("/reports")
    assert row_ids(soup) == [second, first]
    assert cells(soup, second) == {
        "received": report.report_time(second).strftime("%Y-%m-%d %H:%M:%S"),
        "product_version": "Jami 2.0", "platform": "win64", "crash": "not processed",
        "client_sha": "c2" * 20,
        "jamicore_sha": "j2" * 20, "build_id": "b-200", "guid": "guid-two",
        "dump": "3.0 MiB",
    }
    assert cells(soup, first)["dump"] == f"{len(forms.fixture_dump()) / 1024:.1f} KiB"
    assert soup.select_one(f"tr#r-{first} a")["href"] == f"/reports/{first}"
    # Each value links to the index filtered by it.
    platform_link = soup.select_one(f"tr#r-{first} td[data-field=platform] a")["href"]
    assert platform_link == "/reports?platform=linux"
    assert count_text(soup) == "Showing 1–2"
    assert link(soup, "next") is None and link(soup, "prev") is None


def test_totals_come_from_the_pruners_summary(view) -> None:
    ids = [view.submit({"platform": "linux"}) for _ in range(3)]
    view.backend.store().put_summary({"schema": 1, "total_reports": 1234, "total_bytes": 5})
    soup = view.page("/reports?per_page=2")
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
    assert count_text(moto_view.page("/reports")) == "Showing 1–1"


def test_odd_attachment_numbers_are_not_found() -> None:
    for value in ["²", "١", "-1", "1e3", "99999", ""]:
        with pytest.raises(ReportNotFound):
            viewer.attachment_index(value)


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
    filtered = "/reports?platform=" + requests.utils.quote(script)
    for path in ["/reports", f"/reports/{report_id}", filtered]:
        response = view.get(path)
        assert b"<script>" not in response.body and b"<img" not in response.body
        soup = BeautifulSoup(response.body, "html.parser")
        assert soup.find("script") is None and soup.find("img") is None
        assert script in soup.get_text() and quotes in soup.get_text()
    soup = view.page(f"/reports/{report_id}")
    shown = {tr.th.get_text(): tr.td.get_text() for tr in soup.select("table.annotations tr")}
    assert shown["<i>k</i>'"] == quotes
    assert soup.select_one("table.attachments a").get_text() == "<b>.txt"
    index = view.page("/reports")
    assert index.select_one("td[data-field=client_sha]")["title"] == quotes
    assert index.select_one("td[data-field=platform] a")["href"] == (
        "/reports?platform=%3Cscript%3Ealert%28%22x%22%29%3C%2Fscript%3E")
    headers = view.get("/reports").headers
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


def test_binary_downloads_go_to_any_accept_header_or_none(moto_view) -> None:
    report_id = moto_view.submit()
    dump = moto_view.get(f"/reports/{report_id}/dump", Accept="text/html,*/*;q=0.8")
    assert dump.status_code == 200
    assert moto_view.get(f"/reports/{report_id}/dump",
                         Accept="application/octet-stream").body == dump.body
    assert moto_view.get(f"/reports/{report_id}/bundle", Accept="application/zip").status_code \
        == 200
    # No Accept header means any type will do (scripts, urllib): the same bytes.
    response = moto_view.client.http.get(f"/reports/{report_id}/dump",
                                         headers={"Authorization": LOGIN["Authorization"]})
    assert response.status_code == 200
    assert response.body == dump.body
    assert dump.body[:4] == b"MDMP"
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
    assert data["links"]["alternate"] == "/reports?product=Jami&per_page=3"
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
    page = requests.get(servers.viewer_url + "/reports?platform=linux", auth=auth_pair, timeout=10)
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


def test_every_viewer_route_is_documented() -> None:
    import app as application
    from chalicelib.localrun import is_public

    text = (Path(__file__).resolve().parents[1] / "docs" / "viewer.md").read_text()
    for path in application.app.routes:
        # The public port's routes (Crashpad's and symupload's) have docs of their own.
        if path == "/" or is_public(path):
            continue
        documented = path.replace("{report_id}", "<id>").replace("{index}", "<n>") \
            .replace("{sig}", "<sig>").replace("{debug_file}", "<debug_file>") \
            .replace("{debug_id}", "<debug_id>").replace("{name}", "<name>")
        assert f"`{documented}" in text, path
