"""ReportStore's contract, run on moto (AWS semantics) and on a real SeaweedFS."""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import re
import uuid

import pytest
from botocore.exceptions import ClientError

from chalicelib import report
from chalicelib.store import ReportNotFound, ReportStore, StoreError, StoreUnavailable, inverted
from chalicelib.submission import Limits, parse_submission
from tests.testlib import forms

LIMITS = Limits(64 * 1024 * 1024, 512, 65536)
T0 = datetime.datetime(2026, 11, 1, 12, 0, tzinfo=datetime.timezone.utc)


def submission(received_at=None, **kwargs):
    body, headers, query = forms.crashpad_form(**kwargs)
    return parse_submission(
        io.BytesIO(body), {k.lower(): v for k, v in headers.items()}, query, LIMITS,
        received_at=received_at,
    )


def test_put_stores_dump_attachments_and_metadata_byte_exact(backend) -> None:
    store = backend.store()
    dump = forms.fixture_dump("windows-x86-breakpad-access-violation.dmp")
    annotations = {"platform": "win64", "client_sha": "c" * 40, "jamicore_sha": "j" * 40,
                   "build_id": "b-17", "prod": "Jami", "ver": "2.0", "x": "<script>'\"\n"}
    with submission(annotations=annotations, dump=dump,
                    attachments={"att.txt": b"one", "zz.log": b"two"}) as sub:
        report_id = store.put(sub)
    assert report.is_report_id(report_id)

    keys = backend.keys()
    assert len(keys) == 4
    meta_key = next(k for k in keys if "/reports/" in k)
    meta = json.loads(backend.read(meta_key))
    assert meta["id"] == report_id
    assert {k: meta["annotations"][k] for k in annotations} == annotations
    assert meta["dump"] == {"filename": f"{sub.crashpad_uuid}.dmp", "size": len(dump),
                            "sha256": hashlib.sha256(dump).hexdigest()}
    assert [(a["name"], a["size"]) for a in meta["attachments"]] == [("att.txt", 3), ("zz.log", 3)]
    assert meta["facts"]["product"] == "Jami" and meta["facts"]["platform"] == "win64"
    assert meta["received_at"].endswith("Z")

    stored = store.get(report_id)
    assert stored.meta == meta
    with store.open_dump(stored) as stream:
        assert stream.read() == dump
    assert store.open_attachment(stored, 1).read() == b"two"
    head = backend.client.head_object(Bucket=backend.bucket, Key=meta_key)
    assert "ContentEncoding" not in head


def test_same_report_twice_is_stored_once_with_the_same_id(backend) -> None:
    store = backend.store()
    guid, report_uuid = str(uuid.uuid4()), str(uuid.uuid4())
    with submission(guid=guid, report_uuid=report_uuid) as first:
        id1 = store.put(first)
    with submission(guid=guid, report_uuid=report_uuid) as again:
        id2 = store.put(again)
    assert id1 == id2
    assert len(backend.keys()) == 2


def test_same_dump_without_uuid_within_a_day_is_one_report(backend) -> None:
    store = backend.store()
    guid = str(uuid.uuid4())
    with submission(guid=guid, report_uuid="not-a-uuid", received_at=T0) as first:
        id1 = store.put(first)
    later = T0 + datetime.timedelta(hours=23)  # the next UTC day
    with submission(guid=guid, report_uuid="not-a-uuid", received_at=later) as again:
        assert store.put(again) == id1
    much_later = T0 + datetime.timedelta(hours=25)
    with submission(guid=guid, report_uuid="not-a-uuid", received_at=much_later) as third:
        assert store.put(third) != id1


def test_different_reports_get_different_ids(backend) -> None:
    store = backend.store()
    guid = str(uuid.uuid4())
    ids = set()
    for _ in range(3):
        with submission(guid=guid) as sub:
            ids.add(store.put(sub))
    assert len(ids) == 3


def test_retry_finishes_a_report_whose_first_attempt_died(backend) -> None:
    """A dump claimed without metadata (the first attempt died) is completed by the retry."""
    store = backend.store()
    guid, report_uuid = str(uuid.uuid4()), str(uuid.uuid4())
    with submission(guid=guid, report_uuid=report_uuid) as sub:
        first_id = store.put(sub)
    meta_key = next(k for k in backend.keys() if "/reports/" in k)
    backend.client.delete_object(Bucket=backend.bucket, Key=meta_key)
    with pytest.raises(ReportNotFound):
        store.get(first_id)
    with submission(guid=guid, report_uuid=report_uuid) as retry:
        assert store.put(retry) == first_id
    assert store.get(first_id).meta["id"] == first_id


