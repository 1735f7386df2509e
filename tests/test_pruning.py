"""Pruning on moto (AWS semantics) and a real SeaweedFS: what goes, what stays, byte-exact."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime
import io
import json
import logging
import math
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests
from chalice.test import Client

from chalicelib import pruning
from chalicelib.store import ReportNotFound, ReportStore
from chalicelib.submission import Limits, parse_submission
from tests.conftest import Backend
from tests.testlib import forms

LIMITS = Limits(64 * 1024 * 1024, 512, 65536)
T0 = datetime.datetime(2026, 11, 1, 23, 50, tzinfo=datetime.timezone.utc)
HOUR = 3600
MIB = 1024 * 1024
# What every run writes (unless a dry run): the totals and the per-signature counts.
WRITTEN = ("signatures.json", "summary.json")
REPO = Path(__file__).resolve().parents[1]


@dataclasses.dataclass
class Sent:
    """A report as the test stored it, to compare the bucket against."""

    id: str
    dump: bytes
    attachments: dict[str, bytes]
    facts: dict[str, str]


def put_report(
    store: ReportStore, seed: int, received_at: datetime.datetime | None = None,
    attachments: dict[str, bytes] | None = None, report_uuid: str | None = None,
    guid: str | None = None, **facts: str,
) -> Sent:
    dump = forms.fake_dump(1500 + 37 * seed, seed)
    if attachments is None:
        attachments = {"app.log": f"log of {seed}\n".encode() * 20}
    annotations = {"prod": facts.get("product", "Jami"), "ver": facts.get("version", "1.0"),
                   "platform": facts.get("platform", "linux")}
    body, headers, query = forms.crashpad_form(
        annotations, dump=dump, attachments=attachments, report_uuid=report_uuid, guid=guid
    )
    with parse_submission(
        io.BytesIO(body), {k.lower(): v for k, v in headers.items()}, query, LIMITS,
        received_at=received_at,
    ) as submission:
        report_id = store.put(submission)
    return Sent(report_id, dump, attachments, annotations)


def put_reports(store: ReportStore, count: int, **kwargs) -> list[Sent]:
    """`count` reports, one minute apart from T0 (across a UTC midnight), oldest first."""
    return [
        put_report(store, seed, T0 + datetime.timedelta(minutes=seed), **kwargs)
        for seed in range(count)
    ]


def listing(backend: Backend) -> dict[str, int]:
    """key -> size of everything under the backend's prefix."""
    paginator = backend.client.get_paginator("list_objects_v2")
    return {
        item["Key"]: item["Size"]
        for page in paginator.paginate(Bucket=backend.bucket, Prefix=backend.prefix)
        for item in page.get("Contents", [])
    }


def keys_by_report(store: ReportStore) -> dict[str, dict[str, int]]:
    """report id -> {key: size} of its metadata and parts, from the classified listing."""
    objects = list(store.iter_objects())
    owner = {o.claim: o.summary.id for o in objects if o.kind == "report"}
    found: dict[str, dict[str, int]] = {}
    for o in objects:
        if o.kind in ("report", "part") and o.claim in owner:
            found.setdefault(owner[o.claim], {})[o.key] = o.size
    return found


def report_bytes(layout: dict[str, dict[str, int]], ids: list[str]) -> int:
    return sum(sum(layout[report_id].values()) for report_id in ids)


def assert_stored_whole(store: ReportStore, sent: Sent) -> None:
    stored = store.get(sent.id)
    with store.open_dump(stored) as stream:
        assert stream.read() == sent.dump
    for index, name in enumerate(sent.attachments):
        with store.open_attachment(stored, index) as stream:
            assert stream.read() == sent.attachments[name]


def assert_gone(store: ReportStore, report_id: str) -> None:
    with pytest.raises(ReportNotFound):
        store.get(report_id)


def fail_upload_before_commit(
    backend: Backend, store: ReportStore, seed: int, **kwargs
) -> dict[str, int]:
    """Store a report, then drop its metadata: the parts of an upload that died. -> parts."""
    sent = put_report(store, seed, **kwargs)
    keys = keys_by_report(store)[sent.id]
    meta_key = next(o.key for o in store.iter_objects() if o.kind == "report"
                    and o.summary.id == sent.id)
    backend.client.delete_object(Bucket=backend.bucket, Key=meta_key)
    return {key: size for key, size in keys.items() if key != meta_key}


