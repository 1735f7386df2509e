"""Crash reports in one S3 bucket. The key layout is defined here and nowhere else.

Key tree (P is REPORTS_PREFIX, often empty); docs/storage-layout.md explains the why::

    P/parts/<claim>.dmp                     the minidump, raw bytes. Written first, with
                                            If-None-Match: * so that a retried upload
                                            finds its earlier claim; carries the report
                                            id in x-amz-meta-report-id.
    P/parts/<claim>.a<NN>.<name>            attachment NN (00..), raw bytes
    P/reports/<inv>~<claim>~<facts>.json    the metadata JSON, written last: a report
                                            exists once this key does (commit marker)
    P/summary.json                          totals written by the pruner for the viewer

- <inv> is 16 hex digits, (2**64 - 1) minus the report id, so a plain ascending
  listing of P/reports/ is newest first; its prefix follows from the id.
- <claim> is 32 hex digits of sha256 over (client guid, Crashpad report uuid, dump
  sha256), or (client guid, dump sha256, UTC day) when the dump has no uuid.
- <facts> are FACT_FIELDS and the dump size, percent-encoded and joined by `~`, each
  cut to FACT_KEY_CHARS with a trailing `*` when cut (and all to one shorter length
  when the name would pass KEY_SEGMENT_BYTES): index pages and filters read them from
  the listing instead of opening every report.
- Every part is fixed width or lives in one flat "folder", so byte order (AWS S3)
  and path-part order (SeaweedFS) agree, and every StartAfter is a full key position.

IAM: s3:PutObject, s3:GetObject, s3:ListBucket, s3:DeleteObject on the bucket.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import logging
import re
import time
from collections.abc import Iterator
from typing import Any, BinaryIO

from chalicelib import report
from chalicelib.bucket import (  # noqa: F401  (errors re-exported for callers)
    DELETE_BATCH,
    LIST_PAGE,
    Bucket,
    NotFound,
    PreconditionFailed,
    StoreError,
    StoreUnavailable,
    default_client,
    s3_client,
)
from chalicelib.config import Config
from chalicelib.keys import (  # noqa: F401  (re-exported: the layout's key parts)
    FACT_KEY_CHARS,
    KEY_SEGMENT_BYTES,
    decode_key_part,
    encode_key_part,
    encode_within,
    inverted,
)
from chalicelib.submission import FilePart, Submission

log = logging.getLogger(__name__)

REPORTS = "reports/"
PARTS = "parts/"
SUMMARY = "summary.json"
SMALL_PART_BYTES = 1024 * 1024
_MAX_ID = 2**64 - 1
_REPORT_KEY = re.compile(r"^(?P<inv>[0-9a-f]{16})~(?P<claim>[0-9a-f]{32})~(?P<facts>[^/]*)\.json$")
_PART_KEY = re.compile(r"^(?P<claim>[0-9a-f]{32})\.(?P<kind>dmp|a(?P<index>\d{2,})\.[^/]*)$")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class ReportNotFound(KeyError):
    """No committed report has that id."""


@dataclasses.dataclass(frozen=True)
class ReportSummary:
    """What a listing tells about one committed report, without reading it."""

    id: str
    key: str
    claim: str
    facts: dict[str, str]
    truncated: frozenset[str]
    dump_size: int
    meta_size: int

    @property
    def received_at(self) -> datetime.datetime:
        return report.report_time(self.id)


@dataclasses.dataclass(frozen=True)
class StoredObject:
    """One key under the prefix, as a listing shows it, classified by the layout."""

    key: str
    size: int
    last_modified: datetime.datetime
    kind: str  # "report", "part", "summary" or "other"
    claim: str = ""
    summary: ReportSummary | None = None


@dataclasses.dataclass(frozen=True)
class StoredReport:
    id: str
    meta: dict[str, Any]
    claim: str

    @property
    def attachments(self) -> list[dict[str, Any]]:
        return list(self.meta.get("attachments", []))


def claim_for(submission: Submission) -> str:
    """The dedup claim: equal for a retried upload of the same report, else distinct."""
    dump = submission.dump
    if submission.crashpad_uuid:
        parts = ["uuid", submission.client_guid, submission.crashpad_uuid, dump.sha256]
    else:
        day = int(submission.received_at.timestamp() // 86400)
        parts = ["day", submission.client_guid, dump.sha256, str(day)]
    return hashlib.sha256("\0".join(parts).encode("utf-8", "replace")).hexdigest()[:32]


def attachment_key_name(index: int, name: str) -> str:
    safe = _SAFE_NAME.sub("_", name).replace("..", "_").strip("._")[:100] or "attachment"
    return f"a{index:02d}.{safe}"


def parse_report_name(name: str, key: str, meta_size: int) -> ReportSummary | None:
    """The report named `<inv>~<claim>~<facts>.json` (a reports/ key without its folder)."""
    match = _REPORT_KEY.match(name)
    if match is None:
        return None
    # Tolerant past <inv>~<claim>~: a key written with other FACT_FIELDS is still
    # its report (else the pruner would take its parts for an orphan's).
    *encoded, size = match["facts"].split("~")
    facts, truncated = {}, set()
    for index, field in enumerate(report.FACT_FIELDS):
        facts[field], cut = decode_key_part(encoded[index] if index < len(encoded) else "")
        if cut:
            truncated.add(field)
    dump_size = int(size) if size.isdigit() else 0
    return ReportSummary(
        id=f"{_MAX_ID - int(match['inv'], 16):016x}",
        key=key,
        claim=match["claim"],
        facts=facts,
        truncated=frozenset(truncated),
        dump_size=dump_size,
        meta_size=meta_size,
    )


class ReportStore(Bucket):
    @classmethod
    def from_config(cls, cfg: Config) -> ReportStore:
        return cls(default_client(), cfg.bucket, cfg.prefix, cfg.storage_retry_seconds)

    # -- writing -------------------------------------------------------------------

    def put(self, submission: Submission) -> str:
        """Store a submission whole and return its report id.

        Idempotent: a retried upload of the same report (see claim_for) answers the id
        the first attempt got. Storage errors are retried for retry_seconds, then
        StoreUnavailable is raised; nothing becomes visible until the metadata is in.
        """
        deadline = self.deadline()
        claim = claim_for(submission)
        report_id = report.new_report_id(submission.received_at)
        earlier = self._earlier_claim(submission, claim, deadline)
        if earlier is None:
            earlier = self._claim(claim, report_id, submission.dump, deadline)
        if earlier is not None:
            earlier_id, earlier_claim = earlier
            if self.find(earlier_id, deadline) is not None:
                return earlier_id
            report_id, claim = earlier_id, earlier_claim
            # Rewrite the old dump so its age says "upload in progress": the pruner must
            # not take this claim's parts for an orphan's while the report commits.
            self.retrying(
                deadline, self._put_file, self._part_key(claim, "dmp"), submission.dump,
                report_id, False,
            )
        for index, part in enumerate(submission.attachments):
            key = self._part_key(claim, attachment_key_name(index, part.filename or part.field))
            self.retrying(deadline, self._put_file, key, part)
        meta = report.describe(submission, report_id)
        body = json.dumps(meta, ensure_ascii=False, sort_keys=True).encode()
        key = self._report_key(report_id, claim, meta["facts"], submission.dump.size)
        try:
            self.retrying(
                deadline,
                self.s3.put_object,
                Bucket=self.bucket,
                Key=key,
                Body=body,
                ContentType="application/json",
                IfNoneMatch="*",
            )
        except PreconditionFailed:
            pass  # a concurrent retry of the same report committed it first
        return report_id

    def _earlier_claim(
        self, submission: Submission, claim: str, deadline: float
    ) -> tuple[str, str] | None:
        """For dumps without a uuid, the claim of the previous UTC day may hold it."""
        if submission.crashpad_uuid:
            return None
        yesterday = dataclasses.replace(
            submission, received_at=submission.received_at - datetime.timedelta(days=1)
        )
        previous = claim_for(yesterday)
        found = self._claimed_id(previous, deadline)
        if found is None:
            return None
        age = submission.received_at - report.report_time(found)
        return (found, previous) if age < datetime.timedelta(hours=24) else None

    def _claim(
        self, claim: str, report_id: str, dump: FilePart, deadline: float
    ) -> tuple[str, str] | None:
        """Write the dump under its claim; if the claim exists, return its (id, claim)."""
        key = self._part_key(claim, "dmp")
        try:
            self.retrying(deadline, self._put_file, key, dump, report_id)
            return None
        except PreconditionFailed:
            pass
        owner = self._claimed_id(claim, deadline)
        if owner is None or owner == report_id:
            # our own earlier attempt succeeded, or the claim vanished (pruned): retry
            if owner is None:
                self.retrying(deadline, self._put_file, key, dump, report_id, False)
            return None
        return owner, claim

    def dump_modified(self, claim: str) -> datetime.datetime | None:
        """When the claim's dump was last written, or None if it has none."""
        head = self._head_dump(claim, time.monotonic() + self.retry_seconds)
        return None if head is None else head["LastModified"]

    def _claimed_id(self, claim: str, deadline: float) -> str | None:
        head = self._head_dump(claim, deadline)
        owner = "" if head is None else head.get("Metadata", {}).get("report-id", "")
        return owner if report.is_report_id(owner) else None

    def _head_dump(self, claim: str, deadline: float) -> dict[str, Any] | None:
        try:
            return self.retrying(
                deadline, self.s3.head_object, Bucket=self.bucket,
                Key=self._part_key(claim, "dmp"),
            )
        except NotFound:
            return None

    def _put_file(
        self, key: str, part: FilePart, report_id: str | None = None, exclusive: bool = True
    ) -> None:
        # Small parts go as bytes: botocore sends any file-like body with
        # "Expect: 100-continue", a round trip per PUT that only pays off for large ones.
        body: Any = part.read() if part.size <= SMALL_PART_BYTES else part.content
        part.content.seek(0)
        extra: dict[str, Any] = {}
        if report_id is not None:
            extra["Metadata"] = {"report-id": report_id}
            if exclusive:
                extra["IfNoneMatch"] = "*"
        self.s3.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=body,
            ContentLength=part.size,
            ContentType="application/octet-stream",
            **extra,
        )

    def put_summary(self, summary: dict[str, Any]) -> None:
        self.put_json(SUMMARY, summary)

    # -- reading -------------------------------------------------------------------

    def get(self, report_id: str) -> StoredReport:
        """The committed report's metadata; raises ReportNotFound."""
        if not report.is_report_id(report_id):
            raise ReportNotFound(report_id)
        deadline = self.deadline()
        found = self.find(report_id, deadline)
        if found is None:
            raise ReportNotFound(report_id)
        try:
            body = self.get_object(found.key, deadline)["Body"].read()
        except NotFound:
            raise ReportNotFound(report_id) from None
        return StoredReport(id=report_id, meta=json.loads(body), claim=found.claim)

    def open_dump(self, stored: StoredReport) -> BinaryIO:
        """A stream of the raw dump bytes (close it when done)."""
        return self._open(self._stored_part_key(stored, None))

    def open_attachment(self, stored: StoredReport, index: int) -> BinaryIO:
        """A stream of attachment `index` (its position in meta['attachments'])."""
        return self._open(self._stored_part_key(stored, index))

    def download_url(
        self, stored: StoredReport, attachment: int | None, filename: str, seconds: int = 300
    ) -> str:
        """A presigned GET of the dump (attachment None) or an attachment, saved as filename.

        For downloads too large to pass through the app (Lambda answers at most 6 MB).
        """
        return self.s3.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": self._stored_part_key(stored, attachment),
                "ResponseContentDisposition": f'attachment; filename="{filename}"',
                "ResponseContentType": "application/octet-stream",
            },
            ExpiresIn=seconds,
        )

    def get_summary(self) -> dict[str, Any] | None:
        return self.get_json(SUMMARY)

    def _open(self, key: str) -> BinaryIO:
        try:
            return self.get_object(key)["Body"]
        except NotFound:
            raise ReportNotFound(key) from None

    def find(self, report_id: str, deadline: float | None = None) -> ReportSummary | None:
        """The committed report's listing entry (key and facts), or None: one list request.

        `deadline` lets a caller share its own retry budget (an upload's) with the lookup.
        """
        if not report.is_report_id(report_id):
            return None
        prefix = self.prefix + REPORTS + inverted(report_id) + "~"
        page = self.retrying(
            deadline or self.deadline(), self.s3.list_objects_v2, Bucket=self.bucket,
            Prefix=prefix, MaxKeys=10,
        )
        for item in page.get("Contents", []):
            summary = self.parse_report_key(item)
            if summary is not None:
                return summary
        return None

    # -- listing -------------------------------------------------------------------

    def iter_newest(
        self,
        older_than: str | None = None,
        newer_than: str | None = None,
        page_size: int = LIST_PAGE,
    ) -> Iterator[ReportSummary]:
        """Committed reports, newest first, with newer_than < id < older_than.

        Lazily lists P/reports/ one page (page_size keys) at a time: the caller's
        first `n` reports cost ceil(n / page_size) list requests.
        """
        start_after = None
        if older_than is not None:
            start_after = self.prefix + REPORTS + inverted(older_than) + "~~"
        stop = inverted(newer_than) if newer_than is not None else None
        for item in self.list_items(self.prefix + REPORTS, start_after, page_size):
            summary = self.parse_report_key(item)
            if summary is None:
                continue
            if stop is not None and inverted(summary.id) >= stop:
                return
            yield summary

    def iter_objects(self) -> Iterator[StoredObject]:
        """Every key under the prefix, classified by the layout (for the pruner)."""
        for item in self.list_items(self.prefix):
            rest = item["Key"][len(self.prefix):]
            kind, claim, summary = "other", "", None
            if rest.startswith(REPORTS):
                summary = self.parse_report_key(item)
                if summary is not None:
                    kind, claim = "report", summary.claim
            elif rest.startswith(PARTS):
                match = _PART_KEY.match(rest[len(PARTS):])
                if match:
                    kind, claim = "part", match["claim"]
            elif rest == SUMMARY:
                kind = "summary"
            yield StoredObject(
                key=item["Key"],
                size=int(item["Size"]),
                last_modified=item["LastModified"],
                kind=kind,
                claim=claim,
                summary=summary,
            )

    def parse_report_key(self, item: dict[str, Any]) -> ReportSummary | None:
        """The report a listing entry of P/reports/ names, or None for a foreign key."""
        name = item["Key"][len(self.prefix) + len(REPORTS):]
        return parse_report_name(name, item["Key"], int(item.get("Size", 0)))

    # -- keys and retries ----------------------------------------------------------

    def _report_key(self, report_id: str, claim: str, facts: dict[str, str], size: int) -> str:
        head, tail = f"{inverted(report_id)}~{claim}~", f"~{size}.json"
        values = [facts.get(field, "") for field in report.FACT_FIELDS]
        facts_part = encode_within(values, KEY_SEGMENT_BYTES - len(head) - len(tail))
        return f"{self.prefix}{REPORTS}{head}{facts_part}{tail}"

    def _part_key(self, claim: str, name: str) -> str:
        return f"{self.prefix}{PARTS}{claim}.{name}"

    def _stored_part_key(self, stored: StoredReport, attachment: int | None) -> str:
        """The dump's key (attachment None) or attachment N's; ReportNotFound past the end."""
        if attachment is None:
            return self._part_key(stored.claim, "dmp")
        if not 0 <= attachment < len(stored.attachments):
            raise ReportNotFound(f"{stored.id} attachment {attachment}")
        name = attachment_key_name(attachment, stored.attachments[attachment]["name"])
        return self._part_key(stored.claim, name)

