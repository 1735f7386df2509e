"""The viewer in a real browser (headless Debian chromium) against the local-run servers.

Logs in with HTTP Basic, reads the index, filters it with the form, opens a report and
downloads its bundle; goes from the Crashes page to a signature's page, one of its
reports and its processed crash. No JavaScript on our side (the pages have none).
"""

from __future__ import annotations

import datetime
import json
import shutil
import zipfile

import pytest
import requests

from chalicelib import auth
from chalicelib.crash_store import signature_id
from chalicelib.processing.processor import error_crash
from tests.testlib import forms
from tests.testlib.viewing import (
    UTC,
    crash_store,
    last_days,
    ok_crash,
    put_crash,
    signature_summary,
)

pytestmark = [pytest.mark.browser, pytest.mark.seaweedfs]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
PASSWORD = "browser-pass"


@pytest.fixture(scope="module")
def browser():
    if not shutil.which(CHROMIUM):
        pytest.skip("needs Debian chromium (make system-deps)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def site(live_servers, seaweed_backend):
    """The viewer with three reports sent over HTTP like Crashpad does."""
    servers = live_servers(seaweed_backend,
                           VIEWER_USERS="admin:" + auth.hash_password(PASSWORD, 20_000))
    sent = {}
    for platform, client_sha in [("linux", "aaa111"), ("win64", "bbb222"), ("macos", "ccc333")]:
        body, headers, query = forms.crashpad_form(
            {"prod": "Jami", "ver": "1.0", "platform": platform, "client_sha": client_sha,
             "jamicore_sha": "core9", "build_id": "b7"},
            attachments={"log.txt": f"log of {platform}".encode()})
        response = requests.post(servers.submit_url, data=forms.chunked(body), headers=headers,
                                 params=query, timeout=30)
        assert response.status_code == 200
        sent[platform] = response.text
    return servers, sent


def test_login_is_required(browser, site) -> None:
    from playwright.sync_api import Error

    servers, _ = site
    for credentials in (None, {"username": "admin", "password": "nope"}):
        context = browser.new_context(http_credentials=credentials)
        # Challenged, the browser either gives up (no login to offer) or shows the 401.
        page = context.new_page()
        try:
            assert page.goto(servers.viewer_url + "/").status == 401
            assert page.locator("table.reports").count() == 0
        except Error as error:
            assert "ERR_INVALID_AUTH_CREDENTIALS" in str(error)
        answer = context.request.get(servers.viewer_url + "/")
        assert answer.status == 401
        assert answer.headers["www-authenticate"].startswith('Basic realm="crash reports"')
        assert "login required" in answer.text() or "wrong user name" in answer.text()
        assert "table class" not in answer.text()
        context.close()


def test_log_in_filter_open_a_report_and_download_its_bundle(browser, site, tmp_path) -> None:
    servers, sent = site
    context = browser.new_context(
        http_credentials={"username": "admin", "password": PASSWORD}, accept_downloads=True,
        viewport={"width": 1366, "height": 768})
    page = context.new_page()

    response = page.goto(servers.viewer_url + "/reports")
    assert response.status == 200
    assert page.locator("h1").inner_text() == "Crash reports"
    rows = page.locator("table.reports tbody tr")
    assert rows.count() == 3
    assert [rows.nth(i).get_attribute("id") for i in range(3)] == [
        f"r-{sent[p]}" for p in ("macos", "win64", "linux")]
    assert page.locator("nav.pages .count").first.inner_text() == "Showing 1–3"
    # Readable on a laptop: the table fits the window without sideways scrolling.
    assert page.evaluate("document.documentElement.scrollWidth") <= 1366

    page.fill("input[name=platform]", "win64")
    page.click("form.filters button[type=submit]")
    page.wait_for_load_state()
    assert "platform=win64" in page.url
    assert page.locator("table.reports tbody tr").count() == 1
    assert page.locator("input[name=platform]").input_value() == "win64"
    assert page.locator("h1").inner_text() == "Crash reports matching filters"

    page.click(f"tr#r-{sent['win64']} td.when a")
    page.wait_for_load_state()
    assert page.url.endswith(f"/reports/{sent['win64']}")
    assert sent["win64"] in page.locator("h1").inner_text()
    annotations = page.locator("table.annotations").inner_text()
    assert "bbb222" in annotations and "core9" in annotations
    assert "log.txt" in page.locator("table.attachments").inner_text()

    with page.expect_download() as waiting:
        page.click("a#bundle")
    download = waiting.value
    assert download.failure() is None
    assert download.suggested_filename == "bbb222-core9-win64.zip"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    with zipfile.ZipFile(saved) as archive:
        assert archive.namelist() == ["minidump.dmp", "metadata.json", "attachments/00-log.txt"]
        assert archive.read("minidump.dmp") == forms.fixture_dump()
        assert archive.read("attachments/00-log.txt") == b"log of win64"
        assert json.loads(archive.read("metadata.json"))["id"] == sent["win64"]

    with page.expect_download() as waiting:
        page.click("a#dump")
    dump_path = tmp_path / "dump.dmp"
    waiting.value.save_as(dump_path)
    assert waiting.value.suggested_filename == f"{sent['win64']}.dmp"
    assert dump_path.read_bytes() == forms.fixture_dump()
    context.close()


def test_from_the_crashes_page_to_a_signature_and_its_crash(
    browser, site, seaweed_backend
) -> None:
    servers, sent = site
    text = "SIGSEGV / SEGV_MAPERR | crash | main"
    crash = ok_crash(text)
    for platform in ("linux", "win64"):
        put_crash(seaweed_backend, sent[platform], crash)
    put_crash(seaweed_backend, sent["macos"], error_crash("MINIDUMP_READ", "cut short"))
    today = datetime.datetime.now(UTC).date()
    day = last_days(today)[-1]
    crash_store(seaweed_backend).put_signature_summary(signature_summary(today, {text: {
        "by_day": {day: {"1.0": 2}}, "versions": {"1.0": 2},
        "platforms": {"linux": 1, "win64": 1}, "first_seen": sent["linux"],
        "last_seen": sent["win64"]}}, total_reports=3, processed=3, errors=1))
    context = browser.new_context(
        http_credentials={"username": "admin", "password": PASSWORD}, accept_downloads=True,
        viewport={"width": 1366, "height": 768})
    page = context.new_page()

    assert page.goto(servers.viewer_url + "/").status == 200
    assert page.locator("h1").inner_text() == "Crashes"
    rows = page.locator("table.signatures tbody tr")
    assert rows.count() == 1
    assert rows.first.locator("td[data-field=count]").inner_text() == "2"
    # The chart is drawn (SVG from the server) and today's bar is the full plot height.
    chart = page.locator("#chart-all svg.bars").bounding_box()
    assert chart["height"] > 100 and chart["width"] > 500
    bar = page.locator(f'#chart-all g.bar[data-day="{day}"] rect.seg')
    assert bar.count() == 1 and bar.first.get_attribute("height") == "120.0"
    assert page.locator("#chart-all .legend li").first.inner_text() == "1.0 (2)"
    assert page.evaluate("document.documentElement.scrollWidth") <= 1366

    page.click("table.signatures td.sig a")
    page.wait_for_load_state()
    assert page.url.endswith(f"/signatures/{signature_id(text)}")
    assert page.locator("#signature").inner_text() == text
    reports = page.locator("table.reports tbody tr")
    assert [reports.nth(i).get_attribute("id") for i in range(reports.count())] == [
        f"r-{sent['win64']}", f"r-{sent['linux']}"]

    page.click(f"tr#r-{sent['linux']} td.when a")
    page.wait_for_load_state()
    assert page.locator("table.crash-facts td[data-field=reason]").inner_text() == (
        "SIGSEGV / SEGV_MAPERR")
    assert page.locator("details.modules").get_attribute("open") is None
    with page.expect_download() as waiting:
        page.click("a#crash-json")
    saved = tmp_download(waiting.value)
    assert json.loads(saved) == crash

    page.goto(servers.viewer_url + f"/reports/{sent['macos']}")
    assert "ERROR_MINIDUMP_READ" in page.locator("#crash-error").inner_text()
    context.close()


def tmp_download(download) -> bytes:
    assert download.failure() is None
    with open(download.path(), "rb") as saved:
        return saved.read()
