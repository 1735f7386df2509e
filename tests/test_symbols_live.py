"""Symbols with Breakpad's own tools against the real local servers: dump_syms on an
optimised crasher, symupload (both protocols) built from Breakpad's source, the real
Crashpad handler's dump walked by CFI and named, before and after the upload."""

from __future__ import annotations

import io
import shutil
import subprocess
import time
import zipfile
from pathlib import Path

import pytest
import requests

from chalicelib.auth import hash_password
from chalicelib.crash_store import CrashStore
from chalicelib import localrun
from chalicelib.symbol_store import SymbolStore
from tests.testlib import breakpad, crashpad_client, symcrasher
from tests.testlib.viewing import LOGIN, USERS

pytestmark = [pytest.mark.seaweedfs]
KEY = "ci:s3cret-key"
KEYS = "ci:" + hash_password("s3cret-key", iterations=1000)
FIXTURE_SYMBOLS = Path(__file__).resolve().parent / "fixtures" / "symbols" / "symbols"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed: cannot build the crasher")
    root = tmp_path_factory.mktemp("symcrasher")
    return symcrasher.build_with_symbols(root / "build", root / "symbols")


@pytest.fixture
def servers(live_servers, seaweed_backend):
    return live_servers(seaweed_backend, SYMBOL_UPLOAD_KEYS=KEYS, VIEWER_USERS=USERS,
                        MAX_SYMBOL_MB="1")


def symbol_keys(backend) -> list[str]:
    return [k[len(backend.prefix):] for k in backend.keys()
            if k[len(backend.prefix):].startswith(("symbols/", "symbol-log/", "symbol-uploads/"))]


def run_symupload(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(breakpad.symupload_binary()), *args], capture_output=True,
                          text=True, timeout=120)


def base(servers) -> str:
    return servers.submit_url.rsplit("/", 1)[0]


def test_symupload_v1_stores_the_file_and_its_index_once(servers, seaweed_backend, built):
    _, sym = built
    url = f"{base(servers)}/symbols/upload?key={KEY}"
    first = run_symupload(str(sym.path), url)
    assert "Successfully sent the symbol file." in first.stdout, first.stdout + first.stderr
    name = f"symbols/{sym.name}/{sym.debug_id}/{sym.name}"
    keys = symbol_keys(seaweed_backend)
    assert f"{name}.sym" in keys and f"{name}.symindex" in keys
    assert seaweed_backend.read(seaweed_backend.prefix + f"{name}.sym") == sym.path.read_bytes()
    again = run_symupload(str(sym.path), url)
    assert "Successfully sent" in again.stdout
    assert symbol_keys(seaweed_backend) == keys  # the same file is stored once
    (listed,) = SymbolStore(seaweed_backend.client, seaweed_backend.bucket,
                            seaweed_backend.prefix).iter_uploads()
    assert (listed.debug_file, listed.debug_id, listed.os, listed.cpu, listed.uploader) == (
        sym.name, sym.debug_id, "Linux", "x86_64", "ci")
    # The symbol server layout minidump-stackwalk fetches, behind the viewer login.
    path = f"/symbols/{sym.name}/{sym.debug_id}/{sym.name}.sym"
    assert requests.get(servers.viewer_url + path, timeout=10).status_code == 401
    served = requests.get(servers.viewer_url + path, headers=LOGIN, timeout=10)
    assert served.status_code == 200 and served.content == sym.path.read_bytes()
    assert requests.get(servers.submit_url.replace("/submit", path), timeout=10).status_code \
        == 404  # not on the public port


def test_symupload_v2_checks_creates_puts_and_completes(servers, seaweed_backend, built):
    _, sym = built
    args = ["-p", "sym-upload-v2", "-k", KEY, str(sym.path), f"{base(servers)}/symbols"]
    first = run_symupload(*args)
    assert first.returncode == 0 and "Successfully sent the symbol file." in first.stdout, (
        first.stdout + first.stderr)
    stored = symbol_keys(seaweed_backend)
    assert f"symbols/{sym.name}/{sym.debug_id}/{sym.name}.sym" in stored
    assert not [k for k in stored if k.startswith("symbol-uploads/")]  # staging cleaned
    again = run_symupload(*args)
    assert "Symbol file already exists" in again.stdout
    forced = run_symupload("-f", *args)
    assert "checksum matched existing file" in forced.stdout, forced.stdout
    assert symbol_keys(seaweed_backend) == stored


