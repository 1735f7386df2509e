"""Symbol uploads and the symbol store on moto and SeaweedFS: what is stored, what is
refused, idempotence, late-symbol notes, the S3 range reader, the admin command."""

from __future__ import annotations

import contextlib
import io
import zipfile
from pathlib import Path

import pytest

from chalicelib import symbol_admin
from chalicelib.crash_store import CrashStore
from chalicelib.processing import processor
from chalicelib.symbol_store import SymbolStore, sym_name
from chalicelib.symbol_upload import (
    SymbolRejected,
    SymbolTooLarge,
    accept_sym,
    accept_upload,
    accept_zip,
    complete_v2,
)
from tests.testlib import forms

ROOT = Path(__file__).resolve().parent / "fixtures" / "symbols"
TEST_APP = ROOT / "symbols" / "test_app.pdb" / "5A9832E5287241C1838ED98914E9B7FF1" / "test_app.sym"
TEST_APP_ID = ("test_app.pdb", "5A9832E5287241C1838ED98914E9B7FF1")
WINDOWS_DUMP = Path(__file__).resolve().parent / "fixtures" / "minidumps" / (
    "windows-x86-breakpad-access-violation.dmp")


def symbol_store(backend) -> SymbolStore:
    return SymbolStore(backend.client, backend.bucket, backend.prefix, 2.0)


def symbol_keys(backend) -> list[str]:
    return [k[len(backend.prefix):] for k in backend.keys() if "symbol" in k]


def test_a_sym_file_is_stored_with_its_index_and_logged_once(backend) -> None:
    store = symbol_store(backend)
    with open(TEST_APP, "rb") as sym:
        first = accept_sym(store, sym, "ci", {"os": "windows", "cpu": "x86"})
    assert (first.debug_file, first.debug_id, first.os, first.cpu, first.stored) == (
        *TEST_APP_ID, "windows", "x86", True)
    keys = symbol_keys(backend)
    base = "symbols/test_app.pdb/5A9832E5287241C1838ED98914E9B7FF1/test_app"
    assert {base + ".sym", base + ".symindex"} <= set(keys)
    assert backend.read(backend.prefix + base + ".sym") == TEST_APP.read_bytes()
    with open(TEST_APP, "rb") as sym:
        assert accept_sym(store, sym, "other").stored is False
    assert symbol_keys(backend) == keys  # the same bytes are stored once
    (upload,) = store.iter_uploads()
    assert (upload.debug_file, upload.uploader, upload.size) == (
        "test_app.pdb", "ci", TEST_APP.stat().st_size)


@pytest.mark.parametrize("declared, message", [
    ({"os": "linux"}, "os 'linux' disagrees"),
    ({"cpu": "x86_64"}, "cpu 'x86_64' disagrees"),
    ({"debug_file": "other.pdb"}, "debug_file 'other.pdb' disagrees"),
    ({"debug_id": "0" * 33}, "debug_id"),
])
def test_declared_fields_must_agree_with_the_module_line(moto_backend, declared, message):
    with open(TEST_APP, "rb") as sym, pytest.raises(SymbolRejected, match=message):
        accept_sym(symbol_store(moto_backend), sym, "ci", declared)
    assert symbol_keys(moto_backend) == []


@pytest.mark.parametrize("content, message", [
    (b"", "empty file"),
    (b"MODULE Linux x86_64\n", "line 1"),
    (b"FUNC 1000 10 0 f\n", "line 1"),
    (b"MODULE Linux x86_64 " + b"A" * 33 + b" lib.so\nFUNC zz 10 0 f\n", "line 2"),
    (b"MODULE Linux x86_64 " + b"A" * 33 + b" ../etc\n", "unusable debug file"),
])
def test_malformed_files_are_refused_with_the_line(moto_backend, content, message) -> None:
    with pytest.raises(SymbolRejected, match=message):
        accept_sym(symbol_store(moto_backend), io.BytesIO(content), "ci")
    assert symbol_keys(moto_backend) == []


