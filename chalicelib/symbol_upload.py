"""Symbol uploads: check a Breakpad `.sym` file, index it once, store both.

Three ways in, all ending in `accept_sym`: Breakpad `symupload` v1 (a multipart form
with the file in `symbol_file` and its module fields beside it), sym-upload-v2 (the
file PUT to a presigned S3 URL, then `:complete`), and a zip of
`<debug_file>/<debug_id>/<name>.sym` files. The server reads the MODULE line itself and
refuses a file whose declared fields disagree with it, a malformed file, or one over
the size limit; nothing is stored for a refused file. docs/symbols.md has the
protocols.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import tempfile
import threading
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from typing import IO, BinaryIO

from chalicelib import submission
from chalicelib.symbol_store import (
    UPLOAD_KEY,
    SymbolNotFound,
    SymbolStore,
    sha256_of,
    sym_name,
    valid_module_id,
)
from chalicelib.symfile import index as symindex
from chalicelib.symfile import records

COPY_CHUNK = 1 << 20
MAX_ZIP_FILES = 10_000
# Uploads checked and indexed at once by one server process. They share the public
# port's threads with /submit: a burst of large uploads must not take them all.
UPLOADS_AT_ONCE = 2
_upload_slots = threading.BoundedSemaphore(UPLOADS_AT_ONCE)


class SymbolRejected(Exception):
    """The upload is not a usable symbol file (400)."""


class SymbolTooLarge(Exception):
    """The symbol file is over MAX_SYMBOL_MB (413)."""


class UploadsBusy(Exception):
    """UPLOADS_AT_ONCE uploads are being indexed already (503: try again)."""


@contextlib.contextmanager
def upload_slot() -> Iterator[None]:
    """Hold one of the process's upload slots for the body, or raise UploadsBusy."""
    if not _upload_slots.acquire(blocking=False):
        raise UploadsBusy(
            f"{UPLOADS_AT_ONCE} symbol uploads are being indexed: try again shortly"
        )
    try:
        yield
    finally:
        _upload_slots.release()


@dataclasses.dataclass(frozen=True)
class Accepted:
    debug_file: str
    debug_id: str
    os: str
    cpu: str
    size: int
    stored: bool  # False: the same bytes were already stored

    def as_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def spool(stream: IO[bytes], limit: int, name: str = "symbol file") -> IO[bytes]:
    """Copy a stream to a temporary file, refusing it past `limit` bytes (counted as
    read: a zip member's declared size may lie)."""
    copy = tempfile.TemporaryFile()
    size = 0
    try:
        while chunk := stream.read(COPY_CHUNK):
            size += len(chunk)
            if size > limit:
                raise SymbolTooLarge(f"{name} larger than {limit // (1024 * 1024)} MiB")
            copy.write(chunk)
    except BaseException:
        copy.close()
        raise
    copy.seek(0)
    return copy


@dataclasses.dataclass
class Prepared:
    """A checked .sym file with its index built, ready to store (close() when done)."""

    module: records.ModuleLine
    sym: IO[bytes]
    size: int
    sha256: str
    index: IO[bytes]

    def close(self) -> None:
        self.index.close()


def prepare_sym(sym: IO[bytes], declared: Mapping[str, str] | None = None,
                name: str = "") -> Prepared:
    """Validate and index one `.sym` file (seekable). `declared` holds what the client
    said about it (os, cpu, debug_file, debug_id); each given must agree. `name` prefixes
    the reasons (a zip member's path). Raises SymbolRejected."""
    where = f"{name}: " if name else ""
    sym.seek(0)
    try:
        module = records.validate(sym)
    except records.SymFileError as error:
        raise SymbolRejected(f"{where}malformed symbol file: {error}") from None
    if not valid_module_id(module.debug_file, module.debug_id):
        raise SymbolRejected(
            f"{where}MODULE line has an unusable debug file or id: "
            f"{module.debug_file!r} {module.debug_id!r}"
        )
    for field, actual in (("os", module.os), ("cpu", module.cpu),
                          ("debug_file", module.debug_file), ("debug_id", module.debug_id)):
        given = (declared or {}).get(field)
        if given and given != actual:
            raise SymbolRejected(
                f"{where}{field} {given!r} disagrees with the file's MODULE line ({actual!r})"
            )
    sha256, size = sha256_of(sym)
    index = tempfile.TemporaryFile()
    sym.seek(0)
    try:
        symindex.build_index(sym, index, strict=True)
    except (records.SymFileError, symindex.IndexBuildError) as error:
        index.close()
        raise SymbolRejected(f"{where}symbol file cannot be indexed: {error}") from None
    except BaseException:
        index.close()
        raise
    return Prepared(module, sym, size, sha256, index)


def store_prepared(store: SymbolStore, prepared: Prepared, uploader: str) -> Accepted:
    module = prepared.module
    stored = store.put_symbols(
        module.debug_file, module.debug_id, module.os, module.cpu, uploader,
        prepared.sym, prepared.size, prepared.sha256, prepared.index,
    )
    return Accepted(module.debug_file, module.debug_id, module.os, module.cpu,
                    prepared.size, stored)


def accept_sym(
    store: SymbolStore, sym: IO[bytes], uploader: str,
    declared: Mapping[str, str] | None = None,
) -> Accepted:
    """Validate, index and store one `.sym` file (a seekable file)."""
    prepared = prepare_sym(sym, declared)
    try:
        return store_prepared(store, prepared, uploader)
    finally:
        prepared.close()


