"""The Lambda functions the bucket's events start, through Chalice's test client: a
committed report is processed; a stored symbol file reprocesses what lacked it."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

from chalice.test import Client

from chalicelib.crash_store import CrashStore
from chalicelib.symbol_store import SymbolStore
from chalicelib.symbol_upload import accept_sym
from tests.testlib import forms

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TEST_APP = FIXTURES / "symbols" / "symbols" / "test_app.pdb" / (
    "5A9832E5287241C1838ED98914E9B7FF1") / "test_app.sym"


def s3_event(client, bucket: str, key: str) -> dict:
    """An object-created event as S3 sends it: the key URL-encoded (Chalice decodes it)."""
    return client.events.generate_s3_event(bucket, urllib.parse.quote_plus(key, safe="/"))


def test_bucket_events_process_reports_and_reprocess_them_when_symbols_arrive(
    app_env, moto_backend
):
    application = app_env(moto_backend)
    reports = moto_backend.store()
    crashes = CrashStore(moto_backend.client, moto_backend.bucket, moto_backend.prefix)
    symbols = SymbolStore(moto_backend.client, moto_backend.bucket, moto_backend.prefix)
    dump = (FIXTURES / "minidumps" / "windows-x86-breakpad-access-violation.dmp").read_bytes()
    with forms.stored_submission(dump, platform="linux/x86 & more") as sent:
        report_id = reports.put(sent)
    report_key = reports.find(report_id).key
    assert "%" in report_key  # the event's key arrives URL-encoded and is decoded once

    with Client(application.app) as client:
        client.lambda_.invoke(
            "process_crash", s3_event(client, moto_backend.bucket, report_key))
        first = crashes.get_crash(report_id)
        assert first["crash_info"]["type"] == "EXCEPTION_ACCESS_VIOLATION_WRITE"
        assert first["crashing_thread"]["frames"][0]["function"] is None

        with open(TEST_APP, "rb") as sym:
            accept_sym(symbols, sym, "ci")
        sym_key = (moto_backend.prefix + "symbols/test_app.pdb/"
                   "5A9832E5287241C1838ED98914E9B7FF1/test_app.sym")
        bucket = moto_backend.bucket
        client.lambda_.invoke("reprocess_for_symbols", s3_event(client, bucket, sym_key))
        # Not a .sym of the layout: nothing happens.
        stray = moto_backend.prefix + "symbols/x.sym"
        client.lambda_.invoke("reprocess_for_symbols", s3_event(client, bucket, stray))

    again = crashes.get_crash(report_id)
    assert again["crashing_thread"]["frames"][0]["function"] == (
        "`anonymous namespace'::CrashFunction")
    assert symbols.missing_reports("test_app.pdb", "5A9832E5287241C1838ED98914E9B7FF1") == []