def test_the_v1_form_and_its_size_limit(moto_backend) -> None:
    store, sym = symbol_store(moto_backend), TEST_APP.read_bytes()
    fields = {"os": "windows", "cpu": "x86", "debug_file": "test_app.pdb",
              "code_file": "test_app.pdb", "debug_identifier": TEST_APP_ID[1]}
    body, headers = multipart(fields, ("symbol_file", "test_app.sym", sym))
    with pytest.raises(SymbolTooLarge):
        accept_upload(store, io.BytesIO(body), headers, "ci", len(sym) - 1)
    assert symbol_keys(moto_backend) == []
    (accepted,) = accept_upload(store, io.BytesIO(body), headers, "ci", len(sym))
    assert accepted.stored and accepted.debug_id == TEST_APP_ID[1]


def multipart(fields, file) -> tuple[bytes, dict[str, str]]:
    boundary = "----symbols-test"
    out = io.BytesIO()
    for name, value in fields.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                  f"{value}\r\n".encode())
    field, filename, data = file
    out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
              f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode())
    out.write(data + f"\r\n--{boundary}--\r\n".encode())
    return out.getvalue(), {"content-type": f"multipart/form-data; boundary={boundary}"}


def zip_of(members: dict[str, bytes]) -> io.BytesIO:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as out:
        for name, data in members.items():
            out.writestr(name, data)
    archive.seek(0)
    return archive


@pytest.mark.parametrize("name, message", [
    ("test_app.pdb/5A9832E5287241C1838ED98914E9B7FF1/test_app.sym", None),
    ("test_app.pdb/5A9832E5287241C1838ED98914E9B7FF1/other.sym", "not a symbol file path"),
    ("test_app.sym", "expected <debug_file>/<debug_id>/<name>.sym"),
    ("../x/5A9832E5287241C1838ED98914E9B7FF1/test_app.sym", "expected <debug_file>"),
    ("x.pdb/5A9832E5287241C1838ED98914E9B7FF1/x.sym", "MODULE line"),
    ("test_app.pdb/00000000000000000000000000000000A/test_app.sym", "MODULE line"),
])
def test_zip_members_must_sit_where_their_module_line_says(moto_backend, name, message):
    store = symbol_store(moto_backend)
    archive = zip_of({name: TEST_APP.read_bytes()})
    if message is None:
        (accepted,) = accept_zip(store, archive, "ci", 1 << 30)
        assert accepted.stored
        return
    with pytest.raises((SymbolRejected, SymbolTooLarge), match=message):
        accept_zip(store, archive, "ci", 1 << 30)
    assert symbol_keys(moto_backend) == []


def test_a_zip_with_one_bad_member_stores_none(moto_backend) -> None:
    archive = zip_of({
        "test_app.pdb/5A9832E5287241C1838ED98914E9B7FF1/test_app.sym": TEST_APP.read_bytes(),
        "b.so/" + "B" * 33 + "/b.so.sym": b"MODULE Linux x86_64 " + b"B" * 33 + b" b.so\nX\n",
    })
    with pytest.raises(SymbolRejected, match="b.so"):
        accept_zip(symbol_store(moto_backend), archive, "ci", 1 << 30)
    assert symbol_keys(moto_backend) == []
    with pytest.raises(SymbolRejected, match="not a zip"):
        accept_zip(symbol_store(moto_backend), io.BytesIO(b"PK nope"), "ci", 1 << 30)


