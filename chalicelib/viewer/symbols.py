"""The Symbols page: the modules most wanted, the stored symbol files, how to upload.

"Most wanted" comes from the pruner's signature summary (`missing_symbols`: the modules
most often in crashing threads that had no symbols, as of the summary's run), read
through viewer.summary. The symbol files come from the upload log, newest first: a
page is one listing of `P/symbol-log/`, never of `P/symbols/`.

The older-page cursor is `?before=<ms>-<n>`: the upload time (ms since the epoch) of the
page's last row and how many uploads made in that millisecond were shown already, so
uploads sharing a millisecond are neither skipped nor shown twice.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from chalicelib import report
from chalicelib.crash_store import CrashStore
from chalicelib.symbol_store import SymbolStore, SymbolUpload, uploads_from
from chalicelib.viewer.query import BadQuery
from chalicelib.viewer.summary import count, signature_summary
from chalicelib.viewer.urls import Urls

UPLOADS_PER_PAGE = 50
MOST_WANTED = 100
_CURSOR = re.compile(r"^(\d{1,15})-(\d{1,6})$")


def symbols_page(
    symbols: SymbolStore, crashes: CrashStore, params: Mapping[str, str], urls: Urls
) -> dict[str, Any]:
    """Most wanted modules, then a page of symbol files (?before=<ms>-<n> for older)."""
    before = params.get("before", "") or None
    at, shown = _cursor(before) if before else (None, 0)
    rows: list[SymbolUpload] = []
    more = False
    listing = symbols.iter_uploads(uploads_from(at) if at is not None else None)
    for upload in listing:
        if shown and _millis(upload) == at:
            shown -= 1  # shown on an earlier page
            continue
        if len(rows) == UPLOADS_PER_PAGE:
            more = True
            break
        rows.append(upload)
    summary = signature_summary(crashes)
    twin = urls.as_html() if urls.api else urls.as_api()
    return {
        "summary": summary is not None,
        "generated_at": str(summary.get("generated_at", "")) if summary else None,
        "missing_symbols": _most_wanted(summary),
        "uploads": [_upload_row(upload, urls) for upload in rows],
        "newest_page": before is None,
        "upload": {
            "v1_url": "https://<collector>/symbols/upload?key=NAME:KEY",
            "v2_url": "https://<collector>/symbols",
        },
        "links": {
            "self": urls.symbols(before),
            "alternate": twin.symbols(before),
            "newest": urls.symbols(),
            "older": urls.symbols(_older_cursor(rows, before)) if more else None,
        },
    }


def _cursor(value: str) -> tuple[int, int]:
    match = _CURSOR.match(value)
    if match is None:
        raise BadQuery("before must be <upload time in ms>-<count>, as the Older link gives")
    return int(match[1]), int(match[2])


def _millis(upload: SymbolUpload) -> int:
    return round(upload.uploaded_at.timestamp() * 1000)


def _older_cursor(rows: list[SymbolUpload], before: str | None) -> str:
    """The cursor after the page's last row: its millisecond and the uploads made in it
    shown so far (those on earlier pages too, when the whole page shares it)."""
    last = _millis(rows[-1])
    same = sum(1 for row in rows if _millis(row) == last)
    if before is not None:
        at, shown = _cursor(before)
        if at == last:
            same += shown
    return f"{last}-{same}"


def _upload_row(upload: SymbolUpload, urls: Urls) -> dict[str, Any]:
    return {
        "debug_file": upload.debug_file,
        "debug_id": upload.debug_id,
        "os": upload.os,
        "cpu": upload.cpu,
        "size": upload.size,
        "sha256_prefix": upload.sha256,
        "uploaded_at": report.isoformat(upload.uploaded_at),
        "uploader": upload.uploader,
        "url": urls.symbol_file(upload.debug_file, upload.debug_id),
    }


def _most_wanted(summary: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The summary's `missing_symbols`, odd entries dropped (the names come from dumps)."""
    entries = (summary or {}).get("missing_symbols")
    if not isinstance(entries, list):
        return []
    wanted = []
    for entry in entries[:MOST_WANTED]:
        if not isinstance(entry, dict):
            continue
        debug_file, debug_id = entry.get("debug_file"), entry.get("debug_id")
        if isinstance(debug_file, str) and debug_file and isinstance(debug_id, str):
            wanted.append({"debug_file": debug_file, "debug_id": debug_id,
                           "reports": count(entry.get("reports"))})
    return wanted