def test_bad_uploads_are_refused_and_store_nothing(servers, seaweed_backend, built):
    _, sym = built
    url = f"{base(servers)}/symbols/upload"
    good = sym.path.read_bytes()
    fields = {"os": "Linux", "cpu": "x86_64", "debug_file": sym.name, "code_file": sym.name,
              "debug_identifier": sym.debug_id}

    def post(content: bytes, key: str | None = KEY, **changes: str) -> requests.Response:
        data = {**fields, **changes}
        return requests.post(url, params={"key": key} if key else None, data=data,
                             files={"symbol_file": (f"{sym.name}.sym", content)}, timeout=30)

    cases = [
        (post(good, key=None), 401),
        (post(good, key="ci:wrong"), 401),
        (post(good, key="nobody:s3cret-key"), 401),
        (post(good, cpu="arm64"), 400),
        (post(good, debug_identifier="0" * 33), 400),
        (post(b"MODULE Linux x86_64 " + sym.debug_id.encode() + b" x\nFUNC zz\n"), 400),
        (post(b"not a symbol file\n"), 400),
        (post(good + b"PUBLIC 1 0 x\n" * 90_000), 413),  # over 1 MiB
    ]
    for answer, status in cases:
        assert answer.status_code == status, answer.text
        assert answer.text.strip() and "\n" not in answer.text.strip()
    assert symbol_keys(seaweed_backend) == []
    bad_zip = io.BytesIO()
    with zipfile.ZipFile(bad_zip, "w") as archive:
        archive.writestr(f"{sym.name}/{sym.debug_id}/{sym.name}.sym", good)
        archive.writestr(f"other/{sym.debug_id}/other.sym", good)  # path disagrees
    answer = requests.post(url, params={"key": KEY}, data=bad_zip.getvalue(),
                           headers={"Content-Type": "application/zip"}, timeout=30)
    assert answer.status_code == 400 and "MODULE line" in answer.text
    assert symbol_keys(seaweed_backend) == []


def test_a_zip_of_symbol_files_is_stored_whole(live_servers, seaweed_backend):
    servers = live_servers(seaweed_backend, SYMBOL_UPLOAD_KEYS=KEYS)
    archive = io.BytesIO()
    files = sorted(FIXTURE_SYMBOLS.rglob("*.sym"))
    with zipfile.ZipFile(archive, "w") as out:
        for path in files:
            out.write(path, path.relative_to(FIXTURE_SYMBOLS).as_posix())
    answer = requests.post(f"{base(servers)}/symbols/upload", params={"key": KEY},
                           data=archive.getvalue(), headers={"Content-Type": "application/zip"},
                           timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.text.count("stored ") == len(files) == 2
    for path in files:
        key = seaweed_backend.prefix + "symbols/" + path.relative_to(FIXTURE_SYMBOLS).as_posix()
        assert seaweed_backend.read(key) == path.read_bytes()


def wait_for(check, seconds: float = 90):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"not true after {seconds} s")


@pytest.mark.crashpad
@pytest.mark.parametrize("symbols_first", [True, False], ids=["symbols-first", "symbols-late"])
def test_real_crash_shows_the_whole_call_chain_by_name(
    live_servers, seaweed_backend, built, tmp_path, symbols_first
):
    crashpad_client.check_handler_runs()
    binary, sym = built
    servers = live_servers(seaweed_backend, SYMBOL_UPLOAD_KEYS=KEYS)
    import app as application

    crashes = CrashStore(seaweed_backend.client, seaweed_backend.bucket, seaweed_backend.prefix)
    pool = localrun.attach_processing(application, 1)
    upload = [str(sym.path), f"{base(servers)}/symbols/upload?key={KEY}"]
    try:
        if symbols_first:
            assert "Successfully sent" in run_symupload(*upload).stdout
        crash = crashpad_client.crash_and_upload(servers.submit_url, tmp_path, crasher=binary)
        assert crash.completed, crash.handler_log
        report_id = crash.remote_id
        processed = wait_for(lambda: crashes.get_crash(report_id))
        if not symbols_first:
            assert processed["crashing_thread"]["frames"][0]["function"] is None
            assert processed["crashing_thread"]["frames"][0]["missing_symbols"] is True
            assert "Successfully sent" in run_symupload(*upload).stdout
            processed = wait_for(lambda: (c := crashes.get_crash(report_id)) and
                                 c["crashing_thread"]["frames"][0]["function"] and c)
    finally:
        pool.stop()
    frames = processed["crashing_thread"]["frames"]
    names = [f["function"] for f in frames[: len(symcrasher.CHAIN)]]
    assert names == list(symcrasher.CHAIN)
    assert [f["trust"] for f in frames[: len(symcrasher.CHAIN)]] == ["context"] + ["cfi"] * 3
    assert frames[0]["file"].endswith("symcrasher.c") and frames[0]["line"] > 0
    assert processed["crash_info"]["type"].startswith("SIGSEGV")
    module = next(m for m in processed["modules"] if m["filename"] == sym.name)
    assert module["loaded_symbols"] is True and module["missing_symbols"] is False
    assert processed["signature"].startswith("crash_now")
