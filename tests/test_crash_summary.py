"""The per-signature summary from end to end: reports through /submit, processed, counted
by a pruning run, shown by the Crashes page and its API alike; pruning takes processing
output with its report."""

from __future__ import annotations

import datetime
import json

from chalicelib import crash_summary, pruning, report
from chalicelib.crash_store import CrashStore
from chalicelib.processing import processor
from chalicelib.symbol_store import SymbolStore
from tests.testlib import forms
from tests.testlib.viewing import logged_in

HOUR = 3600
LINUX = "linux-x86_64-breakpad-sigsegv.dmp"
WINDOWS = "windows-x86-breakpad-access-violation.dmp"


def sent_through_submit(view, name: str, version: str, platform: str) -> str:
    return view.submit({"prod": "Jami", "ver": version, "platform": platform},
                       dump=forms.fixture_dump(name))


def test_counts_first_last_seen_and_charts_from_the_real_ingest_path(app_env, moto_backend):
    with logged_in(app_env, moto_backend) as view:
        reports = moto_backend.store()
        crashes = CrashStore(moto_backend.client, moto_backend.bucket, moto_backend.prefix)
        symbols = SymbolStore(moto_backend.client, moto_backend.bucket, moto_backend.prefix)
        ids = {
            sent_through_submit(view, LINUX, "1.0", "linux"): LINUX,
            sent_through_submit(view, LINUX, "1.1", "linux"): LINUX,
            sent_through_submit(view, LINUX, "1.1", "linux"): LINUX,
            sent_through_submit(view, WINDOWS, "2.0", "win32"): WINDOWS,
        }
        unprocessed_one = sent_through_submit(view, WINDOWS, "2.0", "win32")
        for report_id in ids:
            processor.process_report(reports, crashes, reports.find(report_id), symbols)

        result = pruning.prune_to_limit(reports, 1 << 30, HOUR)
        assert result.unprocessed_ids == [unprocessed_one]
        summary = json.loads(moto_backend.read(moto_backend.prefix + "signatures.json"))
        assert (summary["total_reports"], summary["processed"], summary["unprocessed"]) == (
            5, 4, 1)
        by_text = {entry["signature"]: (sig, entry)
                   for sig, entry in summary["signatures"].items()}
        linux_sig = crashes.get_crash(next(iter(ids)))["signature"]
        sig, linux = by_text[linux_sig]
        linux_ids = sorted(i for i, name in ids.items() if name == LINUX)
        assert linux["count"] == 3 and linux["reason"] == "SIGSEGV"
        assert (linux["first_seen"], linux["last_seen"]) == (linux_ids[0], linux_ids[-1])
        assert linux["versions"] == {"1.0": 1, "1.1": 2}
        today = report.report_time(linux_ids[0]).date().isoformat()
        assert linux["by_day"] == {today: {"1.0": 1, "1.1": 2}}
        assert summary["days"][-1] == today
        # Modules of the crashing threads without symbols, most reports first.
        assert summary["missing_symbols"][0] == {
            "debug_file": "crash", "debug_id": crashes.get_crash(linux_ids[0])["modules"][0][
                "debug_id"], "reports": 3}

        page = view.page("/?window=all")
        api = view.api("/api/crashes?window=all")
        assert linux_sig in page.get_text()
        (row,) = [r for r in api["signatures"] if r["signature"] == linux_sig]
        assert row["count"] == 3 and row["sig"] == sig
        assert [r["count"] for r in api["signatures"]] == [3, 1]
        assert api["totals"]["unprocessed"] == 1
        # The page shows what the API says: each row's signature, reason and count.
        text = " ".join(page.get_text().split())
        for entry in api["signatures"]:
            assert entry["signature"] in text and entry["reason"] in text
        signature_api = view.api(f"/api/signatures/{sig}")
        assert [r["id"] for r in signature_api["reports"]] == linux_ids[::-1]
        assert str(page).count("<svg") >= 2  # the chart and the sparklines


