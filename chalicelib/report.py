"""A stored crash report: its id and the metadata JSON kept beside the dump."""

from __future__ import annotations

import datetime
import re
import secrets
from typing import Any

from chalicelib.submission import Submission

ID_PATTERN = re.compile(r"^[0-9a-f]{16}$")
SCHEMA_VERSION = 1

# Facts every index row and filter uses, in the order the storage key carries them.
FACT_FIELDS = ("product", "version", "platform", "build_id", "client_sha", "jamicore_sha", "guid")

# Where each fact may come from, first match wins: Crashpad's query string, then the
# annotation names that Crashpad, Breakpad and Electron uploaders use.
_FACT_SOURCES = {
    "product": ("q:product", "prod", "product", "_productName", "ProductName"),
    "version": ("q:version", "ver", "version", "_version", "Version"),
    "platform": ("platform", "plat", "os", "OS"),
    "build_id": ("build_id", "BuildID"),
    "client_sha": ("client_sha",),
    "jamicore_sha": ("jamicore_sha",),
    "guid": ("guid", "q:guid"),
}


def new_report_id(now: datetime.datetime) -> str:
    """16 lowercase hex: 11 of milliseconds since the epoch, 5 random.

    Ids sort by receive time, never derive from client input, and are what Crashpad
    keeps as the remote id (older uploaders accept nothing but 16 hex characters).
    """
    millis = int(now.timestamp() * 1000)
    return f"{millis:011x}{secrets.randbits(20):05x}"


def is_report_id(value: str) -> bool:
    return bool(ID_PATTERN.match(value))


def report_time(report_id: str) -> datetime.datetime:
    millis = int(report_id[:11], 16)
    return datetime.datetime.fromtimestamp(millis / 1000, datetime.timezone.utc)


def id_bound(when: datetime.datetime, upper: bool) -> str:
    """The smallest (or largest) id a report received in that millisecond can have."""
    millis = max(0, min(int(when.timestamp() * 1000), 16**11 - 1))
    return f"{millis:011x}{'fffff' if upper else '00000'}"


def isoformat(when: datetime.datetime) -> str:
    return when.astimezone(datetime.timezone.utc).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )


def describe(submission: Submission, report_id: str) -> dict[str, Any]:
    """The metadata JSON for a submission: every annotation plus what the server knows."""
    dump = submission.dump
    meta: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "id": report_id,
        "received_at": isoformat(submission.received_at),
        "annotations": dict(submission.annotations),
        "query": dict(submission.query),
        "user_agent": submission.user_agent,
        "dump": {
            "filename": dump.filename,
            "size": dump.size,
            "sha256": dump.sha256,
        },
        "attachments": [
            {"name": part.filename or part.field, "field": part.field, "size": part.size,
             "sha256": part.sha256}
            for part in submission.attachments
        ],
    }
    if submission.crashpad_uuid:
        meta["crashpad_uuid"] = submission.crashpad_uuid
    meta["facts"] = facts_of(meta)
    return meta


def facts_of(meta: dict[str, Any]) -> dict[str, str]:
    """product, version, platform... from the query string and annotations."""
    annotations = meta.get("annotations", {})
    query = meta.get("query", {})
    facts = {}
    for field in FACT_FIELDS:
        value = ""
        for source in _FACT_SOURCES[field]:
            if source.startswith("q:"):
                value = query.get(source[2:], "")
            else:
                value = annotations.get(source, "")
            if value:
                break
        facts[field] = value
    return facts


def total_size(meta: dict[str, Any]) -> int:
    return int(meta["dump"]["size"]) + sum(int(a["size"]) for a in meta["attachments"])