# -- what goes -----------------------------------------------------------------------


def test_over_the_limit_exactly_the_oldest_go_and_the_newest_stay_byte_exact(backend) -> None:
    store = backend.store()
    sent = put_reports(store, 6)
    layout = keys_by_report(store)
    before = listing(backend)
    ids = [s.id for s in sent]
    assert ids == sorted(ids)
    newest_three = report_bytes(layout, ids[3:])
    store.requests.clear()

    result = pruning.prune_to_limit(store, newest_three, orphan_grace_seconds=HOUR)

    after = listing(backend)
    summary_key = backend.prefix + "summary.json"
    signatures_key = backend.prefix + "signatures.json"
    gone = {key for report_id in ids[:3] for key in layout[report_id]}
    assert set(after) == (set(before) - gone) | {summary_key, signatures_key}
    assert {k: v for k, v in after.items() if k not in (summary_key, signatures_key)} == {
        k: v for k, v in before.items() if k not in gone
    }
    written = (summary_key, signatures_key)
    assert sum(size for key, size in after.items() if key not in written) == newest_three
    for old in sent[:3]:
        assert_gone(store, old.id)
    for new in sent[3:]:
        assert_stored_whole(store, new)
    assert result.deleted_ids == ids[:3]
    assert result.newest_deleted_id == ids[2]
    assert result.reports_deleted == 3
    assert result.bytes_before == report_bytes(layout, ids) == sum(before.values())
    assert result.bytes_after == newest_three <= result.limit_bytes
    # Markers and attachments in one batch, the claims (dumps) after them in another.
    assert result.s3_requests == {"ListObjectsV2": 1, "DeleteObjects": 2, "PutObject": 2}
    assert store.get_summary()["oldest_id"] == ids[3]


def test_one_byte_under_the_newest_reports_takes_one_more(backend) -> None:
    store = backend.store()
    sent = put_reports(store, 4)
    layout = keys_by_report(store)
    ids = [s.id for s in sent]
    limit = report_bytes(layout, ids[2:]) - 1

    result = pruning.prune_to_limit(store, limit, orphan_grace_seconds=HOUR)

    assert result.deleted_ids == ids[:3]
    assert sorted(keys_by_report(store)) == [ids[3]]
    assert_stored_whole(store, sent[3])
    assert result.bytes_after == report_bytes(layout, ids[3:]) <= limit


def test_at_the_limit_nothing_is_deleted_and_the_summary_counts_every_report(backend) -> None:
    store = backend.store()
    sent = [
        put_report(store, 1, T0, product="Jami", version="1.0", platform="linux"),
        put_report(store, 2, T0 + datetime.timedelta(minutes=5), product="Jami",
                   version="2.0", platform="win64"),
        put_report(store, 3, T0 + datetime.timedelta(minutes=15), product="Other",
                   version="2.0", platform="linux"),
    ]
    before = listing(backend)
    now = datetime.datetime(2026, 11, 3, 8, 0, tzinfo=datetime.timezone.utc)

    result = pruning.prune_to_limit(store, sum(before.values()), HOUR, now=now)

    after = listing(backend)
    summary_key = backend.prefix + "summary.json"
    signatures_key = backend.prefix + "signatures.json"
    assert {k: v for k, v in after.items() if k not in (summary_key, signatures_key)} == before
    assert result.reports_deleted == 0 and result.deleted_ids == []
    assert result.bytes_before == result.bytes_after == sum(before.values())
    assert "DeleteObjects" not in result.s3_requests
    summary = json.loads(backend.read(summary_key))
    assert summary == store.get_summary() == result.summary
    assert summary == {
        "schema": 1,
        "generated_at": "2026-11-03T08:00:00.000Z",
        "total_reports": 3,
        "total_bytes": sum(before.values()),
        "oldest_id": sent[0].id,
        "newest_id": sent[2].id,
        "by_product": {"Jami": 2, "Other": 1},
        "by_version": {"1.0": 1, "2.0": 2},
        "by_platform": {"linux": 2, "win64": 1},
        "by_day": {"2026-11-01": 2, "2026-11-02": 1},
        "omitted": {"by_product": 0, "by_version": 0, "by_platform": 0},
    }
    for each in sent:
        assert_stored_whole(store, each)


