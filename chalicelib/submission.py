"""A crash submission as Crashpad (or a Breakpad-style uploader) sends it.

`parse_submission` turns the request body into a `Submission`: annotations, the minidump
and attachments. Memory is bounded per request whatever the input (docs/limits.md): the
body is inflated and parsed 64 KiB at a time; file parts share one in-memory budget
(MEMORY_BUDGET) and past it go to one temporary file per request, whatever the number of
parts; their number (MAX_ATTACHMENTS) and the annotations' total size are capped.
"""

from __future__ import annotations

import dataclasses
import datetime
import io
import json
import re
import zlib
from collections.abc import Iterator, Mapping
from typing import BinaryIO

import multipart

from chalicelib import minidump
from chalicelib.spool import Spool

DUMP_FIELD = "upload_file_minidump"
CHUNK = 64 * 1024
MEMORY_BUDGET = 2 * 1024 * 1024  # file bytes one request keeps in memory, all parts together
MAX_ATTACHMENTS = 128  # file parts besides the dump
# All annotations of one request together, as the metadata JSON will hold them: a control
# character costs 6 bytes there (\u0001) and an invalid byte 3 (U+FFFD), so the bound
# is on that size, not on the bytes sent.
ANNOTATION_BYTES = 1024 * 1024
QUERY_FIELDS = ("product", "version", "guid")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class SubmissionRejected(Exception):
    """The upload cannot be accepted; `reason` is one line for the client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MalformedSubmission(SubmissionRejected):
    """Broken gzip, broken multipart, no dump, or a dump that is not a minidump."""


class SubmissionTooLarge(SubmissionRejected):
    """The body, the inflated body, or the annotations exceed the configured limits."""


class UnsupportedSubmission(SubmissionRejected):
    """The body is not multipart/form-data."""


@dataclasses.dataclass
class FilePart:
    """One uploaded file (the dump or an attachment), spooled, with its digest."""

    field: str
    filename: str
    content: BinaryIO
    size: int
    sha256: str

    def read(self) -> bytes:
        self.content.seek(0)
        return self.content.read()

    @property
    def in_memory(self) -> bool:
        return isinstance(self.content, io.BytesIO)

    def close(self) -> None:
        self.content.close()


@dataclasses.dataclass
class Submission:
    annotations: dict[str, str]
    dump: FilePart
    attachments: list[FilePart]
    received_at: datetime.datetime
    user_agent: str = ""
    crashpad_uuid: str | None = None
    client_guid: str = ""
    query: dict[str, str] = dataclasses.field(default_factory=dict)

    def close(self) -> None:
        for part in [self.dump, *self.attachments]:
            part.close()

    def __enter__(self) -> Submission:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclasses.dataclass(frozen=True)
class Limits:
    max_body_bytes: int
    max_annotations: int
    max_annotation_bytes: int
    max_attachments: int = MAX_ATTACHMENTS


def parse_submission(
    body: BinaryIO,
    headers: Mapping[str, str],
    query: Mapping[str, str] | None,
    limits: Limits,
    received_at: datetime.datetime | None = None,
) -> Submission:
    """Parse an upload into a Submission.

    Args:
        body: the request body as sent (maybe gzip), readable as a stream.
        headers: request headers, keys lower-case.
        query: the URL's query parameters (Crashpad sends product, version, guid).
        limits: size limits; exceeding one raises SubmissionTooLarge.
    Raises:
        SubmissionRejected (one of its subclasses) with a one-line reason.
    """
    received_at = received_at or datetime.datetime.now(datetime.timezone.utc)
    annotations, files = parse_form(body, headers, limits)
    try:
        dumps = [f for f in files if f.field == DUMP_FIELD]
        if not dumps:
            raise MalformedSubmission(f"no {DUMP_FIELD} file part")
        if len(dumps) > 1:
            raise MalformedSubmission(f"more than one {DUMP_FIELD} part")
        dump = dumps[0]
        dump.content.seek(0)
        if not minidump.has_signature(dump.content.read(4)):
            raise MalformedSubmission("dump is not a minidump (no MDMP signature)")
    except SubmissionRejected:
        _discard(files)
        raise
    stem = dump.filename[:-4] if dump.filename.lower().endswith(".dmp") else ""
    query = query or {}
    return Submission(
        annotations=annotations,
        dump=dump,
        attachments=[f for f in files if f.field != DUMP_FIELD],
        received_at=received_at,
        user_agent=headers.get("user-agent", ""),
        crashpad_uuid=stem.lower() if _UUID.match(stem) else None,
        client_guid=annotations.get("guid") or query.get("guid") or "",
        query={k: v for k, v in query.items() if k in QUERY_FIELDS},
    )


def parse_form(
    body: BinaryIO, headers: Mapping[str, str], limits: Limits
) -> tuple[dict[str, str], list[FilePart]]:
    """Any multipart/form-data body (gzip or not): its fields, and its files spooled.

    The caller closes the files. Raises SubmissionRejected like parse_submission.
    """
    boundary = _boundary(headers.get("content-type", ""))
    chunks = _body_chunks(body, headers.get("content-encoding", ""), limits.max_body_bytes)
    return _parse_parts(chunks, boundary, limits)


def _boundary(content_type: str) -> str:
    kind, options = multipart.parse_options_header(content_type)
    if kind != "multipart/form-data":
        raise UnsupportedSubmission(
            f"expected multipart/form-data, got {kind or 'no content type'!r}"
        )
    boundary = options.get("boundary", "")
    if not boundary or len(boundary) > 200:
        raise MalformedSubmission("multipart body without a usable boundary")
    return boundary


def _body_chunks(body: BinaryIO, content_encoding: str, limit: int) -> Iterator[bytes]:
    """Yield the multipart bytes, inflating gzip in bounded steps.

    gzip is detected by the magic bytes, not only the header: a gateway may have
    inflated the body already and kept `Content-Encoding: gzip`.
    """
    first = body.read(CHUNK)
    gzipped = first[:2] == b"\x1f\x8b"
    if not gzipped and content_encoding.strip().lower() not in ("", "identity", "gzip"):
        raise UnsupportedSubmission(f"unsupported Content-Encoding {content_encoding!r}")
    total_in = 0
    total_out = 0
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzipped else None
    chunk = first
    while chunk:
        total_in += len(chunk)
        if total_in > limit:
            raise SubmissionTooLarge(f"body larger than {limit // 1024 // 1024} MiB")
        if inflater is None:
            yield chunk
        else:
            data = chunk
            while data and not inflater.eof:
                try:
                    out = inflater.decompress(data, CHUNK)
                except zlib.error:
                    raise MalformedSubmission("broken gzip body") from None
                data = inflater.unconsumed_tail
                total_out += len(out)
                if total_out > limit:
                    raise SubmissionTooLarge(
                        f"inflated body larger than {limit // 1024 // 1024} MiB"
                    )
                if out:
                    yield out
        chunk = body.read(CHUNK)
    if inflater is not None and not inflater.eof:
        raise MalformedSubmission("broken gzip body (truncated)")


def _parse_parts(
    chunks: Iterator[bytes], boundary: str, limits: Limits
) -> tuple[dict[str, str], list[FilePart]]:
    annotations: dict[str, str] = {}
    files: list[FilePart] = []
    spool = Spool(MEMORY_BUDGET)
    fields = _FieldSink.Total(min(ANNOTATION_BYTES, limits.max_annotations
                                  * limits.max_annotation_bytes))
    sink: _FieldSink | _FileSink | None = None
    try:
        parser = multipart.PushMultipartParser(
            boundary,
            max_segment_count=limits.max_annotations + limits.max_attachments + 1,
            max_header_size=8192,
        )
        for chunk in chunks:
            for event in parser.parse(chunk):
                if isinstance(event, multipart.MultipartSegment):
                    if event.filename is None:
                        if len(annotations) >= limits.max_annotations:
                            raise SubmissionTooLarge(
                                f"more than {limits.max_annotations} annotations"
                            )
                        sink = _FieldSink(event.name, limits.max_annotation_bytes, fields)
                    else:
                        if len(files) > limits.max_attachments:
                            raise SubmissionTooLarge(
                                f"more than {limits.max_attachments} attachments"
                            )
                        sink = _FileSink(event.name, event.filename, spool)
                elif event is None:
                    if isinstance(sink, _FileSink):
                        files.append(sink.finish())
                    elif sink is not None:
                        name, value = sink.finish()
                        annotations[name] = value
                    sink = None
                elif sink is not None:
                    sink.write(event)
        for _ in parser.parse(b""):
            pass
    except multipart.ParserLimitReached:
        _discard(files)
        raise SubmissionTooLarge("too many parts or headers too large") from None
    except multipart.ParserError as error:
        _discard(files)
        raise MalformedSubmission(f"malformed multipart body: {_one_line(error)}") from None
    except BaseException:
        _discard(files)
        raise
    finally:
        spool.close()
    return annotations, files


def _discard(files: list[FilePart]) -> None:
    for part in files:
        part.close()


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())[:200]


class _FieldSink:
    class Total:
        """The annotation bytes one request may still send."""

        def __init__(self, limit: int) -> None:
            self.limit = limit
            self.left = limit

    def __init__(self, name: str, limit: int, total: Total) -> None:
        self.name = name
        self.limit = limit
        self.total = total
        self.buffer = bytearray()

    def write(self, data: bytes) -> None:
        self.buffer += data
        self.total.left -= len(data)
        if len(self.buffer) > self.limit:
            raise SubmissionTooLarge(
                f"annotation larger than {self.limit // 1024} KiB"
            )
        if self.total.left < 0:
            raise SubmissionTooLarge(
                f"annotations larger than {self.total.limit // 1024} KiB together"
            )

    def finish(self) -> tuple[str, str]:
        value = self.buffer.decode("utf-8", errors="replace")
        stored = len(json.dumps({self.name: value}, ensure_ascii=False).encode())
        self.total.left -= stored - len(self.buffer)
        if self.total.left < 0:
            raise SubmissionTooLarge(
                f"annotations larger than {self.total.limit // 1024} KiB together, as stored"
            )
        return self.name, value


class _FileSink:
    def __init__(self, field: str, filename: str, spool: Spool) -> None:
        self.field = field
        self.filename = filename
        self.writer = spool.writer()

    def write(self, data: bytes) -> None:
        self.writer.write(data)

    def finish(self) -> FilePart:
        return FilePart(
            field=self.field,
            filename=self.filename,
            content=self.writer.finish(),
            size=self.writer.size,
            sha256=self.writer.digest.hexdigest(),
        )