def test_pruning_deletes_what_processing_wrote_with_the_report(moto_backend):
    reports = moto_backend.store()
    crashes = CrashStore(moto_backend.client, moto_backend.bucket, moto_backend.prefix)
    symbols = SymbolStore(moto_backend.client, moto_backend.bucket, moto_backend.prefix)
    ids = []
    for name in (LINUX, WINDOWS):
        with forms.stored_submission(forms.fixture_dump(name)) as sent:
            ids.append(reports.put(sent))
        processor.process_report(reports, crashes, reports.find(ids[-1]), symbols)
    before = moto_backend.keys()
    assert any("/crashes/" in k for k in before) and any("/signatures/" in k for k in before)
    assert any("/missing-symbols/" in k for k in before)
    newest_size = sum(
        item["Size"] for item in moto_backend.client.list_objects_v2(
            Bucket=moto_backend.bucket, Prefix=moto_backend.prefix)["Contents"]
        if "/reports/" in item["Key"] or "/parts/" in item["Key"]) // 2

    result = pruning.prune_to_limit(reports, newest_size, HOUR)

    assert result.deleted_ids == [ids[0]]
    after = moto_backend.keys()
    gone_inv = format(2**64 - 1 - int(ids[0], 16), "016x")
    assert not [k for k in after if gone_inv in k]  # crash, marker, missing-symbol notes
    assert crashes.get_crash(ids[1]) is not None


def test_output_of_a_pruned_report_goes_after_the_grace_period(moto_backend):
    reports = moto_backend.store()
    crashes = CrashStore(moto_backend.client, moto_backend.bucket, moto_backend.prefix)
    with forms.stored_submission(forms.fixture_dump(LINUX)) as sent:
        report_id = reports.put(sent)
    stored = reports.find(report_id)
    processor.process_report(reports, crashes, stored)
    moto_backend.client.delete_object(Bucket=moto_backend.bucket, Key=stored.key)
    now = datetime.datetime.now(datetime.timezone.utc)
    young = pruning.prune_to_limit(reports, 1 << 30, HOUR, now=now)
    assert young.processing_orphans_removed == 0
    later = pruning.prune_to_limit(reports, 1 << 30, HOUR, now=now + datetime.timedelta(hours=2))
    assert later.processing_orphans_removed == 2  # the crash and its signature marker
    assert not [k for k in moto_backend.keys() if "/crashes/" in k or "/signatures/" in k]


def test_missing_symbols_ranking_leaves_out_modules_that_have_symbols_now() -> None:
    import collections

    counts = collections.Counter({("a.so", "A" * 33): 5, ("b.so", "B" * 33): 9,
                                  ("c.so", "C" * 33): 1})
    ranked = crash_summary.missing_symbols(counts, {("b.so", "B" * 33)})
    assert [(m["debug_file"], m["reports"]) for m in ranked] == [("a.so", 5), ("c.so", 1)]


def test_a_long_signature_is_kept_whole_in_the_crash_and_cut_in_its_keys(backend) -> None:
    from chalicelib.store import KEY_SEGMENT_BYTES

    reports = backend.store()
    crashes = CrashStore(backend.client, backend.bucket, backend.prefix)
    with forms.stored_submission(forms.fixture_dump(LINUX), ver="é" * 200) as sent:
        report_id = reports.put(sent)
    signature = " | ".join(
        f"mozilla::dom::SomeVeryLongTemplate<int, std::vector<char>>::Method{n}(const X&)"
        for n in range(6))
    crash = dict(processor.process_dump(open(forms.FIXTURES / LINUX, "rb")),
                 signature=signature)
    entry = crashes.put_crash(reports.find(report_id), crash)
    keys = [k for k in backend.keys() if "/crashes/" in k or "/signatures/" in k]
    assert len(keys) == 2
    assert all(len(k.rsplit("/", 1)[1].encode()) <= KEY_SEGMENT_BYTES for k in keys)
    assert entry.signature_cut and signature.startswith(entry.signature)
    assert crashes.get_crash(report_id)["signature"] == signature
    (listed,) = crashes.iter_signature_reports(entry.sig)
    assert listed.id == report_id
