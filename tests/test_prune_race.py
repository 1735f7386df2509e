"""A retry racing a pruning run, made to happen: the run is held just before it deletes
(a botocore hook before each DeleteObjects) until the retry has been answered, then let go.

Every retry answered with an id must leave that report whole in the bucket, whichever
keys the run had listed: the parts of an upload that never committed (orphans), or a
committed report the run is deleting.
"""

from __future__ import annotations

import datetime
import io
import threading
import uuid

import pytest
from botocore.exceptions import ClientError

from chalicelib import bucket, pruning
from chalicelib.store import ReportNotFound, ReportStore, StoreError
from chalicelib.submission import Limits, parse_submission
from tests.conftest import Backend
from tests.testlib import forms

LIMITS = Limits(64 * 1024 * 1024, 512, 65536)
HOUR = 3600
MIB = 1024 * 1024
WAIT = 30


class Upload:
    """One Crashpad report, sent as often as a test likes (each send is a retry)."""

    def __init__(self, seed: int) -> None:
        self.dump = forms.fake_dump(40_000 + seed, seed)
        self.attachments = {"app.log": f"log {seed}\n".encode() * 50}
        self.body, headers, self.query = forms.crashpad_form(
            {"prod": "Jami", "ver": "1.0", "platform": "linux"}, dump=self.dump,
            attachments=self.attachments, guid=str(uuid.uuid4()), report_uuid=str(uuid.uuid4()),
        )
        self.headers = {k.lower(): v for k, v in headers.items()}

    def send(self, store: ReportStore) -> str:
        with parse_submission(io.BytesIO(self.body), self.headers, self.query, LIMITS) as sub:
            return store.put(sub)

    def assert_whole(self, store: ReportStore, report_id: str) -> None:
        stored = store.get(report_id)
        with store.open_dump(stored) as stream:
            assert stream.read() == self.dump
        with store.open_attachment(stored, 0) as stream:
            assert stream.read() == self.attachments["app.log"]
        assert [s.id for s in store.iter_newest()].count(report_id) == 1


def die_before_commit(backend: Backend, upload: Upload) -> None:
    """The first attempt writes its parts, then the bucket refuses its metadata."""

    def refuse(params, **_):
        if "/reports/" in params["Key"]:
            raise ClientError({"Error": {"Code": "AccessDenied"},
                               "ResponseMetadata": {"HTTPStatusCode": 403}}, "PutObject")

    events = backend.client.meta.events
    events.register("before-parameter-build.s3.PutObject", refuse, unique_id="refuse-commit")
    try:
        with pytest.raises(StoreError):
            upload.send(backend.store())
    finally:
        events.unregister("before-parameter-build.s3.PutObject", unique_id="refuse-commit")
    assert [k for k in backend.keys() if "/reports/" in k] == []


class HeldPruning:
    """A pruning run in a thread, held before its first DeleteObjects that names a key
    ending in `hold_on` (any part by default), until finish()."""

    def __init__(
        self, backend: Backend, max_bytes: int, now: datetime.datetime, hold_on: str = ""
    ) -> None:
        self.hold_on = hold_on
        self.reached, self.released = threading.Event(), threading.Event()
        self.result: pruning.PruneResult | None = None
        self.error: BaseException | None = None
        self.deleted: list[list[str]] = []
        self.events = backend.client.meta.events
        self.events.register(
            "before-parameter-build.s3.DeleteObjects", self._hold, unique_id="hold"
        )
        store = backend.store()
        self.thread = threading.Thread(target=self._run, args=(store, max_bytes, now))
        self.thread.start()
        assert self.reached.wait(WAIT), "the run never came to delete parts"

    def _hold(self, params, **_):
        keys = [item["Key"] for item in params["Delete"]["Objects"]]
        self.deleted.append(keys)
        held = any("/parts/" in key and key.endswith(self.hold_on) for key in keys)
        if held and not self.reached.is_set():
            self.reached.set()
            assert self.released.wait(WAIT)

    def _run(self, store: ReportStore, max_bytes: int, now: datetime.datetime) -> None:
        try:
            self.result = pruning.prune_to_limit(store, max_bytes, HOUR, now=now)
        except BaseException as error:  # noqa: BLE001  (shown by finish())
            self.error = error

    def finish(self) -> pruning.PruneResult:
        self.released.set()
        self.thread.join(WAIT)
        self.events.unregister("before-parameter-build.s3.DeleteObjects", unique_id="hold")
        assert self.error is None, self.error
        assert self.result is not None
        return self.result


