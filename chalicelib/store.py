"""Crash reports in one S3 bucket: writing them whole, reading and listing them.

The key layout lives in report_keys.py (pure functions, its docstring draws the tree);
the S3 plumbing (client, retries, error mapping) in bucket.py. docs/storage-layout.md
explains the why.

IAM: s3:PutObject, s3:GetObject, s3:ListBucket, s3:DeleteObject on the bucket.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
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
from chalicelib.report_keys import (  # noqa: F401  (re-exported for callers)
    DUMP,
    PARTS,
    REPORTS,
    SUMMARY,
    ReportSummary,
    StoredObject,
    attachment_key_name,
    classify,
    claim_for,
    parse_report_item,
    parse_report_name,
    part_key,
    report_key,
    report_prefix,
    resumed_stem,
)
from chalicelib.submission import FilePart, Submission

log = logging.getLogger(__name__)

SMALL_PART_BYTES = 1024 * 1024


class ReportNotFound(KeyError):
    """No committed report has that id."""


@dataclasses.dataclass(frozen=True)
class StoredReport:
    id: str
    meta: dict[str, Any]
    claim: str  # the stem of its part keys (ReportSummary.claim)

    @property
    def attachments(self) -> list[dict[str, Any]]:
        return list(self.meta.get("attachments", []))


class ReportStore(Bucket):
    @classmethod
    def from_config(cls, cfg: Config) -> ReportStore:
        return cls(default_client(cfg), cfg.bucket, cfg.prefix, cfg.storage_retry_seconds)

    # -- writing -------------------------------------------------------------------

    def put(self, submission: Submission) -> str:
        """Store a submission whole and return its report id.

        Idempotent: a retried upload of the same report (see claim_for) answers the id
        the first attempt got. A retry that finds the claim but no committed report
        resumes it under a fresh stem (report_keys.resumed_stem): it writes only keys
        that did not exist, so no pruning run can delete what it wrote. Storage errors
        are retried for retry_seconds, then StoreUnavailable is raised; nothing becomes
        visible until the metadata is in.
        """
        deadline = self.deadline()
        claim = claim_for(submission)
        report_id = report.new_report_id(submission.received_at)
        stem = claim
        earlier = self._earlier_claim(submission, deadline)
        if earlier is None:
            earlier = self._claim(claim, report_id, submission.dump, deadline)
        if earlier is not None:
            earlier_id, earlier_claim = earlier
            if earlier_id and self.find(earlier_id, deadline) is not None:
                return earlier_id
            report_id, stem = earlier_id or report_id, resumed_stem(earlier_claim)
            self.retrying(
                deadline, self._put_file, self._part_key(stem, DUMP), submission.dump,
                report_id, False,
            )
        for index, part in enumerate(submission.attachments):
            key = self._part_key(stem, attachment_key_name(index, part.filename or part.field))
            self.retrying(deadline, self._put_file, key, part)
        if stem != claim and self.find(report_id, deadline) is not None:
            return report_id  # a concurrent attempt committed it meanwhile: no duplicate
        meta = report.describe(submission, report_id)
        body = json.dumps(meta, ensure_ascii=False, sort_keys=True).encode()
        key = self._report_key(report_id, stem, meta["facts"], submission.dump.size)
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
            pass  # our own earlier try of this PUT went through
        return report_id

    def _earlier_claim(self, submission: Submission, deadline: float) -> tuple[str, str] | None:
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
        """Write the dump as the claim; if the claim exists, return (its id, claim).

        The id is "" when the claim vanished in between (a pruning run deleted it):
        the caller then resumes under a fresh stem with its own id, as rewriting a
        key a pruning run may have listed could lose it.
        """
        try:
            self.retrying(deadline, self._put_file, self._part_key(claim, DUMP), dump, report_id)
            return None
        except PreconditionFailed:
            pass
        owner = self._claimed_id(claim, deadline)
        if owner == report_id:
            return None  # our own earlier try of the PUT went through
        return owner or "", claim

    def claim_committed(self, claim: str) -> bool:
        """Whether the report a claim names is committed now (a pruning run asks before
        deleting an orphan's claim: a retry may have finished it since the listing)."""
        deadline = self.deadline()
        owner = self._claimed_id(claim, deadline)
        return owner is not None and self.find(owner, deadline) is not None

    def _claimed_id(self, claim: str, deadline: float) -> str | None:
        try:
            head = self.retrying(
                deadline, self.s3.head_object, Bucket=self.bucket,
                Key=self._part_key(claim, DUMP),
            )
        except NotFound:
            return None
        owner = head.get("Metadata", {}).get("report-id", "")
        return owner if report.is_report_id(owner) else None

    def _put_file(
        self, key: str, part: FilePart, report_id: str | None = None, exclusive: bool = True
    ) -> None:
        # Small parts go as bytes (at most SMALL_PART_BYTES held at a time), large ones
        # stream from their spool file.
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
        return self.open_sized(stored, None)[0]

    def open_attachment(self, stored: StoredReport, index: int) -> BinaryIO:
        """A stream of attachment `index` (its position in meta['attachments'])."""
        return self.open_sized(stored, index)[0]

    def open_sized(self, stored: StoredReport, attachment: int | None) -> tuple[BinaryIO, int]:
        """The dump (attachment None) or an attachment as a stream, with its size as S3
        answers it: what a download must announce, whatever the metadata recorded."""
        key = self._stored_part_key(stored, attachment)
        try:
            answer = self.get_object(key)
        except NotFound:
            raise ReportNotFound(key) from None
        size = int(answer["ContentLength"])
        files = [stored.meta.get("dump", {}), *stored.attachments]
        recorded = files[0 if attachment is None else attachment + 1].get("size")
        if recorded is not None and recorded != size:
            log.warning("%s holds %d bytes, its report recorded %d", key, size, recorded)
        return answer["Body"], size

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

    def find(self, report_id: str, deadline: float | None = None) -> ReportSummary | None:
        """The committed report's listing entry (key and facts), or None: one list request.

        `deadline` lets a caller share its own retry budget (an upload's) with the lookup.
        """
        if not report.is_report_id(report_id):
            return None
        page = self.retrying(
            deadline or self.deadline(), self.s3.list_objects_v2, Bucket=self.bucket,
            Prefix=report_prefix(self.prefix, report_id), MaxKeys=10,
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
        first `n` reports cost ceil(n / page_size) list requests. Two markers of one id
        (two attempts that both committed) are adjacent and yield once.
        """
        start_after = None
        if older_than is not None:
            start_after = self.prefix + REPORTS + inverted(older_than) + "~~"
        stop = inverted(newer_than) if newer_than is not None else None
        last = None
        for item in self.list_items(self.prefix + REPORTS, start_after, page_size):
            summary = self.parse_report_key(item)
            if summary is None or summary.id == last:
                continue
            if stop is not None and inverted(summary.id) >= stop:
                return
            last = summary.id
            yield summary

    def iter_objects(self) -> Iterator[StoredObject]:
        """Every key under the prefix, classified by the layout (for the pruner)."""
        for item in self.list_items(self.prefix):
            yield classify(self.prefix, item)

    def parse_report_key(self, item: dict[str, Any]) -> ReportSummary | None:
        """The report a listing entry of P/reports/ names, or None for a foreign key."""
        return parse_report_item(self.prefix, item)

    # -- keys ------------------------------------------------------------------------

    def _report_key(self, report_id: str, stem: str, facts: dict[str, str], size: int) -> str:
        return report_key(self.prefix, report_id, stem, facts, size)

    def _part_key(self, stem: str, name: str) -> str:
        return part_key(self.prefix, stem, name)

    def _stored_part_key(self, stored: StoredReport, attachment: int | None) -> str:
        """The dump's key (attachment None) or attachment N's; ReportNotFound past the end."""
        if attachment is None:
            return self._part_key(stored.claim, DUMP)
        if not 0 <= attachment < len(stored.attachments):
            raise ReportNotFound(f"{stored.id} attachment {attachment}")
        name = attachment_key_name(attachment, stored.attachments[attachment]["name"])
        return self._part_key(stored.claim, name)
