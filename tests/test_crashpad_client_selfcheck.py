"""Self-check of tests.testlib.crashpad_client against a local capture server.

A real Crashpad handler dumps a crashing C program and uploads it; the server
here records the raw request so the test can compare it with what Crashpad
kept in its database.
"""

from __future__ import annotations

import gzip as gziplib
import re
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.testlib import crashpad_client

REMOTE_ID = b"0123456789abcdef"


class _CaptureHandler(BaseHTTPRequestHandler):
    def do_POST(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            body = self._read_chunked()
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.captured.append(
            {"path": self.path, "headers": self.headers, "body": body}
        )
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(REMOTE_ID)))
        self.end_headers()
        self.wfile.write(REMOTE_ID)

    def _read_chunked(self) -> bytes:
        # http.server does not undo chunked transfer coding itself.
        body = bytearray()
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return bytes(body)
            body += self.rfile.read(size)
            self.rfile.readline()  # CRLF after the chunk data

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def crasher_build_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("crasher-build")


@pytest.fixture
def capture_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _CaptureHandler)
    server.daemon_threads = True
    server.captured = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _multipart_parts(body: bytes, content_type: str) -> dict[str, tuple[str | None, bytes]]:
    """name -> (filename, data) for a multipart/form-data body."""
    boundary = re.search(r'boundary="?([^";]+)"?', content_type).group(1).encode()
    sections = body.split(b"--" + boundary)
    assert sections[0] == b"" and sections[-1] == b"--\r\n"
    parts = {}
    for section in sections[1:-1]:
        assert section.startswith(b"\r\n") and section.endswith(b"\r\n")
        head, _, data = section[2:-2].partition(b"\r\n\r\n")
        disposition = head.decode()
        name = re.search(r'name="([^"]*)"', disposition).group(1)
        filename = re.search(r'filename="([^"]*)"', disposition)
        parts[name] = (filename.group(1) if filename else None, data)
    return parts


@pytest.mark.crashpad
@pytest.mark.parametrize("gzip", [True, False], ids=["gzip", "no-gzip"])
def test_crash_and_upload_roundtrip(tmp_path, crasher_build_dir, capture_server, gzip):
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed; cannot build the crasher")
    try:
        crashpad_client.check_handler_runs()
    except crashpad_client.CrashpadUnavailable as exc:
        # Not a skip: the message says what to install (libcurl).
        pytest.fail(f"Crashpad handler cannot run: {exc}", pytrace=False)

    att_txt = tmp_path / "att.txt"
    att_txt.write_bytes(b"hello attachment\nline2\n")
    zz_log = tmp_path / "zz.log"
    zz_log.write_bytes(bytes(range(256)) * 4)
    annotations = {"product": "selfcheck", "k2": "v2 with spaces"}
    host, port = capture_server.server_address

    report = crashpad_client.crash_and_upload(
        f"http://{host}:{port}/submit",
        tmp_path / "work",
        annotations,
        [att_txt, zz_log],
        gzip=gzip,
        timeout=60,
        build_dir=crasher_build_dir,
    )

    assert report.completed, report.handler_log
    assert report.remote_id == REMOTE_ID.decode()
    assert report.dump.startswith(b"MDMP")
    assert len(capture_server.captured) == 1
    request = capture_server.captured[0]
    headers = request["headers"]

    assert headers["Transfer-Encoding"].lower() == "chunked"
    assert headers["Content-Length"] is None
    assert parse_qs(urlsplit(request["path"]).query)["guid"] == [report.client_guid]
    body = request["body"]
    if gzip:
        assert headers["Content-Encoding"] == "gzip"
        body = gziplib.decompress(body)
    else:
        assert headers["Content-Encoding"] is None

    parts = _multipart_parts(body, headers["Content-Type"])
    assert parts["upload_file_minidump"] == (f"{report.uuid}.dmp", report.dump)
    assert parts["guid"] == (None, report.client_guid.encode())
    for key, value in annotations.items():
        assert parts[key] == (None, value.encode())
    for path in (att_txt, zz_log):
        assert parts[path.name] == (path.name, path.read_bytes())
    assert report.attachments == {
        "att.txt": att_txt.read_bytes(),
        "zz.log": zz_log.read_bytes(),
    }
