"""The Breakpad tools the symbol tests use: the optimised crasher and its .sym file,
symupload built from source, and the requests symupload really sends (the facts
docs/symupload-protocol.md states, checked against a recording server)."""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.testlib import breakpad, crashpad_client, symcrasher


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, breakpad.SymbolFile]:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed: cannot build the crasher")
    root = tmp_path_factory.mktemp("symcrasher")
    return symcrasher.build_with_symbols(root / "build", root / "symbols")


def build_id(binary: Path) -> str:
    notes = subprocess.run(["readelf", "-n", str(binary)], capture_output=True, text=True,
                           check=True).stdout
    return re.search(r"Build ID: ([0-9a-f]+)", notes).group(1)


def test_module_line_names_the_crasher_for_linux_x86_64(built) -> None:
    exe, symbols = built
    assert exe.name == "symcrasher"
    assert (symbols.os, symbols.cpu, symbols.name) == ("Linux", "x86_64", "symcrasher")
    first_line = symbols.path.read_text().splitlines()[0]
    assert first_line == f"MODULE Linux x86_64 {symbols.debug_id} symcrasher"
    # The debug id is the build id's first 16 bytes as a GUID (first three fields
    # byte-swapped), then age 0; the code id is the whole build id.
    note = build_id(exe)
    assert symbols.code_id == note.upper()
    guid = (bytes.fromhex(note[:8])[::-1] + bytes.fromhex(note[8:12])[::-1]
            + bytes.fromhex(note[12:16])[::-1] + bytes.fromhex(note[16:32]))
    assert symbols.debug_id == guid.hex().upper() + "0"
    assert symbols.path == exe.parents[2] / "symbols" / "symcrasher" / symbols.debug_id / (
        "symcrasher.sym")


def test_every_function_of_the_chain_has_a_func_record_and_cfi(built) -> None:
    exe, symbols = built
    text = symbols.path.read_text()
    funcs = {m.group(3): (int(m.group(1), 16), int(m.group(2), 16))
             for m in re.finditer(r"^FUNC (?:m )?([0-9a-f]+) ([0-9a-f]+) [0-9a-f]+ (\S+)$",
                                  text, re.M)}
    cfi: dict[int, list[str]] = {}  # INIT address -> the rules of that range
    for line in text.splitlines():
        if line.startswith("STACK CFI INIT "):
            rules = cfi.setdefault(int(line.split()[3], 16), [])
        if line.startswith("STACK CFI "):
            rules.append(line)
    for name in symcrasher.CHAIN:
        address, size = funcs[name]
        assert size > 0
        assert cfi[address][0].endswith(".cfa: $rsp 8 + .ra: .cfa -8 + ^"), name
    # Each caller in the chain saves rbx, so its CFI says where to find it.
    for name in ("load_section", "parse_config", "main"):
        assert any("$rbx: .cfa -" in rule for rule in cfi[funcs[name][0]]), name
    # Addresses match the binary's own symbol table.
    table = subprocess.run(["nm", str(exe)], capture_output=True, text=True, check=True).stdout
    for name in symcrasher.CHAIN:
        assert re.search(rf"^0*{funcs[name][0]:x} T {name}$", table, re.M), name


def test_no_call_in_the_chain_became_a_tail_jump(built) -> None:
    exe, _ = built
    listing = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(exe)],
                             capture_output=True, text=True, check=True).stdout
    for caller, callee in zip(symcrasher.CHAIN[1:], symcrasher.CHAIN, strict=False):
        body = listing.split(f"<{caller}>:\n", 1)[1].split("\n\n", 1)[0]
        assert re.search(rf"\bcall\s+[0-9a-f]+ <{callee}>", body), (caller, callee)