def test_under_the_limit_nothing_is_deleted(backend) -> None:
    store = backend.store()
    sent = put_reports(store, 3)
    before = listing(backend)

    result = pruning.prune_to_limit(store, 10 * MIB, HOUR)

    assert {k: v for k, v in listing(backend).items() if not k.endswith(WRITTEN)} == before
    assert result.reports_deleted == 0 and result.orphans_removed == 0
    for each in sent:
        assert_stored_whole(store, each)


def test_empty_bucket(backend) -> None:
    store = backend.store()

    result = pruning.prune_to_limit(store, 0, HOUR)

    assert list(listing(backend)) == [backend.prefix + name for name in WRITTEN]
    assert (result.objects_scanned, result.bytes_before, result.bytes_after) == (0, 0, 0)
    assert result.s3_requests == {"ListObjectsV2": 1, "PutObject": 2}
    summary = store.get_summary()
    assert (summary["total_reports"], summary["total_bytes"], summary["newest_id"]) == (0, 0, None)


def test_keys_outside_the_layout_are_never_counted_nor_touched(backend) -> None:
    store = backend.store()
    sent = put_reports(store, 2)
    unrelated = {
        backend.prefix + "notes.txt": b"kept by someone else",
        backend.prefix + "reports/README": b"not a report key",
        backend.prefix + "parts/not-a-claim.dmp": b"MDMP not ours",
    }
    sibling = backend.prefix.rstrip("/") + "-sibling/reports/x.json"
    for key, body in {**unrelated, sibling: b"{}"}.items():
        backend.client.put_object(Bucket=backend.bucket, Key=key, Body=body)
    layout = keys_by_report(store)

    result = pruning.prune_to_limit(store, 0, HOUR)

    assert result.deleted_ids == [s.id for s in sent]
    assert result.other_keys == 3
    assert result.bytes_before == report_bytes(layout, [s.id for s in sent])
    assert set(listing(backend)) == set(unrelated) | {backend.prefix + name for name in WRITTEN}
    for key, body in unrelated.items():
        assert backend.read(key) == body
    assert backend.read(sibling) == b"{}"


def test_dry_run_deletes_and_writes_nothing_but_says_what_would_go(backend) -> None:
    store = backend.store()
    sent = put_reports(store, 3)
    layout = keys_by_report(store)
    before = listing(backend)

    result = pruning.prune_to_limit(store, report_bytes(layout, [sent[2].id]), HOUR,
                                    dry_run=True)

    assert listing(backend) == before
    assert result.dry_run and result.deleted_ids == [sent[0].id, sent[1].id]
    assert [set(keys) for _, keys in result.deleted_reports] == [
        set(layout[sent[0].id]), set(layout[sent[1].id])
    ]
    assert result.s3_requests == {"ListObjectsV2": 1}


# -- uploads without a commit ----------------------------------------------------------


def test_orphans_older_than_the_grace_period_go_and_younger_ones_stay(backend) -> None:
    store = backend.store()
    committed = put_report(store, 1)
    old_parts = fail_upload_before_commit(backend, store, 2)
    time.sleep(3)  # listings give seconds; the grace below is 2
    young_parts = fail_upload_before_commit(backend, store, 3)
    now = datetime.datetime.now(datetime.timezone.utc)
    before = listing(backend)

    result = pruning.prune_to_limit(store, 10 * MIB, orphan_grace_seconds=2, now=now)

    after = listing(backend)
    written = {backend.prefix + name for name in WRITTEN}
    assert set(after) == (set(before) - set(old_parts)) | written
    assert set(young_parts) <= set(after)
    assert result.orphans_removed == len(old_parts) == 2
    assert result.orphan_bytes == sum(old_parts.values())
    assert sorted(result.orphan_keys) == sorted(old_parts)
    assert result.in_progress_uploads == 1
    assert result.reports_deleted == 0
    assert_stored_whole(store, committed)
    assert result.summary["total_reports"] == 1