def test_newest_first_and_cursor_pages_agree_with_byte_order(backend) -> None:
    store = backend.store()
    ids = []
    for minutes in [0, 1, 2, 10, 100, 1000]:
        with submission(received_at=T0 + datetime.timedelta(minutes=minutes),
                        annotations={"platform": f"p{minutes}"}) as sub:
            ids.append(store.put(sub))
    newest_first = sorted(ids, reverse=True)
    listed = [s.id for s in store.iter_newest(page_size=2)]
    assert listed == newest_first
    after_third = [s.id for s in store.iter_newest(older_than=newest_first[2])]
    assert after_third == newest_first[3:]
    window = [s.id for s in store.iter_newest(older_than=newest_first[0],
                                              newer_than=newest_first[4])]
    assert window == newest_first[1:4]
    summary = next(iter(store.iter_newest()))
    assert summary.facts["platform"] == "p1000"
    assert summary.dump_size == len(forms.fixture_dump())


def test_hostile_values_stay_inside_their_key_part(backend) -> None:
    store = backend.store()
    hostile = {"platform": "../../x~y/z\r\nSet-Cookie: a", "prod": "%2e%2e/" + "é" * 200,
               "client_sha": "\x00nul"}
    with submission(annotations=hostile, attachments={"../../evil name%00;.txt": b"a"}) as sub:
        report_id = store.put(sub)
    keys = backend.keys()
    assert all(key.startswith(backend.prefix) for key in keys)
    assert all("\r" not in k and "\n" not in k and "\x00" not in k and ".." not in k
               for k in keys)
    summary = next(iter(store.iter_newest()))
    assert summary.id == report_id
    assert summary.facts["platform"] == hostile["platform"]
    assert summary.facts["client_sha"] == "\x00nul"
    assert "product" in summary.truncated
    assert store.get(report_id).meta["annotations"]["prod"] == hostile["prod"]
    assert store.open_attachment(store.get(report_id), 0).read() == b"a"


def test_unknown_or_malformed_id_is_not_found(backend) -> None:
    store = backend.store()
    for bad in ["0" * 16, "../etc/passwd", "ABCDEF0123456789", ""]:
        with pytest.raises(ReportNotFound):
            store.get(bad)


def test_delete_keys_batches_of_1000(moto_backend) -> None:
    store = moto_backend.store()
    for n, batches in [(999, 1), (1000, 1), (1001, 2)]:
        keys = [f"{moto_backend.prefix}junk/{n}/{i:05d}" for i in range(n)]
        for key in keys:
            moto_backend.client.put_object(Bucket=moto_backend.bucket, Key=key, Body=b"")
        store.requests.clear()
        assert store.delete_keys(keys) == n
        assert store.requests["DeleteObjects"] == batches
        assert moto_backend.keys(f"{moto_backend.prefix}junk/{n}/") == []


def test_unreachable_storage_raises_unavailable_after_the_budget(aws_env) -> None:
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3", endpoint_url="http://127.0.0.1:9", region_name="us-east-1",
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=0.2),
    )
    store = ReportStore(client, "crash-reports", "", retry_seconds=0.5)
    with submission() as sub, pytest.raises(StoreUnavailable):
        store.put(sub)
    assert store.requests["PutObject"] >= 2  # it retried


def test_inverted_order() -> None:
    assert inverted("0000000000000000") == "ffffffffffffffff"
    assert inverted("1a213eb976185d19") > inverted("1a213eb976185d1a")


def test_a_conditional_write_conflict_is_retried(moto_backend) -> None:
    """S3 answers 409 ConditionalRequestConflict to racing conditional PUTs: retry it."""
    store = moto_backend.store()
    real_put = moto_backend.client.put_object
    conflicts = []

    def put_object(**kwargs):
        if kwargs.get("IfNoneMatch") and not conflicts:
            conflicts.append(kwargs["Key"])
            raise ClientError({"Error": {"Code": "ConditionalRequestConflict"},
                               "ResponseMetadata": {"HTTPStatusCode": 409}}, "PutObject")
        return real_put(**kwargs)

    class Client:
        def __getattr__(self, name):
            return put_object if name == "put_object" else getattr(moto_backend.client, name)

    store.s3 = Client()
    with submission() as sub:
        report_id = store.put(sub)
    assert conflicts and store.get(report_id).meta["id"] == report_id


