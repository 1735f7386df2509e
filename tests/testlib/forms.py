"""Build upload bodies exactly as Crashpad sends them (README: "What Crashpad sends")."""

from __future__ import annotations

import gzip as gzip_module
import random
import string
import uuid
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "minidumps"


def fixture_dump(name: str = "linux-x86_64-breakpad-sigsegv.dmp") -> bytes:
    return (FIXTURES / name).read_bytes()


def fake_dump(size: int, seed: int = 0) -> bytes:
    """A minidump-signed blob of `size` bytes (content random, seeded)."""
    rng = random.Random(seed)
    return b"MDMP\x93\xa7\x00\x00" + rng.randbytes(max(0, size - 8))


def crashpad_form(
    annotations: dict[str, str] | None = None,
    dump: bytes | None = None,
    attachments: dict[str, bytes] | None = None,
    gzip: bool = True,
    report_uuid: str | None = None,
    guid: str | None = None,
    dump_content_type: str | None = None,
    boundary: str | None = None,
) -> tuple[bytes, dict[str, str], dict[str, str]]:
    """(body, headers, query) of a Crashpad upload: fields sorted, then files sorted."""
    guid = guid or str(uuid.uuid4())
    report_uuid = report_uuid or str(uuid.uuid4())
    fields = dict(annotations or {})
    fields["guid"] = guid
    boundary = boundary or (
        "---MultipartBoundary-"
        + "".join(random.choices(string.ascii_letters + string.digits, k=32))
        + "---"
    )
    files = {name: (name, data, None) for name, data in (attachments or {}).items()}
    files["upload_file_minidump"] = (
        f"{report_uuid}.dmp",
        dump if dump is not None else fixture_dump(),
        dump_content_type,
    )
    out = bytearray()
    for name in sorted(fields):
        out += f"--{boundary}\r\n".encode()
        out += f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        out += fields[name].encode() + b"\r\n"
    for name in sorted(files):
        filename, data, content_type = files[name]
        out += f"--{boundary}\r\n".encode()
        out += f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'.encode()
        if content_type:
            out += f"Content-Type: {content_type}\r\n".encode()
        out += b"\r\n" + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    body = bytes(out)
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}",
               "User-Agent": "Crashpad/0.8.0 test"}
    if gzip:
        body = gzip_module.compress(body, mtime=0)
        headers["Content-Encoding"] = "gzip"
    query = {"guid": guid}
    for key, name in (("prod", "product"), ("ver", "version")):
        if key in fields:
            query[name] = fields[key]
    return body, headers, query


def chunked(body: bytes, size: int = 65524):
    """Iterate the body in libcurl-sized chunks, so `requests` sends it chunked."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


def stored_submission(dump: bytes, **annotations: str):
    """A parsed Crashpad upload of `dump`, ready for ReportStore.put (a context manager)."""
    import io

    from chalicelib.submission import Limits, parse_submission

    body, headers, query = crashpad_form(
        {"platform": "linux", "prod": "Jami", "ver": "1.0", **annotations}, dump=dump
    )
    return parse_submission(
        io.BytesIO(body), {k.lower(): v for k, v in headers.items()}, query,
        Limits(64 * 1024 * 1024, 512, 65536),
    )
