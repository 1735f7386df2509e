"""Replays of the requests other crash uploaders send, byte for byte over a raw socket, to
the real local server: each is answered 200 with a 16-hex id, and stored byte-exact.

- Crashpad's socket transport: an HTTP/1.0 request line, no Host header, a chunked
  body (32 KiB chunks, sizes in hex without leading zeros), gzip; it takes only a
  `HTTP/1.x 200 ` status line with a Content-Length.
- The Breakpad (and older Electron) form: HTTP/1.1 with Content-Length, no gzip, no
  query string, `Content-Type: application/octet-stream` on the dump part.
"""

from __future__ import annotations

import hashlib
import re
import socket

import pytest

from tests.conftest import Backend
from tests.testlib import forms

CRASHPAD_CHUNK = 32 * 1024


def exchange(port: int, request: bytes) -> tuple[str, dict[str, str], bytes]:
    """Send the request, read until the server closes; (status line, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(request)
        received = bytearray()
        while data := sock.recv(65536):
            received += data
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    for line in lines:  # the socket transport splits at the first ':' and drops one space
        assert re.fullmatch(r"[A-Za-z0-9-]+: \S.*", line), line
    headers = dict(line.split(": ", 1) for line in lines)
    return status, headers, body


def chunked_like_crashpad(body: bytes) -> bytes:
    out = bytearray()
    for start in range(0, len(body), CRASHPAD_CHUNK):
        chunk = body[start : start + CRASHPAD_CHUNK]
        out += b"%x\r\n" % len(chunk) + chunk + b"\r\n"
    return bytes(out + b"0\r\n\r\n")


def stored(backend: Backend, report_id: str) -> tuple[dict, bytes, list[bytes]]:
    """The committed report's metadata, dump and attachments, read from the bucket."""
    store = backend.store()
    report = store.get(report_id)
    with store.open_dump(report) as dump:
        dump_bytes = dump.read()
    attachments = []
    for index in range(len(report.attachments)):
        with store.open_attachment(report, index) as content:
            attachments.append(content.read())
    return report.meta, dump_bytes, attachments


def assert_answered_with_an_id(status: str, headers: dict[str, str], body: bytes) -> str:
    assert status.startswith(("HTTP/1.0 200 ", "HTTP/1.1 200 ")), status
    assert headers["Content-Length"] == str(len(body)) == "16"
    assert re.fullmatch(rb"[0-9a-f]{16}", body)
    return body.decode()


