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
  cut to FACT_KEY_CHARS with a trailing `*` when cut: index pages and filters read
  them from the listing instead of opening every report.
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
import random
import re
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any, BinaryIO, TypeVar

import boto3
import botocore.session
import botocore.utils
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib import report
from chalicelib.config import Config
from chalicelib.submission import FilePart, Submission

log = logging.getLogger(__name__)

REPORTS = "reports/"
PARTS = "parts/"
SUMMARY = "summary.json"
FACT_KEY_CHARS = 96
DELETE_BATCH = 1000
LIST_PAGE = 1000
SMALL_PART_BYTES = 1024 * 1024
_MAX_ID = 2**64 - 1
_REPORT_KEY = re.compile(r"^(?P<inv>[0-9a-f]{16})~(?P<claim>[0-9a-f]{32})~(?P<facts>[^/]*)\.json$")
_PART_KEY = re.compile(r"^(?P<claim>[0-9a-f]{32})\.(?P<kind>dmp|a(?P<index>\d{2,})\.[^/]*)$")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
# 409: a conditional PUT raced another write of the same key (S3 asks to retry it).
_RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504}
T = TypeVar("T")


class StoreError(Exception):
    """The bucket refused an operation for a reason retrying will not fix."""


class StoreUnavailable(StoreError):
    """The bucket kept failing for the whole retry budget."""


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


def parse_timestamp(value: str) -> datetime.datetime:
    """S3 timestamps, the ISO 8601 ones of listings parsed fast.

    botocore's general parser costs about 70 us a key: most of a listing page's time.
    """
    try:
        return datetime.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return botocore.utils.parse_timestamp(value)


def s3_client(**kwargs: Any) -> Any:
    """A boto3 S3 client whose listings parse timestamps with parse_timestamp."""
    session = botocore.session.get_session()
    session.get_component("response_parser_factory").set_parser_defaults(
        timestamp_parser=parse_timestamp
    )
    return boto3.Session(botocore_session=session).client("s3", **kwargs)


def inverted(report_id: str) -> str:
    return f"{_MAX_ID - int(report_id, 16):016x}"


