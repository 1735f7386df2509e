"""Processing off the ingest path: the local run's worker pool, fed by the real /submit
through the real HTTP server, picking up what a restart left, and the backfill command."""

from __future__ import annotations

import time

import pytest
import requests

from chalicelib import localrun
from chalicelib.crash_store import CrashStore
from chalicelib.processing import __main__ as backfill
from chalicelib.processing import processor
from chalicelib.processing.worker import ProcessingPool, unprocessed
from chalicelib.symbol_store import SymbolStore
from tests.testlib import forms

FIXTURES = {
    "linux-x86_64-breakpad-sigsegv.dmp": ("SIGSEGV", "crash", "0x0000000000001d72"),
    "windows-x86-breakpad-access-violation.dmp": (
        "EXCEPTION_ACCESS_VIOLATION_WRITE", "test_app.exe", "0x0000429e"),
}


def crash_store(backend) -> CrashStore:
    return CrashStore(backend.client, backend.bucket, backend.prefix, 2.0)


def submit(url: str, name: str, **annotations: str) -> str:
    body, headers, query = forms.crashpad_form(
        {"platform": "linux", "prod": "Jami", "ver": "1.0", **annotations},
        dump=forms.fixture_dump(name),
    )
    answer = requests.post(url, data=forms.chunked(body), headers=headers, params=query,
                           timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.text


def wait_for_crashes(crashes: CrashStore, ids: list[str], seconds: float = 60) -> dict:
    deadline, found = time.monotonic() + seconds, {}
    while time.monotonic() < deadline and len(found) < len(ids):
        for report_id in ids:
            if report_id not in found:
                crash = crashes.get_crash(report_id)
                if crash is not None:
                    found[report_id] = crash
        time.sleep(0.2)
    assert set(found) == set(ids), f"unprocessed after {seconds} s: {set(ids) - set(found)}"
    return found


@pytest.mark.seaweedfs
def test_reports_sent_to_submit_are_processed_by_the_pool(live_servers, seaweed_backend):
    servers = live_servers(seaweed_backend, PROCESSING_WORKERS="1")
    import app as application

    crashes = crash_store(seaweed_backend)
    pool = localrun.attach_processing(application, 1)
    try:
        ids = {submit(servers.submit_url, name): name for name in FIXTURES}
        found = wait_for_crashes(crashes, list(ids))
    finally:
        pool.stop()
    for report_id, crash in found.items():
        reason, module, offset = FIXTURES[ids[report_id]]
        assert crash["status"] == "OK"
        assert crash["crash_info"]["type"] == reason
        frame0 = crash["crashing_thread"]["frames"][0]
        assert (frame0["module"], frame0["module_offset"], frame0["trust"]) == (
            module, offset, "context")
        entry = next(crashes.iter_report_crashes(report_id))
        assert entry.reason == reason and entry.signature == crash["signature"]
        # The signature's listing holds the report at once, with the report's facts.
        (listed,) = [r for r in crashes.iter_signature_reports(entry.sig) if r.id == report_id]
        assert listed.facts["version"] == "1.0" and listed.facts["platform"] == "linux"


@pytest.mark.seaweedfs
def test_a_restarted_pool_processes_what_was_stored_while_it_was_down(
    seaweed_backend, monkeypatch
):
    for name, value in seaweed_backend.env().items():  # the workers read the settings
        monkeypatch.setenv(name, value)
    reports, crashes = seaweed_backend.store(), crash_store(seaweed_backend)
    with forms.stored_submission(forms.fixture_dump("linux-x86_64-breakpad-sigsegv.dmp")) as sent:
        first = reports.put(sent)
    assert [r.id for r in unprocessed(reports, crashes)] == [first]
    pool = ProcessingPool(1).start(reports, crashes)  # nobody calls add(): the backlog scan
    try:
        crash = wait_for_crashes(crashes, [first])[first]
    finally:
        pool.stop()
    assert crash["crash_info"]["type"] == "SIGSEGV"
    assert list(unprocessed(reports, crashes)) == []


def test_unreadable_dumps_are_stored_listed_and_marked(moto_backend):
    reports, crashes = moto_backend.store(), crash_store(moto_backend)
    cases = {b"MDMP" + b"\x00" * 4: "ERROR_TRUNCATED",
             forms.fixture_dump("corrupt-invalid-stream-range.dmp"): "ERROR_MISSING_SYSTEM_INFO"}
    for dump, status in cases.items():
        with forms.stored_submission(dump) as sent:
            report_id = reports.put(sent)
        entry = processor.process_report(reports, crashes, reports.find(report_id))
        assert entry.is_error and entry.reason == status
        crash = crashes.get_crash(report_id)
        assert crash["status"] == status and crash["error"] and crash["signature"] is None
        with reports.open_dump(reports.get(report_id)) as stored:
            assert stored.read() == dump  # still stored byte for byte, still downloadable
        assert report_id in [r.id for r in reports.iter_newest()]
        assert list(crashes.iter_signature_reports("0" * 16)) == []


def test_reprocessing_replaces_the_crash_and_moves_the_signature_marker(moto_backend):
    reports, crashes = moto_backend.store(), crash_store(moto_backend)
    with forms.stored_submission(forms.fixture_dump("linux-x86_64-breakpad-sigsegv.dmp")) as sent:
        report_id = reports.put(sent)
    stored = reports.find(report_id)
    old = crashes.put_crash(stored, dict(processor.process_dump(
        open(forms.FIXTURES / "linux-x86_64-breakpad-sigsegv.dmp", "rb")), signature="old one"))
    new = processor.process_report(reports, crashes, stored)
    assert old.sig != new.sig
    assert [e.key for e in crashes.iter_report_crashes(report_id)] == [new.key]
    assert list(crashes.iter_signature_reports(old.sig)) == []
    assert [r.id for r in crashes.iter_signature_reports(new.sig)] == [report_id]


def test_a_dump_over_its_time_budget_is_marked_not_retried(moto_backend, monkeypatch):
    reports, crashes = moto_backend.store(), crash_store(moto_backend)
    with forms.stored_submission(forms.fixture_dump("linux-x86_64-breakpad-sigsegv.dmp")) as sent:
        report_id = reports.put(sent)

    def slow(file, symbols=None):
        time.sleep(5)

    monkeypatch.setattr(processor, "process_dump", slow)
    entry = processor.process_report(reports, crashes, reports.find(report_id), seconds=0.2)
    assert entry.reason == "ERROR_TIME_BUDGET"
    assert crashes.get_crash(report_id)["error"] == "processing took over 0.2 s"
    assert list(unprocessed(reports, crashes)) == []  # marked: nothing left to retry


def test_a_dump_over_its_memory_budget_is_marked(moto_backend, monkeypatch):
    reports, crashes = moto_backend.store(), crash_store(moto_backend)
    with forms.stored_submission(forms.fixture_dump("linux-x86_64-breakpad-sigsegv.dmp")) as sent:
        report_id = reports.put(sent)

    def greedy(file, symbols=None):
        return bytearray(512 * 1024 * 1024)

    monkeypatch.setattr(processor, "process_dump", greedy)
    entry = processor.process_report(reports, crashes, reports.find(report_id), megabytes=64)
    assert entry.reason == "ERROR_MEMORY_BUDGET"


def test_backfill_processes_the_unprocessed_then_nothing(moto_backend, monkeypatch, capsys):
    reports, crashes = moto_backend.store(), crash_store(moto_backend)
    ids = []
    for name in FIXTURES:
        with forms.stored_submission(forms.fixture_dump(name)) as sent:
            ids.append(reports.put(sent))
    for name, value in moto_backend.env().items():
        monkeypatch.setenv(name, value)

    assert backfill.main(["--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "2 reports to process" in out and "would process 2 reports" in out
    assert all(crashes.get_crash(i) is None for i in ids)

    assert backfill.main([]) == 0
    out = capsys.readouterr().out
    assert "[1/2]" in out and "[2/2]" in out and "processed 2 reports (0 unreadable)" in out
    assert {crashes.get_crash(i)["crash_info"]["type"] for i in ids} == {
        "SIGSEGV", "EXCEPTION_ACCESS_VIOLATION_WRITE"}

    assert backfill.main([]) == 0  # idempotent: nothing left
    assert "0 reports to process" in capsys.readouterr().out
    assert backfill.main(["--reprocess", "--since", "2000-01-01"]) == 0
    assert "2 reports to process" in capsys.readouterr().out
    assert backfill.main(["--reprocess", "--since", "2999-01-01"]) == 0
    assert "0 reports to process" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        backfill.main(["--since", "yesterday"])


def test_the_time_budget_holds_inside_symbol_lookups(moto_backend, monkeypatch):
    """The symbol provider keeps a walk going past a broken index: it must not keep it
    going past the budget."""
    from chalicelib.symfile.provider import IndexedSymbols

    reports, crashes = moto_backend.store(), crash_store(moto_backend)
    with forms.stored_submission(forms.fixture_dump("android-arm64-firefox-sigsegv.dmp")) as sent:
        report_id = reports.put(sent)

    def slow_index(module):
        time.sleep(0.2)
        raise OSError("index unreachable")

    monkeypatch.setattr(processor, "symbols_from", lambda store: IndexedSymbols(slow_index))
    started = time.monotonic()
    symbols = SymbolStore(moto_backend.client, moto_backend.bucket, moto_backend.prefix)
    entry = processor.process_report(reports, crashes, reports.find(report_id), symbols,
                                     seconds=0.5)
    assert entry.reason == "ERROR_TIME_BUDGET"
    assert time.monotonic() - started < 3


def worker_pids() -> list[int]:
    import os
    from pathlib import Path

    me, found = os.getpid(), []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == me and b"spawn_main" in cmdline:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.seaweedfs
def test_a_killed_worker_blames_no_innocent_report(seaweed_backend, monkeypatch):
    import os
    import signal

    for name, value in seaweed_backend.env().items():
        monkeypatch.setenv(name, value)
    reports, crashes = seaweed_backend.store(), crash_store(seaweed_backend)
    ids = []
    for _ in range(4):
        with forms.stored_submission(forms.fake_dump(2000 + len(ids), len(ids))) as sent:
            ids.append(reports.put(sent))
    pool = ProcessingPool(1).start(reports, crashes)
    try:
        wait_for_crashes(crashes, ids[:1] + ids[1:])  # the backlog scan finds them all
        for pid in worker_pids():
            os.kill(pid, signal.SIGKILL)
        with forms.stored_submission(forms.fixture_dump("linux-x86_64-breakpad-sigsegv.dmp")) \
                as sent:
            late = reports.put(sent)
        pool.add(late)
        pool.add(late)  # queued once
        crash = wait_for_crashes(crashes, [late])[late]
    finally:
        pool.stop()
    assert crash["status"] == "OK" and crash["crash_info"]["type"] == "SIGSEGV"


@pytest.mark.seaweedfs
def test_workers_outlive_a_terminal_ctrl_c(seaweed_backend, monkeypatch):
    """Ctrl-C reaches the whole process group; the workers leave stopping to the run."""
    import os
    import signal

    for name, value in seaweed_backend.env().items():
        monkeypatch.setenv(name, value)
    reports, crashes = seaweed_backend.store(), crash_store(seaweed_backend)
    with forms.stored_submission(forms.fake_dump(3000, 1)) as sent:
        first = reports.put(sent)
    pool = ProcessingPool(1).start(reports, crashes)
    try:
        wait_for_crashes(crashes, [first])
        workers = worker_pids()
        assert workers
        for pid in workers:
            os.kill(pid, signal.SIGINT)
        with forms.stored_submission(forms.fixture_dump("linux-x86_64-breakpad-sigsegv.dmp")) \
                as sent:
            late = reports.put(sent)
        pool.add(late)
        crash = wait_for_crashes(crashes, [late])[late]
        assert worker_pids() == workers  # the same processes did it
    finally:
        pool.stop()
    assert crash["status"] == "OK" and crash["crash_info"]["type"] == "SIGSEGV"
