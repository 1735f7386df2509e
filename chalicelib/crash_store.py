"""Processed crashes in the bucket: the crash JSON per report, signature listings, and
the per-signature summary. The key layout of processing output is defined here.

Key tree (P is REPORTS_PREFIX); docs/storage-layout.md explains the why::

    P/crashes/<inv>~<sig>~<reason>~<signature>.json   the processed crash JSON of the
                                            report with that <inv>. Reason and signature
                                            are in the key so index rows need no GET.
    P/signatures/<sig>/<report name>        empty marker: the signature's reports, newest
                                            first; <report name> is the report's own
                                            reports/ key name, so rows need no GET
    P/signatures.json                       per-signature counts, written by the pruner

- <inv> is the report's inverted id (store.inverted): crashes list newest first too.
- <sig> is 16 hex digits of sha256 over the signature text, or `-` for a dump that
  could not be processed (status ERROR_*): it has no signature and no marker.
- <reason> and <signature> are percent-encoded and cut (store.encode_key_part): the
  reason to 64 characters, the signature to what keeps the name within 255 bytes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

from chalicelib import report
from chalicelib.bucket import Bucket, NotFound, default_client
from chalicelib.config import Config
from chalicelib.keys import KEY_SEGMENT_BYTES, decode_key_part, encode_key_part, inverted
from chalicelib.store import REPORTS, ReportSummary, parse_report_name

CRASHES = "crashes/"
SIGNATURES = "signatures/"
SIGNATURE_SUMMARY = "signatures.json"
NO_SIGNATURE = "-"
REASON_KEY_CHARS = 64
_MAX_ID = 2**64 - 1
_CRASH_KEY = re.compile(
    r"^(?P<inv>[0-9a-f]{16})~(?P<sig>[0-9a-f]{16}|-)~(?P<reason>[^~/]*)~(?P<signature>[^~/]*)\.json$"
)
_MARKER_KEY = re.compile(r"^(?P<sig>[0-9a-f]{16})/(?P<name>[^/]+)$")


def signature_id(signature: str) -> str:
    """The 16 hex digits that stand for a signature in keys and URLs."""
    return hashlib.sha256(signature.encode("utf-8", "replace")).hexdigest()[:16]


def is_signature_id(value: str) -> bool:
    return len(value) == 16 and all(c in "0123456789abcdef" for c in value)


@dataclasses.dataclass(frozen=True)
class CrashEntry:
    """What a listing of P/crashes/ tells about one processed report."""

    report_id: str
    key: str
    sig: str                    # signature id, or NO_SIGNATURE
    reason: str                 # crash type, or the ERROR_* status
    signature: str              # as the key holds it (cut when `signature_cut`)
    signature_cut: bool
    size: int = 0

    @property
    def is_error(self) -> bool:
        return self.sig == NO_SIGNATURE


def crash_key_name(report_id: str, sig: str, reason: str, signature: str) -> str:
    """`<inv>~<sig>~<reason>~<signature>.json`, within KEY_SEGMENT_BYTES."""
    head = "~".join((inverted(report_id), sig, encode_key_part(reason, REASON_KEY_CHARS)))
    room = KEY_SEGMENT_BYTES - len(head) - len("~.json") - 1  # one for a trailing `*`
    return f"{head}~{encode_key_part(signature, room)}.json"


def parse_crash_name(name: str, key: str = "", size: int = 0) -> CrashEntry | None:
    match = _CRASH_KEY.match(name)
    if match is None:
        return None
    signature, cut = decode_key_part(match["signature"])
    return CrashEntry(
        report_id=f"{_MAX_ID - int(match['inv'], 16):016x}",
        key=key,
        sig=match["sig"],
        reason=decode_key_part(match["reason"])[0],
        signature=signature,
        signature_cut=cut,
        size=size,
    )


def parse_marker_name(name: str) -> tuple[str, ReportSummary] | None:
    """(signature id, report) of a signatures/ key without its folder."""
    match = _MARKER_KEY.match(name)
    if match is None:
        return None
    summary = parse_report_name(match["name"], "", 0)
    return None if summary is None else (match["sig"], summary)


class CrashStore(Bucket):
    @classmethod
    def from_config(cls, cfg: Config) -> CrashStore:
        return cls(default_client(cfg), cfg.bucket, cfg.prefix, cfg.storage_retry_seconds)

    # -- writing -------------------------------------------------------------------

    def put_crash(self, stored: ReportSummary, crash: dict[str, Any]) -> CrashEntry:
        """Store the processed crash of a committed report, replacing any earlier one.

        The new crash and its signature marker are written before the old ones are
        deleted, so a reader always finds one of them.
        """
        signature = crash.get("signature")
        sig = signature_id(signature) if signature else NO_SIGNATURE
        reason = _reason_of(crash)
        name = crash_key_name(stored.id, sig, reason, signature or "")
        body = json.dumps(crash, sort_keys=True).encode()
        earlier = list(self.iter_report_crashes(stored.id))
        self.put_bytes(CRASHES + name, body, "application/json")
        report_name = stored.key.rsplit("/", 1)[-1]
        if sig != NO_SIGNATURE:
            self.put_bytes(f"{SIGNATURES}{sig}/{report_name}", b"", "application/octet-stream")
        stale = [entry.key for entry in earlier if entry.key != self.prefix + CRASHES + name]
        stale += [
            f"{self.prefix}{SIGNATURES}{entry.sig}/{report_name}"
            for entry in earlier if entry.sig not in (sig, NO_SIGNATURE)
        ]
        if stale:
            self.delete_keys(stale)
        entry = parse_crash_name(name, self.prefix + CRASHES + name, len(body))
        assert entry is not None
        return entry

    def put_signature_summary(self, summary: dict[str, Any]) -> None:
        self.put_json(SIGNATURE_SUMMARY, summary)

    # -- reading -------------------------------------------------------------------

    def iter_report_crashes(self, report_id: str) -> Iterator[CrashEntry]:
        """The crash keys of one report (one normally, two while it is reprocessed);
        none for a malformed id."""
        if not report.is_report_id(report_id):
            return
        prefix = self.prefix + CRASHES + inverted(report_id) + "~"
        for item in self.list_items(prefix, page_size=10):
            entry = self._entry(item)
            if entry is not None:
                yield entry

    def get_crash(self, report_id: str) -> dict[str, Any] | None:
        """The processed crash JSON of a report, or None when it is not processed yet."""
        return self.read_first(list(self.iter_report_crashes(report_id)))

    def read_first(self, entries: list[CrashEntry]) -> dict[str, Any] | None:
        """The crash JSON of the first of these entries still stored (a reprocessing may
        have replaced one since its listing)."""
        for entry in entries:
            try:
                return json.loads(self.get_object(entry.key)["Body"].read())
            except NotFound:
                continue
        return None

    def crash_entries(self, report_ids: Iterable[str]) -> dict[str, CrashEntry]:
        """Crash entries for the reports of one index page, by report id.

        One list request from the newest of them covers a page of consecutive reports;
        ids it did not reach (a sparse filtered page) cost one small list each.
        """
        wanted_set = set(report_ids)
        wanted = sorted(wanted_set, reverse=True)
        if not wanted:
            return {}
        found: dict[str, CrashEntry] = {}
        oldest, budget = inverted(wanted[-1]), 2 * len(wanted) + 2
        start = self.prefix + CRASHES + inverted(wanted[0])
        listed_to = ""
        for examined, item in enumerate(self.list_items(self.prefix + CRASHES, start, budget)):
            entry = self._entry(item)
            if entry is None:
                continue
            listed_to = inverted(entry.report_id)
            if entry.report_id in wanted_set:
                found.setdefault(entry.report_id, entry)
            if listed_to >= oldest or len(found) == len(wanted) or examined + 1 >= budget:
                break
        else:
            listed_to = "~"  # the listing ended: no other report has a crash
        # The one listing stops at its budget (a sparse filtered page): the rest one by one.
        for report_id in wanted:
            if report_id not in found and inverted(report_id) > listed_to:
                entry = next(self.iter_report_crashes(report_id), None)
                if entry is not None:
                    found[report_id] = entry
        return found

    def iter_crashes(self, newer_than: str | None = None) -> Iterator[CrashEntry]:
        """Every processed report, newest first, down to (not including) newer_than."""
        stop = inverted(newer_than) if newer_than else None
        for item in self.list_items(self.prefix + CRASHES):
            entry = self._entry(item)
            if entry is None:
                continue
            if stop is not None and inverted(entry.report_id) >= stop:
                return
            yield entry

    def iter_signature_reports(
        self, sig: str, older_than: str | None = None, page_size: int = 100
    ) -> Iterator[ReportSummary]:
        """The reports of one signature, newest first, older than `older_than`."""
        folder = f"{self.prefix}{SIGNATURES}{sig}/"
        start = folder + inverted(older_than) + "~~" if older_than else None
        for item in self.list_items(folder, start, page_size):
            parsed = parse_marker_name(item["Key"][len(self.prefix) + len(SIGNATURES):])
            if parsed is not None:
                summary = parsed[1]
                yield dataclasses.replace(
                    summary, key=self.prefix + REPORTS + item["Key"].rsplit("/", 1)[-1]
                )

    def download_url(self, entry: CrashEntry, filename: str, seconds: int = 300) -> str:
        """A presigned GET of a processed crash, saved as filename (for large ones)."""
        return self.s3.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket, "Key": entry.key,
                "ResponseContentDisposition": f'attachment; filename="{filename}"',
                "ResponseContentType": "application/json",
            },
            ExpiresIn=seconds,
        )

    def get_signature_summary(self) -> dict[str, Any] | None:
        return self.get_json(SIGNATURE_SUMMARY)

    def _entry(self, item: dict[str, Any]) -> CrashEntry | None:
        name = item["Key"][len(self.prefix) + len(CRASHES):]
        return parse_crash_name(name, item["Key"], int(item.get("Size", 0)))


def _reason_of(crash: dict[str, Any]) -> str:
    status = crash.get("status") or "OK"
    if status != "OK":
        return status
    info = crash.get("crash_info") or {}
    return info.get("type") or "No crash"