def claim_for(submission: Submission) -> str:
    """The dedup claim: equal for a retried upload of the same report, else distinct."""
    dump = submission.dump
    if submission.crashpad_uuid:
        parts = ["uuid", submission.client_guid, submission.crashpad_uuid, dump.sha256]
    else:
        day = int(submission.received_at.timestamp() // 86400)
        parts = ["day", submission.client_guid, dump.sha256, str(day)]
    return hashlib.sha256("\0".join(parts).encode("utf-8", "replace")).hexdigest()[:32]


def _encode_fact(value: str) -> str:
    encoded = urllib.parse.quote(value, safe="").replace("~", "%7E").replace(".", "%2E")
    if len(encoded) <= FACT_KEY_CHARS:
        return encoded
    cut = encoded[:FACT_KEY_CHARS]
    if "%" in cut[-2:]:
        cut = cut[: cut.rindex("%")]
    return cut + "*"


def _decode_fact(encoded: str) -> tuple[str, bool]:
    truncated = encoded.endswith("*")
    raw = encoded[:-1] if truncated else encoded
    return urllib.parse.unquote(raw, errors="replace"), truncated


def attachment_key_name(index: int, name: str) -> str:
    safe = _SAFE_NAME.sub("_", name).replace("..", "_").strip("._")[:100] or "attachment"
    return f"a{index:02d}.{safe}"


class ReportStore:
    def __init__(
        self,
        s3_client: Any,
        bucket: str,
        prefix: str = "",
        retry_seconds: float = 20.0,
    ) -> None:
        """Use a ready S3 client and bucket; from_config builds both from settings."""
        self.s3 = s3_client
        self.bucket = bucket
        self.prefix = prefix
        self.retry_seconds = retry_seconds
        self.requests: Counter[str] = Counter()
        s3_client.meta.events.register("before-call.s3", self._count_request)

    @classmethod
    def from_config(cls, cfg: Config) -> ReportStore:
        client = s3_client(
            config=BotoConfig(
                connect_timeout=3,
                read_timeout=15,  # a hung S3 must not outlast Crashpad's 60 s timeout
                max_pool_connections=32,
                retries={"total_max_attempts": 1, "mode": "standard"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                s3={"addressing_style": "path"},
            ),
        )
        return cls(client, cfg.bucket, cfg.prefix, cfg.storage_retry_seconds)

    def _count_request(self, model: Any, **_: Any) -> None:
        self.requests[model.name] += 1

    # -- writing -------------------------------------------------------------------

    def put(self, submission: Submission) -> str:
        """Store a submission whole and return its report id.

        Idempotent: a retried upload of the same report (see claim_for) answers the id
        the first attempt got. Storage errors are retried for retry_seconds, then
        StoreUnavailable is raised; nothing becomes visible until the metadata is in.
        """
        deadline = time.monotonic() + self.retry_seconds
        claim = claim_for(submission)
        report_id = report.new_report_id(submission.received_at)
        earlier = self._earlier_claim(submission, claim, deadline)
        if earlier is None:
            earlier = self._claim(claim, report_id, submission.dump, deadline)
        if earlier is not None:
            earlier_id, earlier_claim = earlier
            if self._find_report_key(earlier_id, deadline) is not None:
                return earlier_id
            report_id, claim = earlier_id, earlier_claim
            # Rewrite the old dump so its age says "upload in progress": the pruner must
            # not take this claim's parts for an orphan's while the report commits.
            self._retrying(
                deadline, self._put_file, self._part_key(claim, "dmp"), submission.dump,
                report_id, False,
            )
        for index, part in enumerate(submission.attachments):
            key = self._part_key(claim, attachment_key_name(index, part.filename or part.field))
            self._retrying(deadline, self._put_file, key, part)
        meta = report.describe(submission, report_id)
        body = json.dumps(meta, ensure_ascii=False, sort_keys=True).encode()
        key = self._report_key(report_id, claim, meta["facts"], submission.dump.size)
        try:
            self._retrying(
                deadline,
                self.s3.put_object,
                Bucket=self.bucket,
                Key=key,
                Body=body,
                ContentType="application/json",
                IfNoneMatch="*",
            )
        except _PreconditionFailed:
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
            self._retrying(deadline, self._put_file, key, dump, report_id)
            return None
        except _PreconditionFailed:
            pass
        owner = self._claimed_id(claim, deadline)
        if owner is None or owner == report_id:
            # our own earlier attempt succeeded, or the claim vanished (pruned): retry
            if owner is None:
                self._retrying(deadline, self._put_file, key, dump, report_id, False)
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
            return self._retrying(
                deadline, self.s3.head_object, Bucket=self.bucket,
                Key=self._part_key(claim, "dmp"),
            )
        except _NotFound:
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
        body = json.dumps(summary, sort_keys=True).encode()
        deadline = time.monotonic() + self.retry_seconds
        self._retrying(
            deadline,
            self.s3.put_object,
            Bucket=self.bucket,
            Key=self.prefix + SUMMARY,
            Body=body,
            ContentType="application/json",
        )

    def check_bucket(self) -> None:
        """Raise StoreError with a clear reason when the bucket cannot be reached."""
        try:
            self._retrying(time.monotonic() + self.retry_seconds, self.s3.head_bucket,
                           Bucket=self.bucket)
        except _NotFound:
            raise StoreError(f"bucket {self.bucket!r} does not exist") from None

    # -- reading -------------------------------------------------------------------

    def get(self, report_id: str) -> StoredReport:
        """The committed report's metadata; raises ReportNotFound."""
        if not report.is_report_id(report_id):
            raise ReportNotFound(report_id)
        deadline = time.monotonic() + self.retry_seconds
        found = self._find_report_key(report_id, deadline)
        if found is None:
            raise ReportNotFound(report_id)
        key, claim = found
        try:
            body = self._retrying(
                deadline, self.s3.get_object, Bucket=self.bucket, Key=key
            )["Body"].read()
        except _NotFound:
            raise ReportNotFound(report_id) from None
        return StoredReport(id=report_id, meta=json.loads(body), claim=claim)

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
        try:
            deadline = time.monotonic() + self.retry_seconds
            body = self._retrying(
                deadline, self.s3.get_object, Bucket=self.bucket, Key=self.prefix + SUMMARY
            )["Body"].read()
        except _NotFound:
            return None
        return json.loads(body)

    def _open(self, key: str) -> BinaryIO:
        deadline = time.monotonic() + self.retry_seconds
        try:
            return self._retrying(deadline, self.s3.get_object, Bucket=self.bucket, Key=key)[
                "Body"
            ]
        except _NotFound:
            raise ReportNotFound(key) from None

    def _find_report_key(self, report_id: str, deadline: float) -> tuple[str, str] | None:
        prefix = self.prefix + REPORTS + inverted(report_id) + "~"
        page = self._retrying(
            deadline, self.s3.list_objects_v2, Bucket=self.bucket, Prefix=prefix, MaxKeys=10
        )
        for item in page.get("Contents", []):
            summary = self._parse_report_key(item)
            if summary is not None:
                return item["Key"], summary.claim
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
        for item in self._list(self.prefix + REPORTS, start_after, page_size):
            summary = self._parse_report_key(item)
            if summary is None:
                continue
            if stop is not None and inverted(summary.id) >= stop:
                return
            yield summary

    def iter_objects(self) -> Iterator[StoredObject]:
        """Every key under the prefix, classified by the layout (for the pruner)."""
        for item in self._list(self.prefix, None, LIST_PAGE):
            rest = item["Key"][len(self.prefix):]
            kind, claim, summary = "other", "", None
            if rest.startswith(REPORTS):
                summary = self._parse_report_key(item)
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

    def delete_keys(self, keys: Sequence[str]) -> int:
        """Delete keys in batches of DELETE_BATCH (one request each); returns how many."""
        deleted = 0
        for start in range(0, len(keys), DELETE_BATCH):
            batch = keys[start : start + DELETE_BATCH]
            deadline = time.monotonic() + self.retry_seconds
            answer = self._retrying(
                deadline,
                self.s3.delete_objects,
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
            )
            errors = answer.get("Errors", [])
            if errors:
                raise StoreError(f"could not delete {len(errors)} keys, first: {errors[0]}")
            deleted += len(batch)
        return deleted

    def _list(
        self, prefix: str, start_after: str | None, page_size: int
    ) -> Iterator[dict[str, Any]]:
        token = None
        while True:
            args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": page_size}
            if token:
                args["ContinuationToken"] = token
            elif start_after:
                args["StartAfter"] = start_after
            deadline = time.monotonic() + self.retry_seconds
            page = self._retrying(deadline, self.s3.list_objects_v2, **args)
            yield from page.get("Contents", [])
            if not page.get("IsTruncated"):
                return
            token = page.get("NextContinuationToken")

    def _parse_report_key(self, item: dict[str, Any]) -> ReportSummary | None:
        match = _REPORT_KEY.match(item["Key"][len(self.prefix) + len(REPORTS):])
        if match is None:
            return None
        # Tolerant past <inv>~<claim>~: a key written with other FACT_FIELDS is still
        # its report (else the pruner would take its parts for an orphan's).
        *encoded, size = match["facts"].split("~")
        facts, truncated = {}, set()
        for index, field in enumerate(report.FACT_FIELDS):
            facts[field], cut = _decode_fact(encoded[index] if index < len(encoded) else "")
            if cut:
                truncated.add(field)
        dump_size = int(size) if size.isdigit() else 0
        return ReportSummary(
            id=f"{_MAX_ID - int(match['inv'], 16):016x}",
            key=item["Key"],
            claim=match["claim"],
            facts=facts,
            truncated=frozenset(truncated),
            dump_size=dump_size,
            meta_size=int(item.get("Size", 0)),
        )

    # -- keys and retries ----------------------------------------------------------

    def _report_key(self, report_id: str, claim: str, facts: dict[str, str], size: int) -> str:
        encoded = [_encode_fact(facts.get(field, "")) for field in report.FACT_FIELDS]
        facts_part = "~".join(encoded)
        return f"{self.prefix}{REPORTS}{inverted(report_id)}~{claim}~{facts_part}~{size}.json"

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

    def _retrying(self, deadline: float, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one S3 call, retrying transient failures with backoff until deadline."""
        attempt = 0
        while True:
            try:
                return call(*args, **kwargs)
            except ClientError as error:
                status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                code = error.response.get("Error", {}).get("Code", "")
                if status == 412 or code == "PreconditionFailed":
                    raise _PreconditionFailed(f"S3 precondition failed: {error}") from None
                if status == 404 or code in ("NoSuchKey", "404", "NotFound"):
                    raise _NotFound(f"S3 object or bucket not found: {error}") from None
                if status not in _RETRYABLE_STATUS and code not in ("SlowDown", "RequestTimeout"):
                    raise StoreError(f"S3 {code or status}: {error}") from error
                failure: Exception = error
            except BotoCoreError as error:
                failure = error
            attempt += 1
            pause = min(2.0, 0.05 * 2**attempt) * (0.5 + random.random() / 2)
            if time.monotonic() + pause > deadline:
                raise StoreUnavailable(f"storage unavailable: {failure}") from failure
            log.warning("S3 call failed (attempt %d), retrying: %s", attempt, failure)
            time.sleep(pause)


class _PreconditionFailed(StoreError):
    pass


class _NotFound(StoreError):
    pass

