"""Breakpad symbol files in the bucket: the files, their indexes, the upload log, and the
index of reports processed without a module's symbols. Its key layout is defined here.

Key tree (P is REPORTS_PREFIX); docs/storage-layout.md explains the why::

    P/symbols/<file>/<debug_id>/<name>.sym       the .sym file as uploaded (the layout
                                                 `minidump-stackwalk --symbols-url` reads)
    P/symbols/<file>/<debug_id>/<name>.symindex  its index: a crash reads a few KB of it
    P/symbol-log/<inv>~<file>~<debug_id>~<os>~<cpu>~<uploader>~<size>~<sha>
                                                 empty: one per stored upload, newest first
    P/symbol-uploads/<upload key>                a sym-upload-v2 PUT waiting for :complete
    P/missing-symbols/<file>/<debug_id>/<inv>    empty: report <inv> was processed while
                                                 this module had no symbols

- <file> is the debug file, percent-encoded but for letters, digits and `._+-`;
  <name> is the debug file without a `.pdb` extension, as Breakpad names .sym files.
- <inv> is an inverted millisecond time (symbol-log) or report id (missing-symbols).
Symbols are not reports: pruning never counts or deletes them.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import re
import secrets
import urllib.parse
from collections.abc import Iterator
from typing import IO

from chalicelib.bucket import Bucket, NotFound, default_client
from chalicelib.config import Config
from chalicelib.keys import decode_key_part, encode_key_part, inverted

SYMBOLS = "symbols/"
SYMBOL_LOG = "symbol-log/"
UPLOADS = "symbol-uploads/"
MISSING = "missing-symbols/"
DEBUG_ID = re.compile(r"^[0-9A-F]{33,40}$")
_MAX = 2**64 - 1
_LOG_KEY = re.compile(
    r"^(?P<inv>[0-9a-f]{16})~(?P<file>[^~/]+)~(?P<id>[0-9A-F]+)~(?P<os>[^~/]*)~(?P<cpu>[^~/]*)"
    r"~(?P<uploader>[^~/]*)~(?P<size>\d+)~(?P<sha>[0-9a-f]{16})$"
)
_MISSING_KEY = re.compile(r"^(?P<file>[^/]+)/(?P<id>[0-9A-F]+)/(?P<inv>[0-9a-f]{16})$")
UPLOAD_KEY = re.compile(r"^[0-9a-f]{32}$")
# Every key part stays within SeaweedFS's 255 bytes: a debug file takes at most 100
# encoded characters (real ones are short: `libxul.so`, `firefox.pdb`).
MAX_FILE_PART = 100


class SymbolNotFound(KeyError):
    """No symbol file is stored for that module."""


def file_part(debug_file: str) -> str:
    return urllib.parse.quote(debug_file, safe="._+-")


def sym_name(debug_file: str) -> str:
    """`test_app.pdb` -> `test_app.sym`, `libc.so.6` -> `libc.so.6.sym`."""
    stem = debug_file[:-4] if debug_file.lower().endswith(".pdb") else debug_file
    return stem + ".sym"


def valid_module_id(debug_file: str, debug_id: str) -> bool:
    """A debug file and id safe to put in keys and URLs (as Breakpad's tools write them)."""
    return (
        0 < len(file_part(debug_file)) <= MAX_FILE_PART
        and "/" not in debug_file and "\\" not in debug_file
        and debug_file not in (".", "..") and debug_file.isprintable()
        and bool(DEBUG_ID.match(debug_id))
    )


@dataclasses.dataclass(frozen=True)
class SymbolUpload:
    """One stored symbol file, as the upload log lists it."""

    debug_file: str
    debug_id: str
    os: str
    cpu: str
    uploader: str
    size: int
    sha256: str
    uploaded_at: datetime.datetime


@dataclasses.dataclass(frozen=True)
class MissingSymbols:
    debug_file: str
    debug_id: str
    report_id: str
    key: str


class SymbolStore(Bucket):
    @classmethod
    def from_config(cls, cfg: Config) -> SymbolStore:
        return cls(default_client(cfg), cfg.bucket, cfg.prefix, cfg.storage_retry_seconds)

    def _module_key(self, debug_file: str, debug_id: str, suffix: str) -> str:
        name = sym_name(debug_file)[: -len(".sym")]
        return f"{self.prefix}{SYMBOLS}{file_part(debug_file)}/{debug_id}/{name}{suffix}"

    # -- storing -------------------------------------------------------------------

    def stored_sha256(self, debug_file: str, debug_id: str) -> str | None:
        """The sha256 of the stored .sym file for that module, or None."""
        try:
            head = self.retrying(
                self.deadline(), self.s3.head_object, Bucket=self.bucket,
                Key=self._module_key(debug_file, debug_id, ".sym"),
            )
        except NotFound:
            return None
        return head.get("Metadata", {}).get("sha256")

    def put_symbols(
        self, debug_file: str, debug_id: str, os_name: str, cpu: str, uploader: str,
        sym: IO[bytes], size: int, sha256: str, index: IO[bytes],
    ) -> bool:
        """Store a validated .sym file and its index; False when the same bytes are
        already stored (nothing written). The index goes first: a reader that finds the
        .sym finds its index."""
        if self.stored_sha256(debug_file, debug_id) == sha256:
            return False
        for suffix, body in ((".symindex", index), (".sym", sym)):
            key = self._module_key(debug_file, debug_id, suffix)
            self.retrying(self.deadline(), self._put_file, key, body, sha256)
        now = datetime.datetime.now(datetime.timezone.utc)
        stamp = f"{_MAX - int(now.timestamp() * 1000):016x}"
        log_name = "~".join((
            stamp, file_part(debug_file).replace("~", "%7E"), debug_id,
            encode_key_part(os_name, 16), encode_key_part(cpu, 16),
            encode_key_part(uploader, 32), str(size), sha256[:16],
        ))
        self.put_bytes(SYMBOL_LOG + log_name, b"", "application/octet-stream")
        return True

    def _put_file(self, key: str, body: IO[bytes], sha256: str) -> None:
        """One PUT of a whole file, from its start: a retry must not resume mid-file."""
        body.seek(0, 2)
        size = body.tell()
        body.seek(0)
        self.s3.put_object(
            Bucket=self.bucket, Key=key, Body=_Unclosable(body), ContentLength=size,
            ContentType="application/octet-stream", Metadata={"sha256": sha256},
        )

    def upload_url(self, seconds: int = 900) -> tuple[str, str]:
        """(upload key, presigned PUT URL) for a sym-upload-v2 client's file."""
        upload_key = secrets.token_hex(16)
        url = self.s3.generate_presigned_url(
            "put_object",
            Params={"Bucket": self.bucket, "Key": self.prefix + UPLOADS + upload_key},
            ExpiresIn=seconds,
        )
        return upload_key, url

    def open_upload(self, upload_key: str) -> tuple[IO[bytes], int]:
        """The body and size of a staged sym-upload-v2 file; SymbolNotFound if absent."""
        try:
            answer = self.get_object(self.prefix + UPLOADS + upload_key)
        except NotFound:
            raise SymbolNotFound(upload_key) from None
        return answer["Body"], int(answer.get("ContentLength", 0))

    def delete_upload(self, upload_key: str) -> None:
        self.delete_keys([self.prefix + UPLOADS + upload_key])

    def mark_missing(self, report_id: str, modules: Iterator[tuple[str, str]]) -> int:
        """Note that a report was processed without these (debug_file, debug_id) symbols."""
        count = 0
        for debug_file, debug_id in modules:
            if valid_module_id(debug_file, debug_id):
                key = f"{MISSING}{file_part(debug_file)}/{debug_id}/{inverted(report_id)}"
                self.put_bytes(key, b"", "application/octet-stream")
                count += 1
        return count

    def module_keys(self, debug_file: str, debug_id: str) -> list[str]:
        """Every key of one module's symbols: its files, and its lines in the upload log."""
        folder = f"{self.prefix}{SYMBOLS}{file_part(debug_file)}/{debug_id}/"
        keys = [item["Key"] for item in self.list_items(folder)]
        log = self.prefix + SYMBOL_LOG
        for item in self.list_items(log):
            match = _LOG_KEY.match(item["Key"][len(log):])
            if match and (urllib.parse.unquote(match["file"]), match["id"]) == (
                    debug_file, debug_id):
                keys.append(item["Key"])
        return keys

    def delete_module(self, debug_file: str, debug_id: str) -> int:
        """Delete one module's symbol file, index and upload-log lines; how many keys."""
        return self.delete_keys(self.module_keys(debug_file, debug_id))

    def missing_reports(self, debug_file: str, debug_id: str) -> list[str]:
        """Reports processed without this module's symbols, newest first. Their notes
        stay until each is processed again with the symbols (clear_missing)."""
        return [entry.report_id for entry in self.iter_missing(debug_file, debug_id)]

    def clear_missing(self, report_id: str, modules: list[tuple[str, str]]) -> None:
        """Drop a report's notes for modules it was just processed with symbols for."""
        keys = [
            f"{self.prefix}{MISSING}{file_part(debug_file)}/{debug_id}/{inverted(report_id)}"
            for debug_file, debug_id in modules if valid_module_id(debug_file, debug_id)
        ]
        if keys:
            self.delete_keys(keys)

    # -- reading -------------------------------------------------------------------

    def open_sym(self, debug_file: str, debug_id: str) -> tuple[IO[bytes], int]:
        try:
            answer = self.get_object(self._module_key(debug_file, debug_id, ".sym"))
        except NotFound:
            raise SymbolNotFound(f"{debug_file}/{debug_id}") from None
        return answer["Body"], int(answer.get("ContentLength", 0))

    def sym_url(self, debug_file: str, debug_id: str, seconds: int = 300) -> str:
        return self.s3.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": self._module_key(debug_file, debug_id, ".sym")},
            ExpiresIn=seconds,
        )

    def index_reader(self, debug_file: str, debug_id: str) -> S3RangeReader:
        return S3RangeReader(self, self._module_key(debug_file, debug_id, ".symindex"))

    def iter_uploads(self, older_than: str | None = None) -> Iterator[SymbolUpload]:
        """Stored symbol files, newest upload first."""
        folder = self.prefix + SYMBOL_LOG
        start = folder + older_than if older_than else None
        for item in self.list_items(folder, start):
            match = _LOG_KEY.match(item["Key"][len(folder):])
            if match is None:
                continue
            millis = _MAX - int(match["inv"], 16)
            yield SymbolUpload(
                debug_file=urllib.parse.unquote(match["file"]),
                debug_id=match["id"],
                os=decode_key_part(match["os"])[0],
                cpu=decode_key_part(match["cpu"])[0],
                uploader=decode_key_part(match["uploader"])[0],
                size=int(match["size"]),
                sha256=match["sha"],
                uploaded_at=datetime.datetime.fromtimestamp(
                    millis / 1000, datetime.timezone.utc),
            )

    def module_of_key(self, key: str) -> tuple[str, str] | None:
        """(debug_file, debug_id) of a stored .sym file's key (from a bucket event)."""
        folder = self.prefix + SYMBOLS
        return module_of(key[len(folder):]) if key.startswith(folder) else None

    def iter_missing(self, debug_file: str, debug_id: str) -> Iterator[MissingSymbols]:
        """Reports processed while this module had no symbols, newest first."""
        folder = f"{self.prefix}{MISSING}{file_part(debug_file)}/{debug_id}/"
        for item in self.list_items(folder):
            entry = parse_missing_key(item["Key"][len(self.prefix) + len(MISSING):], item["Key"])
            if entry is not None:
                yield entry