def test_uploads_in_progress_are_counted_but_never_deleted(backend) -> None:
    store = backend.store()
    sent = put_reports(store, 2)
    in_progress = fail_upload_before_commit(backend, store, 9)

    result = pruning.prune_to_limit(store, 0, orphan_grace_seconds=HOUR)

    assert result.deleted_ids == [s.id for s in sent]
    assert result.in_progress_uploads == 1 and result.orphans_removed == 0
    assert result.bytes_after == sum(in_progress.values())
    assert {k: v for k, v in listing(backend).items() if not k.endswith(WRITTEN)} \
        == in_progress

    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=2)
    result = pruning.prune_to_limit(store, 0, orphan_grace_seconds=HOUR, now=later)

    assert result.orphans_removed == 2 and result.orphan_bytes == sum(in_progress.values())
    assert list(listing(backend)) == [backend.prefix + name for name in WRITTEN]


def test_a_stale_report_sharing_its_claim_goes_without_the_newer_reports_parts(backend) -> None:
    """A report whose dump was lost (a failed delete batch) and that the client then sent
    again gets a new id under the same claim; pruning the stale one must spare the new."""
    store = backend.store()
    guid, report_uuid = str(uuid.uuid4()), str(uuid.uuid4())
    first = put_report(store, 5, T0, report_uuid=report_uuid, guid=guid)
    dump_key = next(o.key for o in store.iter_objects() if o.key.endswith(".dmp"))
    backend.client.delete_object(Bucket=backend.bucket, Key=dump_key)
    again = put_report(store, 5, T0 + datetime.timedelta(hours=1), report_uuid=report_uuid,
                       guid=guid)
    assert again.id > first.id
    objects = list(store.iter_objects())
    stale_key = next(o.key for o in objects if o.kind == "report" and o.summary.id == first.id)
    newest_bytes = sum(o.size for o in objects if o.key != stale_key)

    result = pruning.prune_to_limit(store, newest_bytes, HOUR)

    assert result.deleted_reports == [(first.id, [stale_key])]
    assert stale_key not in listing(backend)
    assert_stored_whole(store, again)


# -- cost ----------------------------------------------------------------------------


@pytest.mark.parametrize("claims", [999, 1000, 1001])
def test_deletes_go_in_batches_of_1000_keys(moto_backend, claims) -> None:
    """Claims (first attempts' dumps) go in batches of their own, after every other key."""
    store = moto_backend.store()
    reports, orphans = claims - 1, 1  # each report: metadata and dump; an orphan: its dump
    for seed in range(reports):
        put_report(store, seed, attachments={})
    for seed in range(orphans):
        fail_upload_before_commit(moto_backend, store, 10_000 + seed, attachments={})
    deleted_keys = claims + reports
    assert len(listing(moto_backend)) == deleted_keys
    store.requests.clear()
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=2)

    result = pruning.prune_to_limit(store, 0, HOUR, now=later)

    assert result.reports_deleted == reports and result.orphans_removed == orphans
    assert result.objects_scanned == deleted_keys
    assert store.requests["DeleteObjects"] == math.ceil(reports / 1000) + math.ceil(claims / 1000)
    # and a HEAD and a list per orphan claim, which a retry may have committed since
    assert store.requests["ListObjectsV2"] == math.ceil(deleted_keys / 1000) + orphans
    assert store.requests["HeadObject"] == orphans
    assert result.s3_requests == dict(store.requests)
    assert list(listing(moto_backend)) == [moto_backend.prefix + name for name in WRITTEN]


def test_the_run_logs_one_json_line(backend, caplog) -> None:
    store = backend.store()
    put_reports(store, 2)
    caplog.set_level(logging.INFO, logger="pruning")

    result = pruning.prune_to_limit(store, 0, HOUR)

    lines = [r.getMessage() for r in caplog.records if r.name == "pruning"]
    assert len(lines) == 1
    logged = json.loads(lines[0])
    assert set(logged) == {
        "objects_scanned", "bytes_before", "bytes_after", "limit_bytes", "reports_deleted",
        "orphans_removed", "orphan_bytes", "in_progress_uploads", "other_keys",
        "processing_orphans_removed", "unprocessed", "s3_requests", "duration_ms", "dry_run",
        "newest_deleted_id",
    }
    assert logged["objects_scanned"] == 6 and logged["reports_deleted"] == 2
    assert logged["bytes_after"] == 0 and logged["limit_bytes"] == 0
    assert logged["s3_requests"] == {"ListObjectsV2": 1, "DeleteObjects": 2, "PutObject": 2}
    assert logged == json.loads(result.as_log_line())


