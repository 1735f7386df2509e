"""Processed crashes in the report pages: the report page's crash section, the
processed JSON download, reason and signature on index rows, and the signature filter."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator

import pytest

from chalicelib.crash_store import signature_id
from chalicelib.processing.processor import error_crash
from tests.testlib import forms
from tests.testlib.viewing import (
    UTC,
    Viewer,
    cells,
    link,
    logged_in,
    ok_crash,
    put_crash,
    row_ids,
    store_at,
    walk,
)


@pytest.fixture
def view(app_env, moto_backend) -> Iterator[Viewer]:
    with logged_in(app_env, moto_backend) as started:
        yield started


def test_before_processing_the_report_says_so(view) -> None:
    report_id = view.submit({"platform": "linux"})
    soup = view.page(f"/reports/{report_id}")
    assert "Not processed yet" in soup.select_one("#crash-pending").get_text()
    assert soup.select_one("a#crash-json") is None
    data = view.api(f"/api/reports/{report_id}")
    assert data["crash"] is None and data["processed"] == {"state": "pending"}
    assert view.get(f"/reports/{report_id}/crash.json").status_code == 404
    assert cells(view.page("/reports"), report_id)["crash"] == "not processed"


def test_a_processed_report_shows_its_crash(view) -> None:
    report_id = view.submit({"platform": "linux"})
    crash = ok_crash()
    put_crash(view.backend, report_id, crash)
    soup = view.page(f"/reports/{report_id}")
    facts = {td["data-field"]: td.get_text(" ", strip=True)
             for td in soup.select("table.crash-facts td")}
    assert facts == {
        "reason": "SIGSEGV / SEGV_MAPERR", "address": "0x0000000000000000",
        "os": "Linux 6.1.0-13-amd64", "cpu": "amd64 GenuineIntel family 6 model 154 (8 CPUs)",
        "signature": crash["signature"],
    }
    assert soup.select_one("td[data-field=signature] a")["href"] == (
        f"/signatures/{signature_id(crash['signature'])}")
    frames = [[td.get_text() for td in tr.select("td")]
              for tr in soup.select("h3 + table.frames tbody tr")]
    assert frames == [
        ["0", "crash + 0x0000000000000012", "crasher.c:12", "context"],
        ["1", "libc.so.6 + 0x0000000000029d8f", "", "cfi"],
        ["2", "0x00007fffffffe123", "", "scan"],
    ]
    threads = soup.select_one("details.threads")
    assert threads.summary.get_text() == "Other threads (1)"
    assert threads.h4.get_text() == "Thread 1 (worker)"
    assert [td.get_text() for td in threads.select("tbody td")] == [
        "0", "libc.so.6 + 0x0000000000091117", "", "context"]
    modules = [[td.get_text() for td in tr.select("td")]
               for tr in soup.select("details.modules tbody tr")]
    assert modules[0] == ["crasher", "1.0.0", "0x0000555555554000", "0x0000555555559000",
                          "crasher", "A1B2C3D4E5F60718293A4B5C6D7E8F900", "loaded"]
    assert modules[1][0] == "libc.so.6" and modules[1][-1] == "missing"
    # The dump's Crashpad annotations are folded away, never on show by default.
    folded = soup.select_one("details.crash-annotations")
    assert folded.summary.get_text() == "Crashpad annotations in the dump (1 process)"
    assert folded.select_one("td").get_text() == "note-value-42"
    assert not folded.has_attr("open")
    assert soup.select_one("a#crash-json")["href"] == f"/reports/{report_id}/crash.json"


def test_the_api_holds_the_processed_json_and_the_download_is_that_json(view) -> None:
    report_id = view.submit()
    crash = ok_crash()
    put_crash(view.backend, report_id, crash)
    data = view.api(f"/api/reports/{report_id}")
    assert data["crash"] == crash
    assert data["processed"]["signature_url"] == (
        f"/api/signatures/{signature_id(crash['signature'])}")
    response = view.get(f"/reports/{report_id}/crash.json")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="{report_id}.crash.json"')
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert json.loads(response.body) == crash
    text = response.body.decode()
    assert "environ" not in text and "command_line" not in text


def test_an_unreadable_dump_is_listed_and_downloadable_with_its_error(view) -> None:
    dump = b"MDMP" + b"\0" * 10
    report_id = view.submit({"platform": "win64"}, dump=dump)
    failed = error_crash("MINIDUMP_READ", "the header is cut short")
    put_crash(view.backend, report_id, failed)
    soup = view.page(f"/reports/{report_id}")
    note = soup.select_one("#crash-error").get_text(" ", strip=True)
    assert "ERROR_MINIDUMP_READ" in note and "the header is cut short" in note
    assert view.get(f"/reports/{report_id}/dump").body == dump
    assert view.api(f"/api/reports/{report_id}")["crash"] == failed
    assert json.loads(view.get(f"/reports/{report_id}/crash.json").body) == failed
    index = view.page("/reports")
    assert row_ids(index) == [report_id]
    assert cells(index, report_id)["crash"] == "ERROR_MINIDUMP_READ"
    assert view.api("/api/reports")["reports"][0]["crash"] == {
        "reason": "ERROR_MINIDUMP_READ", "error": True, "sig": None, "signature": "",
        "signature_cut": False, "signature_url": None}


def test_index_rows_show_reason_and_signature(view) -> None:
    first, second, third = (view.submit({"platform": p}) for p in ("linux", "win64", "macos"))
    put_crash(view.backend, first, ok_crash("SIGSEGV | a"))
    put_crash(view.backend, third, ok_crash("EXCEPTION_ACCESS_VIOLATION | b", "SIGBUS"))
    soup = view.page("/reports")
    crash_cell = soup.select_one(f"tr#r-{third} td[data-field=crash]")
    assert crash_cell.select_one(".reason").get_text() == "SIGBUS"
    assert crash_cell.a.get_text() == "EXCEPTION_ACCESS_VIOLATION | b"
    assert crash_cell.a["href"] == f"/signatures/{signature_id('EXCEPTION_ACCESS_VIOLATION | b')}"
    assert cells(soup, second)["crash"] == "not processed"
    assert cells(soup, first)["crash"] == "SIGSEGV / SEGV_MAPERRSIGSEGV | a"
    api = {r["id"]: r["crash"] for r in view.api("/api/reports")["reports"]}
    assert api[second] is None
    assert api[first]["signature_url"] == f"/api/signatures/{signature_id('SIGSEGV | a')}"


def test_the_signature_filter_lists_that_signatures_reports(view) -> None:
    start = datetime.datetime(2026, 10, 1, tzinfo=UTC)
    ids = {"a": [], "b": []}
    for n in range(7):
        which = "a" if n % 3 else "b"
        report_id = store_at(view.backend.store(), start + datetime.timedelta(hours=n),
                             platform="linux" if n < 4 else "win64")
        put_crash(view.backend, report_id, ok_crash(f"SIGSEGV | {which}"))
        ids[which].append(report_id)
    sig = signature_id("SIGSEGV | a")
    soup = view.page(f"/reports?signature={sig}")
    assert row_ids(soup) == ids["a"][::-1]
    assert soup.select_one("#signature-filter a")["href"] == f"/signatures/{sig}"
    assert soup.select_one("input[name=signature]")["value"] == sig
    pages = walk(view, f"/reports?signature={sig}&per_page=2", "next")
    assert pages == [ids["a"][::-1][:2], ids["a"][::-1][2:4]]
    older = view.page(f"/reports?signature={sig}&per_page=2")
    assert link(older, "next") == (
        f"/reports?signature={sig}&per_page=2&before={ids['a'][2]}&offset=2")
    second = view.page(link(older, "next"))
    assert link(second, "prev") is None  # a signature's listing pages older only
    assert link(second, "first") == f"/reports?signature={sig}&per_page=2"
    assert row_ids(view.page(f"/reports?signature={sig}&platform=win64")) == [
        i for i in ids["a"][::-1] if i in ids["a"][2:]]
    assert row_ids(view.page(f"/reports?signature={sig}&until=2026-10-01")) == ids["a"][::-1]
    assert row_ids(view.page(f"/reports?signature={sig}&since=2026-10-02")) == []
    api = view.api(f"/api/reports?signature={sig}")
    assert [r["id"] for r in api["reports"]] == ids["a"][::-1]
    assert api["filters"] == {"signature": sig}
    assert row_ids(view.page("/reports?signature=" + "0" * 16)) == []


@pytest.mark.parametrize("query, reason", [
    ("signature=xyz", "signature must be a signature id"),
    ("signature=" + "A" * 16, "signature must be a signature id"),
    ("signature=" + "0" * 16 + "&after=" + "1" * 16, "older only"),
])
def test_bad_signature_filters_are_400(view, query: str, reason: str) -> None:
    assert reason in view.api("/api/reports?" + query, status=400)["error"]
    assert reason in view.page("/reports?" + query, status=400).select_one("p.message").text


def test_the_report_links_lead_to_the_crashes_page(view) -> None:
    report_id = view.submit(dump=forms.fake_dump(100))
    soup = view.page(f"/reports/{report_id}")
    assert [a["href"] for a in soup.select("nav.site a")] == ["/", "/reports", "/symbols"]
    assert soup.select_one("header a.brand")["href"] == "/"


def test_names_from_the_dump_are_escaped_on_the_report_page(view) -> None:
    report_id = view.submit()
    crash = ok_crash("<script>alert(1)</script>", "<img src=x>")
    crash["modules"][0]["filename"] = "<svg onload=alert(1)>"
    crash["crashing_thread"]["frames"][1]["module"] = "<svg onload=alert(1)>"
    crash["crashpad_annotations"]["process"] = {"<b>k</b>": "<i>v</i>"}
    put_crash(view.backend, report_id, crash)
    body = view.get(f"/reports/{report_id}").body
    for raw in (b"<script>", b"<img", b"<svg onload", b"<b>k", b"<i>v"):
        assert raw not in body
    soup = view.page(f"/reports/{report_id}")
    assert soup.select_one("td[data-field=signature] a").get_text() == "<script>alert(1)</script>"
    assert soup.select_one("td[data-field=reason]").get_text() == "<img src=x>"
    assert soup.select("h3 + table.frames tbody tr")[1].select("td")[1].get_text() == (
        "<svg onload=alert(1)> + 0x0000000000029d8f")


def test_a_large_processed_crash_downloads_from_a_presigned_url(app_env, moto_backend) -> None:
    from chalice.test import Client

    from tests.testlib.viewing import LOGIN, USERS

    application = app_env(moto_backend, VIEWER_USERS=USERS, DOWNLOAD_REDIRECT_MB="0.0001")
    with Client(application.app) as client:
        report_id = Viewer(client, moto_backend).submit()
        put_crash(moto_backend, report_id, ok_crash())
        response = client.http.get(f"/reports/{report_id}/crash.json", headers=LOGIN)
    assert response.status_code == 302
    location = response.headers["Location"]
    assert "/crashes/" in location and "Signature=" in location
    assert "response-content-disposition=attachment" in location
