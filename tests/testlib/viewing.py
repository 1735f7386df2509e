"""The viewer under test: a logged-in client over Chalice's test client, and page helpers.

Reports go in through POST /submit, or, where a test needs receive times in the past,
through `store_at` (submission.parse_submission + ReportStore.put with an explicit
received_at). Processed crashes go in through CrashStore.put_crash (`put_crash`, with
`ok_crash` for a hand-built processed crash), and the pruner's signature summary as a
hand-written object (`signature_summary`). Test modules build their `view` fixtures
with `logged_in`.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import io
import json
from collections.abc import Callable, Iterator
from typing import Any

from bs4 import BeautifulSoup
from chalice.test import Client

from chalicelib import auth, submission
from chalicelib.crash_store import CrashEntry, CrashStore, signature_id
from chalicelib.store import ReportStore
from tests.conftest import Backend
from tests.testlib import forms

PASSWORD = "viewer-pass"
USERS = "admin:" + auth.hash_password(PASSWORD, 1000)
LOGIN = {"Authorization": "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode(),
         "Accept": "*/*"}
UTC = datetime.timezone.utc
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


@contextlib.contextmanager
def logged_in(app_env: Callable[..., Any], backend: Backend) -> Iterator[Viewer]:
    """A Viewer on the app configured for `backend` (through the app_env fixture)."""
    application = app_env(backend, VIEWER_USERS=USERS)
    with Client(application.app) as client:
        yield Viewer(client, backend)


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


# -- processed crashes and the signature summary --------------------------------------


def crash_store(backend: Backend) -> CrashStore:
    return CrashStore(backend.client, backend.bucket, backend.prefix, 2.0)


def put_crash(backend: Backend, report_id: str, crash: dict[str, Any]) -> CrashEntry:
    """Store `crash` as the processed crash of a stored report."""
    stored = backend.store().find(report_id)
    assert stored is not None, report_id
    return crash_store(backend).put_crash(stored, crash)


def ok_crash(signature: str = "crash | main | __libc_start_call_main",
             reason: str = "SIGSEGV / SEGV_MAPERR") -> dict[str, Any]:
    """A processed crash as the processor writes it: two threads, two modules."""
    crashing_frames = [
        {"frame": 0, "trust": "context", "offset": "0x00005555555551d2", "module": "crasher",
         "module_offset": "0x00000000000011d2", "function": "crash",
         "function_offset": "0x0000000000000012", "file": "crasher.c", "line": 12,
         "inlines": None, "missing_symbols": False, "registers": {"rip": "0x00005555555551d2"}},
        {"frame": 1, "trust": "cfi", "offset": "0x00007ffff7c29d8f", "module": "libc.so.6",
         "module_offset": "0x0000000000029d8f", "function": None, "function_offset": None,
         "file": None, "line": None, "inlines": None, "missing_symbols": True},
        {"frame": 2, "trust": "scan", "offset": "0x00007fffffffe123", "module": None,
         "module_offset": None, "function": None, "function_offset": None, "file": None,
         "line": None, "inlines": None, "missing_symbols": True},
    ]
    worker_frames = [
        {"frame": 0, "trust": "context", "offset": "0x00007ffff7c91117", "module": "libc.so.6",
         "module_offset": "0x0000000000091117", "function": None, "function_offset": None,
         "file": None, "line": None, "inlines": None, "missing_symbols": True},
    ]
    return {
        "status": "OK",
        "crash_info": {"type": reason, "address": "0x0000000000000000", "crashing_thread": 0,
                       "assertion": None},
        "system_info": {"os": "Linux", "os_ver": "6.1.0-13-amd64", "cpu_arch": "amd64",
                        "cpu_info": "GenuineIntel family 6 model 154", "cpu_count": 8},
        "crashing_thread": {"threads_index": 0, "thread_name": "crasher",
                            "frames": crashing_frames},
        "threads": [
            {"thread_id": 101, "thread_name": "crasher", "frames": crashing_frames},
            {"thread_id": 102, "thread_name": "worker", "frames": worker_frames},
        ],
        "modules": [
            {"base_addr": "0x0000555555554000", "end_addr": "0x0000555555559000",
             "filename": "crasher", "debug_file": "crasher",
             "debug_id": "A1B2C3D4E5F60718293A4B5C6D7E8F900", "code_id": "d4c3b2a1",
             "version": "1.0.0", "missing_symbols": False, "loaded_symbols": True},
            {"base_addr": "0x00007ffff7c00000", "end_addr": "0x00007ffff7e00000",
             "filename": "libc.so.6", "debug_file": "libc.so.6",
             "debug_id": "0F1E2D3C4B5A69788796A5B4C3D2E1F00", "code_id": "3c2d1e0f",
             "version": None, "missing_symbols": True, "loaded_symbols": False},
        ],
        "unloaded_modules": [],
        "lsb_release": None,
        "mac_crash_info": None,
        "crashpad_annotations": {"process": {"app_note": "note-value-42"}, "modules": {}},
        "signature": signature,
        "processor": {"name": "crash-collector", "version": 1, "duration_ms": 12,
                      "warnings": []},
    }


def last_days(end: datetime.date, count: int = 30) -> list[str]:
    return [(end - datetime.timedelta(days=back)).isoformat() for back in range(count - 1, -1, -1)]


def signature_summary(end: datetime.date, entries: dict[str, dict[str, Any]],
                      **totals: int) -> dict[str, Any]:
    """signatures.json as the pruner writes it; `entries` maps signature text to fields."""
    signatures = {}
    for text, fields in entries.items():
        by_day = fields.get("by_day", {})
        counted = sum(sum(v.values()) for v in by_day.values())
        signatures[signature_id(text)] = {
            "signature": text, "signature_cut": False, "reason": "SIGSEGV / SEGV_MAPERR",
            "count": counted, "first_seen": None, "last_seen": None,
            "versions": {}, "platforms": {}, "products": {}, **fields,
        }
    return {"schema": 1, "generated_at": f"{end.isoformat()}T14:00:00.000Z",
            "newest_id": None, "total_reports": totals.get("total_reports", 0),
            "processed": totals.get("processed", 0), "unprocessed": totals.get("unprocessed", 0),
            "errors": totals.get("errors", 0), "days": last_days(end),
            "omitted_signatures": 0, "signatures": signatures}