def test_v2_complete_takes_the_staged_file_and_cleans_up(backend) -> None:
    store = symbol_store(backend)
    key, url = store.upload_url()
    assert key in url and url.startswith(("http://", "https://"))
    backend.client.put_object(Bucket=backend.bucket, Key=backend.prefix + "symbol-uploads/" + key,
                              Body=TEST_APP.read_bytes())
    body = (b'{ symbol_id: {debug_file: "test_app.pdb", debug_id: "' + TEST_APP_ID[1].encode()
            + b'" }, symbol_upload_type: "BREAKPAD" }')
    accepted = complete_v2(store, key, body, "ci", 1 << 30)
    assert accepted.stored and store.stored_sha256(*TEST_APP_ID)
    assert not [k for k in symbol_keys(backend) if k.startswith("symbol-uploads/")]
    key, _ = store.upload_url()
    backend.client.put_object(Bucket=backend.bucket, Key=backend.prefix + "symbol-uploads/" + key,
                              Body=TEST_APP.read_bytes())
    with pytest.raises(SymbolRejected, match="disagrees"):
        complete_v2(store, key, body.replace(b"test_app.pdb", b"else.pdb"), "ci", 1 << 30)
    assert not [k for k in symbol_keys(backend) if k.startswith("symbol-uploads/")]


def test_processing_names_frames_from_the_store_and_notes_missing_modules(backend) -> None:
    reports, symbols = backend.store(), symbol_store(backend)
    crashes = CrashStore(backend.client, backend.bucket, backend.prefix, 2.0)
    with forms.stored_submission(WINDOWS_DUMP.read_bytes()) as sent:
        report_id = reports.put(sent)
    stored = reports.find(report_id)
    processor.process_report(reports, crashes, stored, symbols)
    before = crashes.get_crash(report_id)
    assert before["crashing_thread"]["frames"][0]["function"] is None
    assert [m.report_id for m in symbols.iter_missing(*TEST_APP_ID)] == [report_id]

    with open(TEST_APP, "rb") as sym:
        accept_sym(symbol_store(backend), sym, "ci")
    assert symbols.missing_reports(*TEST_APP_ID) == [report_id]
    from chalicelib import pruning

    result = pruning.prune_to_limit(reports, 1 << 30, 3600)  # a late reprocess left undone
    assert result.reprocess_ids == [report_id]
    entry = processor.process_report(reports, crashes, stored, symbols)
    after = crashes.get_crash(report_id)
    frames = after["crashing_thread"]["frames"]
    assert [(f["function"], f["trust"]) for f in frames[:3]] == [
        ("`anonymous namespace'::CrashFunction", "context"), ("main", "cfi"),
        ("__tmainCRTStartup", "cfi")]
    assert (frames[0]["file"], frames[0]["line"]) == ("c:\\test_app.cc", 58)
    assert frames[3]["module"] == "kernel32.dll" and frames[3]["missing_symbols"] is True
    assert entry.signature == after["signature"] != before["signature"]
    assert "CrashFunction" in after["signature"]  # siggen, now that frames have names
    # The note went once the report was processed with the symbols; kernel32 stays noted.
    assert list(symbols.iter_missing(*TEST_APP_ID)) == []
    assert pruning.prune_to_limit(reports, 1 << 30, 3600).reprocess_ids == []


def test_the_range_reader_reads_small_blocks_and_caches(moto_backend) -> None:
    store = symbol_store(moto_backend)
    with open(TEST_APP, "rb") as sym:
        accept_sym(store, sym, "ci")
    reader = store.index_reader(*TEST_APP_ID)
    whole = moto_backend.read(moto_backend.prefix + "symbols/test_app.pdb/" + TEST_APP_ID[1]
                              + "/test_app.symindex")
    assert reader.read(10, 100) == whole[10:110]
    assert reader.read(4090, 20) == whole[4090:4110]
    # The second read straddles blocks 1 and 2 (2048..6143): one GET for both.
    assert reader.reads == 2 and reader.bytes_read == 3 * reader.BLOCK == 6144
    assert reader.read(0, 50) == whole[:50] and reader.reads == 2  # cached
    assert sym_name("test_app.pdb") == "test_app.sym" and sym_name("libc.so.6") == "libc.so.6.sym"