def declared_v1(fields: Mapping[str, str]) -> dict[str, str]:
    """What symupload v1's form says about its file (debug_identifier is the id)."""
    return {
        "os": fields.get("os", ""), "cpu": fields.get("cpu", ""),
        "debug_file": fields.get("debug_file", ""),
        "debug_id": fields.get("debug_identifier", "").replace("-", "").upper(),
    }


def accept_zip(store: SymbolStore, archive: IO[bytes], uploader: str,
               limit: int) -> list[Accepted]:
    """Every `<debug_file>/<debug_id>/<name>.sym` in a zip; all are checked before any
    is stored, so a bad member leaves the bucket unchanged."""
    try:
        members = zipfile.ZipFile(archive)
    except zipfile.BadZipFile:
        raise SymbolRejected("not a zip file") from None
    with members:
        entries = [info for info in members.infolist() if not info.is_dir()]
        if not entries:
            raise SymbolRejected("the zip holds no files")
        if len(entries) > MAX_ZIP_FILES:
            raise SymbolTooLarge(f"more than {MAX_ZIP_FILES} files in one zip")
        for info in entries:
            _check_member(info, limit)
        files: list[IO[bytes]] = []
        prepared: list[Prepared] = []
        try:
            # Every member is checked and indexed before any is stored.
            for info, sym in _extract(members, entries, limit):
                files.append(sym)
                debug_file, debug_id, _ = info.filename.split("/")
                prepared.append(prepare_sym(sym, name=info.filename))
                module = prepared[-1].module
                if (module.debug_file, module.debug_id) != (debug_file, debug_id):
                    raise SymbolRejected(
                        f"{info.filename}: its MODULE line names "
                        f"{module.debug_file}/{module.debug_id}"
                    )
            return [store_prepared(store, item, uploader) for item in prepared]
        finally:
            for item in prepared:
                item.close()
            for sym in files:
                sym.close()


def _check_member(info: zipfile.ZipInfo, limit: int) -> None:
    parts = info.filename.split("/")
    if len(parts) != 3 or not parts[2].endswith(".sym"):
        raise SymbolRejected(
            f"{info.filename}: expected <debug_file>/<debug_id>/<name>.sym"
        )
    if not valid_module_id(parts[0], parts[1]) or parts[2] != sym_name(parts[0]):
        raise SymbolRejected(f"{info.filename}: not a symbol file path")
    if info.file_size > limit:
        raise SymbolTooLarge(f"{info.filename}: larger than {limit // (1024 * 1024)} MiB")


def _extract(
    members: zipfile.ZipFile, entries: list[zipfile.ZipInfo], limit: int
) -> Iterator[tuple[zipfile.ZipInfo, IO[bytes]]]:
    for info in entries:
        try:
            with members.open(info) as member:
                copy = spool(member, limit, info.filename)
        except (zipfile.BadZipFile, zlib.error, RuntimeError, NotImplementedError,
                EOFError) as error:
            raise SymbolRejected(f"{info.filename}: unreadable zip member ({error})") from None
        yield info, copy


# -- the three protocols ---------------------------------------------------------------

V1_FILE_FIELD = "symbol_file"
_COMPLETE_FIELD = re.compile(r'(debug_file|debug_id|symbol_upload_type)\s*:\s*"([^"]*)"')


def accept_upload(
    store: SymbolStore, body: BinaryIO, headers: Mapping[str, str], uploader: str, limit: int
) -> list[Accepted]:
    """A `POST /symbols/upload`: a zip body, or symupload v1's form (its `symbol_file`,
    or a `.zip` file part)."""
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in ("application/zip", "application/x-zip-compressed"):
        with spool(body, limit) as archive:
            return accept_zip(store, archive, uploader, limit)
    fields, files = submission.parse_form(
        body, headers, submission.Limits(limit + (1 << 20), 64, 4096)
    )
    try:
        for part in files:
            if part.filename.lower().endswith(".zip"):
                return accept_zip(store, part.content, uploader, limit)
        sym = next((part for part in files if part.field == V1_FILE_FIELD), None)
        if sym is None:
            raise SymbolRejected(f"no {V1_FILE_FIELD} file part (or .zip file)")
        if sym.size > limit:
            raise SymbolTooLarge(f"symbol file larger than {limit // (1024 * 1024)} MiB")
        return [accept_sym(store, sym.content, uploader, declared_v1(fields))]
    finally:
        for part in files:
            part.close()


def complete_v2(
    store: SymbolStore, upload_key: str, body: bytes, uploader: str, limit: int
) -> Accepted:
    """sym-upload-v2's `:complete`: check and store the file the client PUT. Its body
    (`{ symbol_id: {debug_file: "...", debug_id: "..." }, ... }`, not JSON) names the
    module, which must agree with the file."""
    if not UPLOAD_KEY.match(upload_key):
        raise SymbolNotFound(upload_key)
    declared = dict(_COMPLETE_FIELD.findall(body.decode("utf-8", "replace")))
    kind = declared.pop("symbol_upload_type", "BREAKPAD")
    if kind != "BREAKPAD":
        raise SymbolRejected(f"only BREAKPAD symbol files are taken, not {kind}")
    staged, size = store.open_upload(upload_key)
    try:
        if size > limit:
            raise SymbolTooLarge(f"symbol file larger than {limit // (1024 * 1024)} MiB")
        with spool(staged, limit) as sym:
            accepted = accept_sym(store, sym, uploader, declared)
    finally:
        staged.close()
        store.delete_upload(upload_key)
    return accepted