def test_symupload_builds_and_prints_its_usage() -> None:
    binary = breakpad.symupload_binary()
    assert binary.parent == breakpad.REPO_ROOT / "node_modules" / ".cache" / "breakpad-tools"
    assert breakpad.symupload_binary() == binary  # cached, not rebuilt
    usage = subprocess.run([str(binary), "-h"], capture_output=True, text=True, timeout=30)
    assert usage.returncode == 0
    assert "Usage: sym_upload-" in usage.stderr.splitlines()[1]
    assert "[options...] <symbol-file> <upload-URL>" in usage.stderr
    assert "-p:\t <protocol> One of ['sym-upload-v1', 'sym-upload-v2']" in usage.stderr
    bare = subprocess.run([str(binary)], capture_output=True, text=True, timeout=30)
    assert bare.returncode == 1
    assert bare.stderr.startswith(f"{binary}: Missing symbols file and/or upload-URL\n")


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Recorder(ThreadingHTTPServer):
    """Records every request; answers by the first `replies` key found in the path."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _RecordingHandler)
        self.requests: list[Request] = []
        self.replies: dict[str, tuple[int, bytes]] = {}

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"


class _RecordingHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Recorder

    def _any(self) -> None:
        if self.headers.get("Transfer-Encoding") == "chunked":
            body = b""
            while size := int(self.rfile.readline().split(b";")[0], 16):
                body += self.rfile.read(size)
                self.rfile.readline()
            self.rfile.readline()
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.requests.append(Request(self.command, self.path, dict(self.headers), body))
        status, reply = next((answer for key, answer in self.server.replies.items()
                              if key in self.path), (200, b""))
        self.send_response(status)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_GET = do_POST = do_PUT = _any

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def symupload(*arguments: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(breakpad.symupload_binary()), *map(str, arguments)],
                          capture_output=True, text=True, timeout=60)


def test_v1_posts_one_multipart_form_without_a_key(built, recorder: Recorder) -> None:
    _, symbols = built
    done = symupload("-v", "1.2.3", "-k", "ignored", symbols.path, recorder.base + "/up?t=1")
    assert (done.returncode, done.stdout) == (0, "Successfully sent the symbol file.\n")
    [request] = recorder.requests
    assert (request.method, request.path) == ("POST", "/up?t=1")
    assert request.headers["User-Agent"] == "Breakpad/1.0 (Linux)"
    boundary = re.fullmatch(r"multipart/form-data; boundary=(\S+)",
                            request.headers["Content-Type"]).group(1).encode()
    parts = request.body.split(b"--" + boundary)
    assert parts[0] == b"" and parts[-1] == b"--\r\n"
    fields = [part.removeprefix(b"\r\n").removesuffix(b"\r\n").split(b"\r\n\r\n", 1)
              for part in parts[1:-1]]
    assert [(head.decode(), value) for head, value in fields] == [
        ('Content-Disposition: form-data; name="code_file"', b"symcrasher"),
        ('Content-Disposition: form-data; name="cpu"', b"x86_64"),
        ('Content-Disposition: form-data; name="debug_file"', b"symcrasher"),
        ('Content-Disposition: form-data; name="debug_identifier"', symbols.debug_id.encode()),
        ('Content-Disposition: form-data; name="os"', b"Linux"),
        ('Content-Disposition: form-data; name="version"', b"1.2.3"),
        ('Content-Disposition: form-data; name="symbol_file"; filename="symcrasher.sym"\r\n'
         "Content-Type: application/octet-stream", symbols.path.read_bytes()),
    ]


@pytest.mark.parametrize(("status", "exit_code", "printed"), [
    (201, 0, "Failed to send symbol file: Response code 201\nResponse:\nnope\n"),
    (404, 1, "Failed to send symbol file: HTTP response code said error\n"
             "Response code: 404\nResponse:\n\n"),
])
def test_v1_success_is_200_and_only_4xx_5xx_fail_the_exit_code(
        built, recorder: Recorder, status: int, exit_code: int, printed: str) -> None:
    recorder.replies["/up"] = (status, b"nope")
    done = symupload(built[1].path, recorder.base + "/up")
    assert (done.returncode, done.stdout) == (exit_code, printed)


def v2_replies(recorder: Recorder, status: bytes = b'{"status": "MISSING"}',
               result: bytes = b'{"result": "OK"}') -> None:
    recorder.replies.update({
        ":checkStatus": (200, status),
        "/v1/uploads:create": (200, b'{"uploadUrl": "%s/blob/7?sig=a%%2Fb", "uploadKey": "U-7"}'
                               % recorder.base.encode()),
        "/blob/": (200, b""),
        ":complete": (200, result),
    })


def test_v2_checks_creates_puts_and_completes(built, recorder: Recorder) -> None:
    _, symbols = built
    v2_replies(recorder)
    done = symupload("-p", "sym-upload-v2", "-k", "K3y", symbols.path, recorder.base + "/api")
    assert (done.returncode, done.stdout) == (0, "Successfully sent the symbol file.\n")
    check, create, put, complete = recorder.requests
    assert (check.method, check.path, check.body) == (
        "GET", f"/api/v1/symbols/symcrasher/{symbols.debug_id}:checkStatus?key=K3y", b"")
    assert "User-Agent" not in check.headers
    assert (create.method, create.path, create.body) == ("POST", "/api/v1/uploads:create?key=K3y",
                                                         b"")
    assert create.headers["Content-Length"] == "0"
    assert (put.method, put.path, put.body) == ("PUT", "/blob/7?sig=a%2Fb",
                                                symbols.path.read_bytes())
    assert put.headers["Transfer-Encoding"] == "chunked"
    assert "Content-Length" not in put.headers and "Content-Type" not in put.headers
    assert (complete.method, complete.path) == ("POST", "/api/v1/uploads/U-7:complete?key=K3y")
    assert complete.headers["Content-Type"] == "application/son"
    assert complete.body == (b'{ symbol_id: {debug_file: "symcrasher", debug_id: "%s" }, '
                             b'symbol_upload_type: "BREAKPAD" }' % symbols.debug_id.encode())


def test_v2_found_skips_the_upload_whatever_the_status_code(built, recorder: Recorder) -> None:
    recorder.replies[":checkStatus"] = (404, b'{"status": "FOUND"}')
    done = symupload("-p", "sym-upload-v2", "-k", "K", built[1].path, recorder.base)
    assert done.returncode == 0
    assert done.stdout == 'Symbol file already exists, upload aborted. Use "-f" to overwrite.\n'
    assert [r.path.split(":")[-1] for r in recorder.requests] == ["checkStatus?key=K"]


def test_v2_force_without_key_skips_the_check_and_the_query(built, recorder: Recorder) -> None:
    v2_replies(recorder, result=b'{"result": "DUPLICATE_DATA"}')
    done = symupload("-p", "sym-upload-v2", "-f", "-t", "elf", "-c", "app.so", "-i", "AB-01",
                     built[1].path, recorder.base)
    assert done.returncode == 0
    assert done.stdout == ("Uploaded file checksum matched existing file checksum,"
                           " no change necessary.\n")
    assert [r.path for r in recorder.requests] == [
        "/v1/uploads:create", "/blob/7?sig=a%2Fb", "/v1/uploads/U-7:complete"]
    assert recorder.requests[-1].body == (b'{ symbol_id: {debug_file: "app.so", debug_id: '
                                          b'"AB-01" }, symbol_upload_type: "ELF" }')


@pytest.mark.parametrize(("reply", "printed"), [
    (b'{"status":"MISSING"}', "Failed to parse check symbol status response.Response:\n"
                              '{"status":"MISSING"}\nFailed to check for existing symbol.\n'),
    (b'{\n  "status": "MISSING"\n}', None),
])
def test_v2_replies_need_one_space_after_the_colon(
        built, recorder: Recorder, reply: bytes, printed: str | None) -> None:
    v2_replies(recorder, status=reply)
    done = symupload("-p", "sym-upload-v2", built[1].path, recorder.base)
    if printed is None:
        assert (done.returncode, len(recorder.requests)) == (0, 4)
    else:
        assert (done.returncode, done.stdout, len(recorder.requests)) == (1, printed, 1)


def test_v2_put_must_answer_exactly_200(built, recorder: Recorder) -> None:
    v2_replies(recorder)
    recorder.replies["/blob/"] = (201, b"")
    done = symupload("-p", "sym-upload-v2", built[1].path, recorder.base)
    assert (done.returncode, done.stdout) == (
        1, "Failed to send symbol file: Response code 201\nResponse:\n\n")
    assert [r.method for r in recorder.requests] == ["GET", "POST", "PUT"]


@pytest.mark.crashpad
def test_crash_under_crashpad_walks_the_whole_chain_with_symbols(
        built, recorder: Recorder, tmp_path: Path) -> None:
    exe, symbols = built
    recorder.replies["/submit"] = (200, b"remote-1")
    report = crashpad_client.crash_and_upload(recorder.base + "/submit", tmp_path, crasher=exe)
    assert report.completed and report.remote_id == "remote-1", report.handler_log
    dump = tmp_path / "symcrasher.dmp"
    dump.write_bytes(report.dump)
    frames = breakpad.crashing_thread(dump, symbols.path.parents[2])
    assert [(f.module, f.function, f.trust) for f in frames[:4]] == [
        ("symcrasher", "crash_now", "context"),
        ("symcrasher", "load_section", "cfi"),
        ("symcrasher", "parse_config", "cfi"),
        ("symcrasher", "main", "cfi"),
    ]
    assert frames[0].registers["rdi"] == 0  # the null slot crash_now wrote through
