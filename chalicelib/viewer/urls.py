"""The viewer's links, built in one place."""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import Any

from chalicelib.symbol_store import sym_name


class Urls:
    """Every link the viewer shows; templates reach it as `urls`.

    In API mode, page links (crashes, signatures, the report index, reports, symbols) point at
    the JSON twins, so the API's dicts link to the API and the pages' dicts to pages.
    """

    def __init__(self, base: str = "", api: bool = False) -> None:
        self.base = base.rstrip("/")
        self.api = api

    def as_api(self) -> Urls:
        return Urls(self.base, api=True)

    def as_html(self) -> Urls:
        return Urls(self.base, api=False)

    def path(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        pairs = {k: v for k, v in (params or {}).items() if v is not None and v != ""}
        query = "?" + urllib.parse.urlencode(pairs) if pairs else ""
        return self.base + path + query

    def index(self, filters: Mapping[str, str] | None = None, **cursor: Any) -> str:
        if cursor.get("offset") == 0:
            cursor.pop("offset")
        return self.path("/api/reports" if self.api else "/reports",
                         {**(filters or {}), **cursor})

    def filter_by(self, filters: Mapping[str, str], field: str, value: str) -> str:
        """The index with one more filter (a table cell's link)."""
        return self.index({**filters, field: value})

    def crashes(self, window: str | None = None, page: int | None = None) -> str:
        """The Crashes page (the home page); window 7 and page 1 are the defaults."""
        params = {"window": None if window == "7" else window,
                  "page": None if page == 1 else page}
        return self.path("/api/crashes" if self.api else "/", params)

    def signature(self, sig: str, before: str | None = None) -> str:
        return self.path(("/api/signatures/" if self.api else "/signatures/") + sig,
                         {"before": before})

    def symbols(self, before: str | None = None) -> str:
        """The Symbols page; `before` is its older-page cursor."""
        return self.path("/api/symbols" if self.api else "/symbols", {"before": before})

    def symbol_file(self, debug_file: str, debug_id: str) -> str:
        """A stored .sym file's download (also where a stackwalker's --symbols-url looks)."""
        parts = (debug_file, debug_id, sym_name(debug_file))
        # Characters a path segment may hold stay as they are (`libstdc++.so.6`): the
        # route gets them unchanged whether or not its host decodes path parameters.
        return self.path("/symbols/" + "/".join(
            urllib.parse.quote(part, safe="!$&'()*+,;=:@") for part in parts))

    def report(self, report_id: str) -> str:
        return self.path(("/api/reports/" if self.api else "/reports/") + report_id)

    def crash_json(self, report_id: str) -> str:
        return self.path(f"/reports/{report_id}/crash.json")

    def dump(self, report_id: str) -> str:
        return self.path(f"/reports/{report_id}/dump")

    def attachment(self, report_id: str, index: int) -> str:
        return self.path(f"/reports/{report_id}/attachments/{index}")

    def bundle(self, report_id: str) -> str:
        return self.path(f"/reports/{report_id}/bundle")
