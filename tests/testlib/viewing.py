"""The viewer under test: a logged-in client over Chalice's test client, and page helpers.

Reports go in through POST /submit, or, where a test needs receive times in the past,
through `store_at` (submission.parse_submission + ReportStore.put with an explicit
received_at). Test modules build their `view` fixtures with `logged_in`.
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