def later() -> datetime.datetime:
    """A clock past the grace period of everything stored now."""
    return datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=3)


def test_a_retry_resuming_an_orphan_while_a_run_deletes_it_is_stored_whole(backend) -> None:
    store = backend.store()
    upload = Upload(1)
    die_before_commit(backend, upload)
    orphan_parts = sorted(backend.keys())
    assert len(orphan_parts) == 2  # dump (the claim) and attachment

    held = HeldPruning(backend, 10 * MIB, later())
    report_id = upload.send(store)  # answered while the run holds its delete
    result = held.finish()

    assert result.orphans_removed == 2 and sorted(result.orphan_keys) == orphan_parts
    # The attachment went; the claim is kept, its report committed since the listing.
    claim = next(k for k in orphan_parts if k.endswith(".dmp"))
    assert [k for batch in held.deleted for k in batch if "/parts/" in k] == [
        k for k in orphan_parts if k != claim
    ]
    upload.assert_whole(store, report_id)
    assert set(orphan_parts) & set(backend.keys()) == {claim}
    # The next run finds the resumed report whole, its claim with it, nothing to remove;
    # and a retry after it still answers the first id.
    again = pruning.prune_to_limit(store, 10 * MIB, HOUR, now=later())
    assert (again.orphans_removed, again.reports_deleted) == (0, 0)
    upload.assert_whole(store, report_id)
    assert upload.send(store) == report_id
    assert [s.id for s in store.iter_newest()] == [report_id]


def test_a_retry_of_a_report_whose_marker_a_run_just_deleted_is_stored_whole(
    backend, monkeypatch
) -> None:
    """The run deletes the commit marker first; a retry arriving before the parts go
    finds no report and resumes it: it must not resume under the keys being deleted."""
    monkeypatch.setattr(bucket, "DELETE_BATCH", 1)  # one key per DeleteObjects
    store = backend.store()
    upload = Upload(2)
    first_id = upload.send(store)
    listed = sorted(backend.keys())

    held = HeldPruning(backend, 0, later())
    with pytest.raises(ReportNotFound):
        store.get(first_id)  # the marker is gone, the parts are not yet
    assert upload.send(store) == first_id
    result = held.finish()

    assert result.deleted_ids == [first_id]
    assert {k for batch in held.deleted for k in batch} == set(listed)
    upload.assert_whole(store, first_id)
    assert not set(listed) & set(backend.keys())


def test_a_retry_while_a_run_deletes_the_claim_last_is_stored_whole(backend) -> None:
    """The claim goes in the run's last batch: a retry arriving just before finds it,
    and resumes under a fresh stem rather than under the keys just deleted."""
    store = backend.store()
    upload = Upload(4)
    first_id = upload.send(store)
    listed = sorted(backend.keys())

    held = HeldPruning(backend, 0, later(), hold_on=".dmp")
    assert [k for k in backend.keys() if "/parts/" in k] == [
        k for k in listed if k.endswith(".dmp")]  # all but the claim went first
    assert upload.send(store) == first_id
    result = held.finish()

    assert result.deleted_ids == [first_id]
    assert held.deleted[-1] == [k for k in listed if k.endswith(".dmp")]
    upload.assert_whole(store, first_id)
    assert not set(listed) & set(backend.keys())


def test_a_retry_after_a_dead_first_attempt_keeps_answering_its_id(backend) -> None:
    """The resumed report keeps the claim: counted with it, never an orphan, and every
    later retry answers the same id until the report is pruned whole."""
    store = backend.store()
    upload = Upload(3)
    die_before_commit(backend, upload)
    report_id = upload.send(store)
    assert len(backend.keys()) == 5  # the claim, its attachment, the resumed upload
    result = pruning.prune_to_limit(store, 10 * MIB, HOUR, now=later())
    assert (result.orphans_removed, result.in_progress_uploads) == (0, 0)
    assert result.summary["total_bytes"] == sum(
        item["Size"] for item in backend.client.list_objects_v2(
            Bucket=backend.bucket, Prefix=backend.prefix + "parts/")["Contents"]
    ) + sum(len(backend.read(k)) for k in backend.keys() if "/reports/" in k)
    assert upload.send(store) == report_id
    upload.assert_whole(store, report_id)
    result = pruning.prune_to_limit(store, 0, HOUR, now=later())
    assert result.deleted_ids == [report_id]
    assert [k for k in backend.keys() if "/parts/" in k or "/reports/" in k] == []