def uploads_from(millis: int) -> str:
    """iter_uploads' `older_than` that starts the listing at the uploads made at `millis`
    (ms since the epoch), those included: a cursor that survives uploads sharing a
    millisecond."""
    return f"{_MAX - min(max(millis, 0), _MAX):016x}"


def module_of(name: str) -> tuple[str, str] | None:
    """(debug_file, debug_id) of `<file>/<debug_id>/<name>.sym` (a symbols/ key's rest)."""
    parts = name.split("/")
    if len(parts) != 3 or not parts[2].endswith(".sym"):
        return None
    debug_file = urllib.parse.unquote(parts[0])
    if not valid_module_id(debug_file, parts[1]) or parts[2] != sym_name(debug_file):
        return None
    return debug_file, parts[1]


def parse_missing_key(name: str, key: str = "") -> MissingSymbols | None:
    match = _MISSING_KEY.match(name)
    if match is None:
        return None
    return MissingSymbols(
        debug_file=urllib.parse.unquote(match["file"]),
        debug_id=match["id"],
        report_id=f"{_MAX - int(match['inv'], 16):016x}",
        key=key,
    )


class S3RangeReader:
    """A stored index as the symbol engine's RangeReader: S3 range GETs of aligned
    blocks, each kept for the life of the reader (one crash).

    2 KiB blocks: a 30-frame crash in a 500 MB .sym reads about 0.9 MB in about 290
    GETs, where 4 KiB blocks read 1.4 MB in 265 (bench/README.md, Symbols)."""

    BLOCK = 2048

    def __init__(self, store: SymbolStore, key: str) -> None:
        self.store, self.key = store, key
        self.blocks: dict[int, bytes] = {}
        self.reads = 0
        self.bytes_read = 0

    def read(self, offset: int, size: int) -> bytes:
        if size <= 0:
            return b""
        first, last = offset // self.BLOCK, (offset + size - 1) // self.BLOCK
        missing = [n for n in range(first, last + 1) if n not in self.blocks]
        if missing:
            start, end = missing[0] * self.BLOCK, (missing[-1] + 1) * self.BLOCK - 1
            body = self._get(start, end)
            for n in range(missing[0], missing[-1] + 1):
                self.blocks[n] = body[(n - missing[0]) * self.BLOCK:][: self.BLOCK]
        data = b"".join(self.blocks[n] for n in range(first, last + 1))
        skip = offset - first * self.BLOCK
        return data[skip: skip + size]

    def _get(self, start: int, end: int) -> bytes:
        try:
            answer = self.store.get_object(self.key, Range=f"bytes={start}-{end}")
        except NotFound:
            raise SymbolNotFound(self.key) from None
        body = answer["Body"].read()
        self.reads += 1
        self.bytes_read += len(body)
        return body


class _Unclosable:
    """A file botocore may read but not close, so a retried PUT can read it again."""

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file

    def read(self, size: int = -1) -> bytes:
        return self._file.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def close(self) -> None:
        pass


def sha256_of(stream: IO[bytes]) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    stream.seek(0)
    while chunk := stream.read(1 << 20):
        digest.update(chunk)
        size += len(chunk)
    stream.seek(0)
    return digest.hexdigest(), size