# -- while clients submit --------------------------------------------------------------


@pytest.mark.slow
def test_pruning_while_four_clients_submit_loses_no_report_newer_than_the_cut(
    live_servers, backend
) -> None:
    servers = live_servers(backend)
    store = backend.store(retry_seconds=10)
    accepted: dict[str, bytes] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def client(number: int) -> int:
        sent = 0
        while not stop.is_set() or sent < 8:
            dump = forms.fake_dump(3000 + sent, seed=number * 1000 + sent)
            body, headers, query = forms.crashpad_form({"platform": "linux"}, dump=dump)
            response = requests.post(servers.submit_url, data=forms.chunked(body),
                                     headers=headers, params=query, timeout=30)
            assert response.status_code == 200, response.text
            with lock:
                accepted[response.text] = dump
            sent += 1
        return sent

    runs = []
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        clients = [pool.submit(client, number) for number in range(4)]
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            runs.append(pruning.prune_to_limit(store, 30_000, HOUR))  # about 8 reports
        stop.set()
        sent = sum(c.result() for c in clients)

    assert len(accepted) == sent >= 32
    cuts = [run.newest_deleted_id for run in runs if run.newest_deleted_id]
    assert cuts, "no run had anything to delete"
    for run in runs:
        if run.newest_deleted_id and run.summary["oldest_id"]:
            assert run.summary["oldest_id"] > run.newest_deleted_id
    cut = max(cuts)
    newer = [report_id for report_id in accepted if report_id > cut]
    assert newer, "every accepted report was at or below the cut"
    for report_id in newer:
        assert_stored_whole(store, Sent(report_id, accepted[report_id], {}, {}))
    for run in runs:
        for report_id in run.deleted_ids:
            assert_gone(store, report_id)
    # whatever is listed is whole: no report left without its dump
    for report_id in keys_by_report(store):
        if report_id in accepted:
            assert_stored_whole(store, Sent(report_id, accepted[report_id], {}, {}))


# -- the schedule and the command ------------------------------------------------------

SCHEDULED = {"detail-type": "Scheduled Event", "source": "local.schedule", "detail": {},
             "time": "", "region": "local", "resources": [], "account": "", "id": "",
             "version": "0"}


def test_scheduled_handler_prunes_through_chalices_test_client(backend, app_env, caplog) -> None:
    store = backend.store()
    sent = put_reports(store, 4)
    layout = keys_by_report(store)
    keep = report_bytes(layout, [sent[3].id])
    application = app_env(backend, MAX_REPORTS_SIZE_MB=str(keep / MIB))
    caplog.set_level(logging.INFO, logger="pruning")

    with Client(application.app) as client:
        event = client.events.generate_cw_event(
            source="aws.events", detail_type="Scheduled Event", detail={}, resources=[]
        )
        client.lambda_.invoke("prune", event)

    assert sorted(keys_by_report(store)) == [sent[3].id]
    assert_stored_whole(store, sent[3])
    assert store.get_summary()["total_reports"] == 1
    logged = [json.loads(r.getMessage()) for r in caplog.records if r.name == "pruning"]
    assert [line["reports_deleted"] for line in logged] == [3]


def test_local_run_calls_the_schedule_the_same_way(backend, app_env) -> None:
    store = backend.store()
    sent = put_reports(store, 3)
    application = app_env(backend, MAX_REPORTS_SIZE_MB="0.001")

    application.prune(SCHEDULED, None)  # as chalicelib.localrun.run_schedule does

    for each in sent:
        assert_gone(store, each.id)
    assert list(listing(backend)) == [backend.prefix + name for name in WRITTEN]


def test_command_line_dry_run_prints_what_would_go_then_prunes(backend, app_env, capsys) -> None:
    store = backend.store()
    sent = put_reports(store, 3)
    layout = keys_by_report(store)
    before = listing(backend)
    app_env(backend)

    assert pruning.main(["--dry-run", "--max-mb", "0"]) == 0

    out = capsys.readouterr().out.splitlines()
    assert listing(backend) == before
    assert [line for line in out if line.startswith("would delete report")] == [
        f"would delete report {s.id}" for s in sent
    ]
    assert {line.strip() for line in out if line.startswith("  ")} == set(before)
    assert set().union(*layout.values()) == set(before)
    logged = json.loads(out[-1])
    assert logged["dry_run"] is True and logged["reports_deleted"] == 3

    assert pruning.main(["--max-mb", "0"]) == 0

    assert json.loads(capsys.readouterr().out)["reports_deleted"] == 3
    assert list(listing(backend)) == [backend.prefix + name for name in WRITTEN]