@pytest.mark.seaweedfs
@pytest.mark.parametrize("dump_size", [40_000, 1_500_000])  # inline, and streamed to the app
def test_crashpad_socket_transport_http10_chunked_without_host(
    live_servers, seaweed_backend, dump_size
) -> None:
    servers = live_servers(seaweed_backend)
    dump = forms.fake_dump(dump_size, seed=dump_size)
    body, headers, query = forms.crashpad_form(
        {"platform": "linux", "prod": "Jami", "ver": "1.0"}, dump=dump,
        attachments={"app.log": b"last words\n"}, gzip=True,
        report_uuid="0b5a3d1e-64a7-4fbb-9e55-3c0c1a2b3c4d",
    )
    request = (
        f"POST /submit?prod=Jami&ver=1.0&guid={query['guid']} HTTP/1.0\r\n"
        f"Content-Type: {headers['Content-Type']}\r\n"
        "Content-Encoding: gzip\r\n"
        "User-Agent: Crashpad/0.8.0\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode() + chunked_like_crashpad(body)
    assert b"Host:" not in request
    report_id = assert_answered_with_an_id(*exchange(servers.cfg.submit_port, request))
    meta, stored_dump, attachments = stored(seaweed_backend, report_id)
    assert stored_dump == dump
    assert meta["dump"]["sha256"] == hashlib.sha256(dump).hexdigest()
    assert attachments == [b"last words\n"]
    assert meta["annotations"]["prod"] == "Jami"
    assert meta["crashpad_uuid"] == "0b5a3d1e-64a7-4fbb-9e55-3c0c1a2b3c4d"


@pytest.mark.seaweedfs
def test_breakpad_legacy_form_with_content_length_and_a_typed_dump_part(
    live_servers, seaweed_backend
) -> None:
    servers = live_servers(seaweed_backend)
    dump = forms.fixture_dump()
    boundary = "---------------------------7d93b91b2b0a8"
    fields = {"prod": "Jami", "ver": "1.0.3", "platform": "win32",
              "_productName": "Jami", "process_type": "browser", "guid": "{not-a-uuid}"}
    form = bytearray()
    for name, value in fields.items():
        form += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n"
                 f"{value}\r\n").encode()
    form += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"upload_file_minidump\"; "
             "filename=\"crash-2026-11-26.dmp\"\r\n"
             "Content-Type: application/octet-stream\r\n\r\n").encode()
    form += dump + f"\r\n--{boundary}--\r\n".encode()
    request = (
        "POST /submit HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{servers.cfg.submit_port}\r\n"
        "User-Agent: Breakpad/1.0 (Windows)\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(form)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + bytes(form)
    report_id = assert_answered_with_an_id(*exchange(servers.cfg.submit_port, request))
    meta, stored_dump, attachments = stored(seaweed_backend, report_id)
    assert stored_dump == dump and attachments == []
    assert meta["dump"]["sha256"] == hashlib.sha256(dump).hexdigest()
    assert {k: meta["annotations"][k] for k in fields} == fields
    assert "crashpad_uuid" not in meta  # the file name is no report uuid


def socket_transport_request(body: bytes, content_type: str, transfer_encoding: str,
                             extra: str = "") -> bytes:
    return (
        "POST /submit HTTP/1.0\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Transfer-Encoding: {transfer_encoding}\r\n{extra}\r\n"
    ).encode() + body


@pytest.mark.seaweedfs
def test_http10_transfer_encodings_are_framed_as_http11_frames_them(
    live_servers, seaweed_backend
) -> None:
    """Only chunked codings are taken, the last one chunked, and chunked wins over a
    Content-Length: never a body read two ways (what request smuggling feeds on)."""
    servers = live_servers(seaweed_backend)
    dump = forms.fake_dump(20_000, seed=3)
    body, headers, _ = forms.crashpad_form({"platform": "linux"}, dump=dump, gzip=False)
    chunked = chunked_like_crashpad(body)
    port = servers.cfg.submit_port
    for coding, extra in (("chunked", ""), ("Chunked", ""), ("chunked, chunked", ""),
                          ("chunked", "Content-Length: 3\r\n")):
        request = socket_transport_request(chunked, headers["Content-Type"], coding, extra)
        report_id = assert_answered_with_an_id(*exchange(port, request))
        assert stored(seaweed_backend, report_id)[1] == dump
    # Answered once the head is read (so no body is sent: none is left unread to reset).
    status, _, _ = exchange(port, socket_transport_request(
        b"", headers["Content-Type"], "gzip, chunked"))
    assert status.startswith("HTTP/1.0 501 ")


@pytest.mark.parametrize("framing", ["size line", "trailer"])
def test_an_endless_chunk_size_line_or_trailer_is_refused_early(live_servers, moto_backend,
                                                                framing) -> None:
    servers = live_servers(moto_backend)
    head = socket_transport_request(b"", "multipart/form-data; boundary=x", "chunked")
    opening = b"5\r\nhello\r\n0\r\nX-Trailer: " if framing == "trailer" else b""
    with socket.create_connection(("127.0.0.1", servers.cfg.submit_port), timeout=30) as sock:
        sock.sendall(head + opening)
        sent = 0
        try:
            while sent < 16 * 1024 * 1024:
                sock.sendall(b"a" * 65536)
                sent += 65536
        except (ConnectionResetError, BrokenPipeError):
            pass
        answer = sock.recv(200)
    assert answer.startswith(b"HTTP/1.0 400 ")
    assert sent < 4 * 1024 * 1024  # refused long before the body limit
