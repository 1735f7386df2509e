"""The report store's key layout, as pure functions: building keys, and reading them back
from a listing. docs/storage-layout.md explains the why.

Key tree (P is REPORTS_PREFIX, often empty)::

    P/parts/<stem>.dmp                      the minidump, raw bytes, with the report id in
                                            x-amz-meta-report-id. For a first attempt
                                            (<stem> = <claim>) it is also the claim:
                                            written with If-None-Match: *, so that a
                                            retried upload finds the earlier attempt.
    P/parts/<stem>.a<NN>.<name>             attachment NN (00..), raw bytes
    P/reports/<inv>~<stem>~<facts>.json     the metadata JSON, written last: a report
                                            exists once this key does (commit marker)
    P/summary.json                          totals written by the pruner for the viewer

- <inv> is 16 hex digits, (2**64 - 1) minus the report id, so a plain ascending
  listing of P/reports/ is newest first; its prefix follows from the id.
- <claim> is 32 hex digits of sha256 over (client guid, Crashpad report uuid, dump
  sha256), or (client guid, dump sha256, UTC day) when the dump has no uuid.
- <stem> is <claim> for the upload that wrote the claim, and <claim>-<attempt> for a
  retry that resumes it (the claim exists, its report does not): <attempt> is 16 fresh
  hex digits, so a resumed upload only ever writes keys that did not exist before,
  and a pruning run, which deletes only keys it listed, cannot delete them.
- <facts> are FACT_FIELDS and the dump size, percent-encoded and joined by `~`, each
  cut to FACT_KEY_CHARS with a trailing `*` when cut (and all to one shorter length
  when the name would pass KEY_SEGMENT_BYTES): index pages and filters read them from
  the listing instead of opening every report.
- Every part that orders is fixed width or lives in one flat "folder", so byte order
  (AWS S3) and path-part order (SeaweedFS) agree, and every StartAfter is a full key
  position.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import re
import secrets
from typing import Any

from chalicelib import report
from chalicelib.keys import KEY_SEGMENT_BYTES, decode_key_part, encode_within, inverted
from chalicelib.submission import Submission

REPORTS = "reports/"
PARTS = "parts/"
SUMMARY = "summary.json"
DUMP = "dmp"
ATTEMPT_HEX = 16
_MAX_ID = 2**64 - 1
_STEM = rf"[0-9a-f]{{32}}(?:-[0-9a-f]{{{ATTEMPT_HEX}}})?"
_REPORT_KEY = re.compile(rf"^(?P<inv>[0-9a-f]{{16}})~(?P<claim>{_STEM})~(?P<facts>[^/]*)\.json$")
_PART_KEY = re.compile(rf"^(?P<claim>{_STEM})\.(?P<kind>dmp|a(?P<index>\d{{2,}})\.[^/]*)$")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclasses.dataclass(frozen=True)
class ReportSummary:
    """What a listing tells about one committed report, without reading it.

    `claim` is the stem of the report's part keys: its dedup claim, followed by
    `-<attempt>` when a retry resumed the upload (see base_claim).
    """

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

    @property
    def base_claim(self) -> str:
        return base_claim(self.claim)


@dataclasses.dataclass(frozen=True)
class StoredObject:
    """One key under the prefix, as a listing shows it, classified by the layout."""

    key: str
    size: int
    last_modified: datetime.datetime
    kind: str  # "report", "part", "summary" or "other"
    claim: str = ""  # the stem, for reports and parts
    summary: ReportSummary | None = None


def claim_for(submission: Submission) -> str:
    """The dedup claim: equal for a retried upload of the same report, else distinct."""
    dump = submission.dump
    if submission.crashpad_uuid:
        parts = ["uuid", submission.client_guid, submission.crashpad_uuid, dump.sha256]
    else:
        day = int(submission.received_at.timestamp() // 86400)
        parts = ["day", submission.client_guid, dump.sha256, str(day)]
    return hashlib.sha256("\0".join(parts).encode("utf-8", "replace")).hexdigest()[:32]


def resumed_stem(claim: str) -> str:
    """A stem no key has used yet, for a retry that resumes `claim`'s upload."""
    return f"{claim}-{secrets.token_hex(ATTEMPT_HEX // 2)}"


def base_claim(stem: str) -> str:
    """The dedup claim a stem belongs to."""
    return stem.split("-", 1)[0]


def claim_of(key: str) -> str | None:
    """The claim a claim key (a first attempt's dump, P/parts/<claim>.dmp) holds; None
    for any other key."""
    folder, _, name = key.rpartition("/")
    match = _PART_KEY.match(name)
    if (
        match is None or match["kind"] != DUMP or "-" in match["claim"]
        or not f"/{folder}/".endswith(f"/{PARTS}")
    ):
        return None
    return match["claim"]


def is_claim_key(key: str) -> bool:
    """Whether key is a claim (a first attempt's dump, P/parts/<claim>.dmp)."""
    return claim_of(key) is not None


def attachment_key_name(index: int, name: str) -> str:
    safe = _SAFE_NAME.sub("_", name).replace("..", "_").strip("._")[:100] or "attachment"
    return f"a{index:02d}.{safe}"


def part_key(prefix: str, stem: str, name: str) -> str:
    """The key of part `name` (DUMP, or an attachment_key_name) of an upload."""
    return f"{prefix}{PARTS}{stem}.{name}"


def report_key(prefix: str, report_id: str, stem: str, facts: dict[str, str], size: int) -> str:
    """The commit marker's key: id, stem, facts and dump size, within KEY_SEGMENT_BYTES."""
    head, tail = f"{inverted(report_id)}~{stem}~", f"~{size}.json"
    values = [facts.get(field, "") for field in report.FACT_FIELDS]
    facts_part = encode_within(values, KEY_SEGMENT_BYTES - len(head) - len(tail))
    return f"{prefix}{REPORTS}{head}{facts_part}{tail}"


def report_prefix(prefix: str, report_id: str) -> str:
    """What every commit marker of report_id starts with."""
    return f"{prefix}{REPORTS}{inverted(report_id)}~"


def parse_report_name(name: str, key: str, meta_size: int) -> ReportSummary | None:
    """The report named `<inv>~<stem>~<facts>.json` (a reports/ key without its folder)."""
    match = _REPORT_KEY.match(name)
    if match is None:
        return None
    # Tolerant past <inv>~<stem>~: a key written with other FACT_FIELDS is still
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


def parse_report_item(prefix: str, item: dict[str, Any]) -> ReportSummary | None:
    """The report a listing entry of P/reports/ names, or None for a foreign key."""
    name = item["Key"][len(prefix) + len(REPORTS):]
    return parse_report_name(name, item["Key"], int(item.get("Size", 0)))


def classify(prefix: str, item: dict[str, Any]) -> StoredObject:
    """A listing entry of any key under the prefix, as the layout sees it."""
    rest = item["Key"][len(prefix):]
    kind, claim, summary = "other", "", None
    if rest.startswith(REPORTS):
        summary = parse_report_item(prefix, item)
        if summary is not None:
            kind, claim = "report", summary.claim
    elif rest.startswith(PARTS):
        match = _PART_KEY.match(rest[len(PARTS):])
        if match:
            kind, claim = "part", match["claim"]
    elif rest == SUMMARY:
        kind = "summary"
    return StoredObject(
        key=item["Key"],
        size=int(item["Size"]),
        last_modified=item["LastModified"],
        kind=kind,
        claim=claim,
        summary=summary,
    )