@pytest.mark.seaweedfs
def test_documented_command_runs_as_a_module(seaweed_backend) -> None:
    store = seaweed_backend.store()
    sent = put_reports(store, 2)
    before = listing(seaweed_backend)
    env = {**os.environ, **seaweed_backend.env()}

    done = subprocess.run(
        [sys.executable, "-m", "chalicelib.pruning", "--dry-run", "--max-mb", "0"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )

    assert done.returncode == 0, done.stderr
    assert f"would delete report {sent[0].id}" in done.stdout.splitlines()
    assert json.loads(done.stdout.splitlines()[-1])["reports_deleted"] == 2
    assert listing(seaweed_backend) == before


def test_a_report_with_over_100_attachments_goes_whole(moto_backend) -> None:
    store = moto_backend.store()
    many = {f"f{i:03d}.log": b"x" for i in range(105)}
    put_report(store, 1, T0, attachments=many)
    assert len(moto_backend.keys()) == 1 + 1 + 105
    result = pruning.prune_to_limit(store, 0, HOUR, now=T0)
    assert result.reports_deleted == 1
    assert moto_backend.keys() == [moto_backend.prefix + name for name in WRITTEN]


def test_a_report_key_with_other_facts_keeps_its_parts(moto_backend) -> None:
    """A key written with another FACT_FIELDS is still a report: its dump is no orphan."""
    store = moto_backend.store()
    sent = put_report(store, 1, T0)
    old_key = next(k for k in moto_backend.keys() if "/reports/" in k)
    inv, claim, *_ = old_key.rsplit("/", 1)[1].split("~")
    fewer_facts_key = f"{moto_backend.prefix}reports/{inv}~{claim}~Jami~1%2E0~1500.json"
    moto_backend.client.copy_object(Bucket=moto_backend.bucket, Key=fewer_facts_key,
                                    CopySource={"Bucket": moto_backend.bucket, "Key": old_key})
    moto_backend.client.delete_object(Bucket=moto_backend.bucket, Key=old_key)
    result = pruning.prune_to_limit(store, 10 * MIB, 0, now=T0 + datetime.timedelta(days=9))
    assert result.orphans_removed == 0 and result.reports_deleted == 0
    assert_stored_whole(store, sent)
    summary = next(iter(store.iter_newest()))
    assert summary.facts["product"] == "Jami" and summary.facts["guid"] == ""


def test_orphans_go_on_the_listing_alone_claims_last(moto_backend) -> None:
    """No retry writes to a listed stem, so the listing decides: no HEAD per orphan part,
    and the claim (the dump) is deleted after every other key of the run, once a HEAD
    and a list show that no retry has committed its report since."""
    store = moto_backend.store()
    put_report(store, 1, T0)
    meta_key = next(k for k in moto_backend.keys() if "/reports/" in k)
    moto_backend.client.delete_object(Bucket=moto_backend.bucket, Key=meta_key)
    parts = moto_backend.keys()
    deleted: list[list[str]] = []
    moto_backend.client.meta.events.register(
        "before-parameter-build.s3.DeleteObjects",
        lambda params, **_: deleted.append([o["Key"] for o in params["Delete"]["Objects"]]),
    )
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=3)
    result = pruning.prune_to_limit(store, 10 * MIB, HOUR, now=later)
    assert result.orphans_removed == 2 and result.orphan_bytes > 1500
    assert result.s3_requests["HeadObject"] == 1  # the claim's, just before its delete
    assert result.s3_requests["ListObjectsV2"] == 2  # the run's listing, and that check
    assert result.s3_requests["DeleteObjects"] == 2
    assert deleted == [[k for k in parts if k.endswith(".log")],
                       [k for k in parts if k.endswith(".dmp")]]
    assert moto_backend.keys() == [moto_backend.prefix + n for n in WRITTEN]