def test_resuming_a_dead_attempt_writes_only_new_keys(backend) -> None:
    """A retry that finds the claim but no report writes under <claim>-<attempt>: keys a
    pruning run cannot have listed. The old parts stay as they were."""
    from chalicelib.store import KEY_SEGMENT_BYTES

    store = backend.store()
    guid, report_uuid = str(uuid.uuid4()), str(uuid.uuid4())
    long = {"prod": "P" * 300, "build_id": "b" * 300}
    with submission(guid=guid, report_uuid=report_uuid, annotations=long,
                    attachments={"att.txt": b"one"}) as sub:
        first_id = store.put(sub)
    meta_key = next(k for k in backend.keys() if "/reports/" in k)
    backend.client.delete_object(Bucket=backend.bucket, Key=meta_key)
    old = {k: backend.client.head_object(Bucket=backend.bucket, Key=k)["ETag"]
           for k in backend.keys()}
    claim = meta_key.rsplit("/", 1)[1].split("~")[1]
    with submission(guid=guid, report_uuid=report_uuid, annotations=long,
                    attachments={"att.txt": b"one"}) as retry:
        assert store.put(retry) == first_id
    new = sorted(set(backend.keys()) - set(old))
    assert len(new) == 3
    stem = new[0].rsplit("/", 1)[1].split(".")[0]
    assert re.fullmatch(claim + "-[0-9a-f]{16}", stem)
    assert new == sorted([f"{backend.prefix}parts/{stem}.a00.att.txt",
                          f"{backend.prefix}parts/{stem}.dmp"] + [
        k for k in new if "/reports/" in k])
    report_name = next(k for k in new if "/reports/" in k).rsplit("/", 1)[1]
    assert report_name.split("~")[1] == stem
    assert len(report_name.encode()) <= KEY_SEGMENT_BYTES
    assert {k: backend.client.head_object(Bucket=backend.bucket, Key=k)["ETag"]
            for k in old} == old
    stored = store.get(first_id)
    assert stored.claim == stem
    assert store.open_dump(stored).read() == backend.read(f"{backend.prefix}parts/{claim}.dmp")
    assert store.open_attachment(stored, 0).read() == b"one"
    summary = next(iter(store.iter_newest()))
    assert (summary.id, summary.claim, summary.base_claim) == (first_id, stem, claim)
    assert summary.facts["product"].startswith("PPP") and "product" in summary.truncated
    with submission(guid=guid, report_uuid=report_uuid, annotations=long,
                    attachments={"att.txt": b"one"}) as again:
        assert store.put(again) == first_id
    assert len(backend.keys()) == len(old) + 3


def test_two_markers_of_one_id_list_once(backend) -> None:
    """Two attempts that both committed (a retry resumed while the first still ran)."""
    store = backend.store()
    with submission() as sub:
        report_id = store.put(sub)
    (key,) = [k for k in backend.keys() if "/reports/" in k]
    inv, claim, rest = key.rsplit("/", 1)[1].split("~", 2)
    twin = f"{backend.prefix}reports/{inv}~{claim}-{'0' * 16}~{rest}"
    backend.client.copy_object(Bucket=backend.bucket, Key=twin,
                               CopySource={"Bucket": backend.bucket, "Key": key})
    assert [s.id for s in store.iter_newest()] == [report_id]
    assert store.get(report_id).meta["id"] == report_id


def test_a_missing_bucket_is_a_store_error(moto_backend) -> None:
    store = moto_backend.store(prefix="")
    store.bucket = "no-such-bucket"
    with submission() as sub, pytest.raises(StoreError, match="not found"):
        store.put(sub)


def test_every_fact_at_its_longest_still_fits_a_key_part(backend) -> None:
    """SeaweedFS refuses key parts over 255 bytes: seven long facts must still store."""
    from chalicelib.store import KEY_SEGMENT_BYTES

    store = backend.store()
    long = {"prod": "P" * 300, "ver": "1." * 150, "platform": "linux-" + "x" * 300,
            "build_id": "b" * 300, "client_sha": "c" * 300, "jamicore_sha": "d" * 300}
    with submission(annotations=long) as sub:
        report_id = store.put(sub)
    (key,) = [k for k in backend.keys() if "/reports/" in k]
    assert len(key.rsplit("/", 1)[1].encode()) <= KEY_SEGMENT_BYTES
    summary = next(iter(store.iter_newest()))
    assert summary.id == report_id and summary.dump_size > 0
    # All cut to one common length, the client guid (36 characters) too.
    assert summary.truncated == {"product", "version", "platform", "build_id", "client_sha",
                                 "jamicore_sha", "guid"}
    for field, name in [("product", "prod"), ("build_id", "build_id")]:
        assert long[name].startswith(summary.facts[field]) and summary.facts[field]
    assert store.get(report_id).meta["annotations"]["platform"] == long["platform"]


def test_concurrent_uploads_of_one_report_answer_one_id_and_list_once(seaweed_backend) -> None:
    """Attempts that overlap resume the first one's claim: one id, one listed report.

    On SeaweedFS only: moto checks If-None-Match and writes in two steps, so threads can
    both win a claim there, which no real S3 allows.
    """
    import concurrent.futures

    store = seaweed_backend.store(retry_seconds=30)  # six at once on a loaded machine
    guid, report_uuid = str(uuid.uuid4()), str(uuid.uuid4())
    dump = forms.fake_dump(300_000, 5)

    def send(_: int) -> str:
        with submission(guid=guid, report_uuid=report_uuid, dump=dump,
                        attachments={"att.txt": b"one"}) as sub:
            return store.put(sub)

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        ids = set(pool.map(send, range(6)))
    assert len(ids) == 1
    (report_id,) = ids
    assert [s.id for s in store.iter_newest()] == [report_id]
    stored = store.get(report_id)
    assert store.open_dump(stored).read() == dump
    assert store.open_attachment(stored, 0).read() == b"one"
