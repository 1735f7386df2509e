"""One report's page, and the attachment lookups its download links use."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalicelib import bundle, report
from chalicelib.crash_store import CrashStore
from chalicelib.store import ReportNotFound, ReportStore, StoredReport
from chalicelib.viewer.crash_view import describe_crash
from chalicelib.viewer.urls import Urls

_META_FIELDS = {"schema", "id", "received_at", "annotations", "query", "user_agent", "dump",
                "attachments", "crashpad_uuid", "facts"}


def report_page(
    reports: ReportStore, report_id: str, urls: Urls, crashes: CrashStore | None = None
) -> dict[str, Any]:
    """Everything stored about one report, with download links. Raises ReportNotFound.

    With `crashes`, `crash` is the processed crash JSON (None until processed) and
    `processed` what the page shows of it.
    """
    meta = reports.get(report_id).meta
    page = describe(meta, report_id, urls)
    if crashes is not None:
        crash = crashes.get_crash(report_id)
        page["crash"] = crash
        page["processed"] = describe_crash(crash, report_id, urls)
    return page


def describe(meta: Mapping[str, Any], report_id: str, urls: Urls) -> dict[str, Any]:
    """The report page's dict from its metadata JSON."""
    dump = meta.get("dump") or {}
    twin = urls.as_html() if urls.api else urls.as_api()
    return {
        "id": report_id,
        "received_at": meta.get("received_at", report.isoformat(report.report_time(report_id))),
        "facts": {f: str((meta.get("facts") or {}).get(f, "")) for f in report.FACT_FIELDS},
        "annotations": dict(sorted((meta.get("annotations") or {}).items())),
        "query": dict(sorted((meta.get("query") or {}).items())),
        "server": {
            "id": report_id,
            "received_at": meta.get("received_at", ""),
            "user_agent": meta.get("user_agent", ""),
            "crashpad_uuid": meta.get("crashpad_uuid", ""),
            "schema": meta.get("schema", ""),
        },
        "dump": {
            "filename": dump.get("filename", ""),
            "size": dump.get("size", 0),
            "sha256": dump.get("sha256", ""),
            "url": urls.dump(report_id),
            "download_name": f"{report_id}.dmp",
        },
        "attachments": [
            {
                "index": index,
                "name": item.get("name", ""),
                "field": item.get("field", ""),
                "size": item.get("size", 0),
                "sha256": item.get("sha256", ""),
                "url": urls.attachment(report_id, index),
                "download_name": bundle.safe_filename(item.get("name", ""), "attachment"),
            }
            for index, item in enumerate(meta.get("attachments") or [])
        ],
        "bundle": {"name": bundle.name_for(meta), "url": urls.bundle(report_id)},
        # Fields later versions add (crash facts, for one) show up without a code change.
        "other": {k: v for k, v in sorted(meta.items()) if k not in _META_FIELDS},
        "links": {
            "self": urls.report(report_id),
            "alternate": twin.report(report_id),
            "index": urls.index(),
            "crashes": urls.crashes(),
        },
    }


def attachment_index(value: str) -> int:
    """The attachment number from a URL; anything but a small number is not found."""
    if not (value.isascii() and value.isdigit()) or len(value) > 4:
        raise ReportNotFound(f"attachment {value}")
    return int(value)


def attachment_meta(stored: StoredReport, index: int) -> dict[str, Any]:
    """The metadata entry of attachment `index`; raises ReportNotFound past the end."""
    if not 0 <= index < len(stored.attachments):
        raise ReportNotFound(f"{stored.id} attachment {index}")
    return stored.attachments[index]


def attachment_filename(stored: StoredReport, index: int) -> str:
    """The safe download name of attachment `index`; raises ReportNotFound past the end."""
    name = attachment_meta(stored, index).get("name", "")
    return bundle.safe_filename(str(name), "attachment")
