"""A report's download bundle: one zip with the dump, its metadata JSON and attachments.

Named `<client_sha>-<jamicore_sha>-<platform>.zip`. Every part of a name comes from the
client, so names are reduced to [A-Za-z0-9._-] before they reach a file system or a
Content-Disposition header.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import zipfile
from collections.abc import Mapping
from typing import IO, Any

from chalicelib.store import ReportStore, StoredReport

DUMP_NAME = "minidump.dmp"
META_NAME = "metadata.json"
ATTACHMENTS_DIR = "attachments/"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_PART_CHARS = 64
_COPY_BYTES = 256 * 1024


def safe_filename(name: str, fallback: str = "unknown", limit: int = 100) -> str:
    """`name` cut down to [A-Za-z0-9._-]: no "..", no dot, dash or _ at either end."""
    cleaned = _UNSAFE.sub("_", name).replace("..", "_")
    cleaned = re.sub("_{2,}", "_", cleaned).strip("._-")[:limit].rstrip("._-")
    return cleaned or fallback


def name_for(meta: Mapping[str, Any]) -> str:
    """The bundle's file name: client sha, jamicore sha and platform ("unknown" if empty)."""
    facts = meta.get("facts") or {}
    parts = [
        safe_filename(str(facts.get(field, "")), limit=_PART_CHARS)
        for field in ("client_sha", "jamicore_sha", "platform")
    ]
    return "-".join(parts) + ".zip"


def build(reports: ReportStore, stored: StoredReport) -> IO[bytes]:
    """The bundle zip in a temporary file, rewound (close it when done).

    Holds minidump.dmp, metadata.json and attachments/<NN>-<name>, streamed from the
    bucket one object at a time, so memory stays small whatever the report's size.
    """
    out = tempfile.TemporaryFile()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        with reports.open_dump(stored) as source, archive.open(DUMP_NAME, "w") as target:
            shutil.copyfileobj(source, target, _COPY_BYTES)
        meta = json.dumps(stored.meta, ensure_ascii=False, indent=2, sort_keys=True)
        archive.writestr(META_NAME, meta)
        for index, item in enumerate(stored.attachments):
            name = attachment_entry(index, str(item.get("name", "")))
            with reports.open_attachment(stored, index) as source, archive.open(
                name, "w"
            ) as target:
                shutil.copyfileobj(source, target, _COPY_BYTES)
    out.seek(0)
    return out


def attachment_entry(index: int, name: str) -> str:
    """Where attachment `index` goes in the zip; the number keeps equal names apart."""
    return f"{ATTACHMENTS_DIR}{index:02d}-{safe_filename(name, 'attachment')}"
