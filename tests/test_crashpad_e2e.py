"""A real crashpad_handler dumps a crashing program and uploads it to the real server.

Speaks HTTP only, like Crashpad; the checks read the bucket and Crashpad's database.
"""

from __future__ import annotations

import pytest

from tests.testlib import crashpad_client
from tests.test_ingest_live import dump_of, stored_reports

pytestmark = [pytest.mark.crashpad, pytest.mark.seaweedfs]


@pytest.mark.parametrize("use_gzip", [True, False], ids=["gzip", "no-upload-gzip"])
def test_real_crashpad_report_is_stored_byte_exact(
    live_servers, seaweed_backend, tmp_path, use_gzip: bool
) -> None:
    crashpad_client.check_handler_runs()
    servers = live_servers(seaweed_backend)
    att = tmp_path / "att.txt"
    att.write_bytes(b"attachment one\n")
    last = tmp_path / "zz.log"  # sorts after upload_file_minidump: the dump is not last
    last.write_bytes(b"\x00\x01 binary-ish log\r\n")
    annotations = {"build_id": "b42", "client_sha": "c" * 40, "jamicore_sha": "d" * 40,
                   "platform": "linux-x86_64", "prod": "Jami", "ver": "2026.11"}

    crash = crashpad_client.crash_and_upload(
        servers.submit_url, tmp_path, annotations, [att, last], gzip=use_gzip)

    assert crash.completed, crash.handler_log
    reports = stored_reports(seaweed_backend)
    assert list(reports) == [crash.remote_id]
    meta = reports[crash.remote_id]
    assert dump_of(seaweed_backend, meta) == crash.dump
    assert meta["crashpad_uuid"] == crash.uuid
    assert meta["annotations"] == {**annotations, "guid": crash.client_guid}
    assert meta["query"] == {"product": "Jami", "version": "2026.11", "guid": crash.client_guid}
    assert meta["user_agent"].startswith("Crashpad/")
    store = seaweed_backend.store()
    stored = store.get(crash.remote_id)
    kept = {a["name"]: store.open_attachment(stored, i).read()
            for i, a in enumerate(stored.attachments)}
    assert kept == crash.attachments == {"att.txt": att.read_bytes(),
                                         "zz.log": last.read_bytes()}


def test_failed_upload_leaves_the_report_pending(live_servers, seaweed_backend, tmp_path) -> None:
    """A 4xx is not success for Crashpad: it keeps the report pending, we keep nothing."""
    crashpad_client.check_handler_runs()
    servers = live_servers(seaweed_backend, MAX_SUBMISSION_MB="0.002")
    crash = crashpad_client.crash_and_upload(servers.submit_url, tmp_path, {"k": "v"})
    assert not crash.completed
    assert seaweed_backend.keys() == []


def test_real_crashpad_dump_is_processed_to_the_crashers_null_write(
    live_servers, seaweed_backend, tmp_path
) -> None:
    """SIGSEGV at the crasher's known address (its write through NULL), in its main()."""
    import subprocess

    from chalicelib.crash_store import CrashStore
    from chalicelib.processing import processor

    crashpad_client.check_handler_runs()
    servers = live_servers(seaweed_backend)
    binary = crashpad_client.build_crasher(tmp_path / "build")
    crash = crashpad_client.crash_and_upload(servers.submit_url, tmp_path, crasher=binary)
    assert crash.completed, crash.handler_log
    reports = seaweed_backend.store()
    crashes = CrashStore(seaweed_backend.client, seaweed_backend.bucket, seaweed_backend.prefix)

    processor.process_report(reports, crashes, reports.find(crash.remote_id))

    processed = crashes.get_crash(crash.remote_id)
    assert processed["status"] == "OK"
    assert processed["crash_info"]["type"] == "SIGSEGV / SEGV_MAPERR"
    assert int(processed["crash_info"]["address"], 16) == 0
    assert processed["system_info"]["os"] == "Linux"
    frame0 = processed["crashing_thread"]["frames"][0]
    assert frame0["module"] == binary.name and frame0["trust"] == "context"
    symbols = subprocess.run(["nm", "-S", str(binary)], capture_output=True, text=True,
                             check=True).stdout
    start, size = next((int(a, 16), int(s, 16)) for a, s, _, name in
                       (line.split() for line in symbols.splitlines() if len(line.split()) == 4)
                       if name == "main")
    assert start <= int(frame0["module_offset"], 16) < start + size
    main_module = processed["modules"][processed["main_module"]]
    assert main_module["filename"] == binary.name and main_module["code_id"]