def test_the_admin_command_lists_and_deletes(moto_backend, monkeypatch, capsys) -> None:
    for name, value in moto_backend.env().items():
        monkeypatch.setenv(name, value)
    with open(TEST_APP, "rb") as sym:
        accept_sym(symbol_store(moto_backend), sym, "ci")
    assert symbol_admin.main(["list"]) == 0
    assert "test_app.pdb\t5A9832E5287241C1838ED98914E9B7FF1\twindows\tx86" in \
        capsys.readouterr().out
    assert symbol_admin.main(["delete", *TEST_APP_ID, "--dry-run"]) == 0
    assert len(symbol_keys(moto_backend)) == 3
    assert symbol_admin.main(["delete", *TEST_APP_ID]) == 0
    assert symbol_keys(moto_backend) == []
    assert symbol_admin.main(["delete", *TEST_APP_ID]) == 1


def test_a_transient_storage_error_is_retried_from_the_start_of_the_file(moto_backend):
    from botocore.exceptions import ClientError

    store = symbol_store(moto_backend)
    real_put, failures = store.s3.put_object, []

    def flaky_put(**kwargs):
        body = kwargs["Body"]
        if kwargs["Key"].endswith(".sym") and not failures:
            failures.append(body.read(100))  # half-read, then the bucket fails
            raise ClientError({"Error": {"Code": "SlowDown"},
                               "ResponseMetadata": {"HTTPStatusCode": 503}}, "PutObject")
        return real_put(**kwargs)

    store.s3.put_object = flaky_put
    with open(TEST_APP, "rb") as sym:
        assert accept_sym(store, sym, "ci").stored
    assert failures
    key = "symbols/test_app.pdb/5A9832E5287241C1838ED98914E9B7FF1/test_app.sym"
    assert moto_backend.read(moto_backend.prefix + key) == TEST_APP.read_bytes()


def test_a_corrupt_zip_member_is_a_clear_refusal(moto_backend) -> None:
    archive = zip_of({"test_app.pdb/5A9832E5287241C1838ED98914E9B7FF1/test_app.sym":
                      TEST_APP.read_bytes()})
    data = bytearray(archive.getvalue())
    start = data.index(b"MODULE")
    data[start:start + 6] = b"MODULX"  # stored uncompressed: the CRC no longer matches
    with pytest.raises(SymbolRejected, match="unreadable zip member"):
        accept_zip(symbol_store(moto_backend), io.BytesIO(bytes(data)), "ci", 1 << 30)
    assert symbol_keys(moto_backend) == []


def test_uploads_past_the_concurrent_limit_are_told_to_retry(app_env, moto_backend) -> None:
    from chalice.test import Client

    from chalicelib.auth import hash_password
    from chalicelib.symbol_upload import UPLOADS_AT_ONCE, upload_slot

    application = app_env(moto_backend,
                          SYMBOL_UPLOAD_KEYS="ci:" + hash_password("k", iterations=1000))
    body, headers = multipart({}, ("symbol_file", "test_app.sym", TEST_APP.read_bytes()))
    with Client(application.app) as client:
        with contextlib.ExitStack() as held:
            for _ in range(UPLOADS_AT_ONCE):
                held.enter_context(upload_slot())
            busy = client.http.post("/symbols/upload?key=ci:k", body=body, headers=headers)
        assert busy.status_code == 503 and b"try again" in busy.body
        assert symbol_keys(moto_backend) == []
        done = client.http.post("/symbols/upload?key=ci:k", body=body, headers=headers)
        assert done.status_code == 200 and done.body.startswith(b"stored test_app.pdb/")


def test_one_functions_cfi_rules_are_bounded(moto_backend) -> None:
    """A function's CFI text is read whole per lookup: past 1 MB the file is refused,
    before the index build holds it all in memory."""
    rule = " $r" + "1 2 + " * 2000
    lines = [b"MODULE Linux x86_64 " + b"A" * 33 + b" lib.so",
             b"STACK CFI INIT 1000 100 .cfa: $rsp 8 + .ra: .cfa -8 + ^"]
    lines += [f"STACK CFI {0x1000 + n:x} .cfa:{rule}".encode() for n in range(120)]
    with pytest.raises(SymbolRejected, match="characters of STACK CFI rules"):
        accept_sym(symbol_store(moto_backend), io.BytesIO(b"\n".join(lines) + b"\n"), "ci")
    assert symbol_keys(moto_backend) == []
