"""kill -9 of the collector in the middle of a burst of uploads, then pruning.

The real local-run server (`python -m chalicelib.localrun --external-s3`) runs in its
own process against the session's SeaweedFS, so killing it leaves the bucket as the
crash left it: every upload answered 200 must be there whole, and the parts of the
uploads cut between their first PUT and their commit are removed by the first pruning
run after the grace period, which counts them. A cut upload sent again to a restarted
collector is finished under a fresh stem with its first id, and keeps its claim.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from chalicelib import pruning
from chalicelib.seaweed import free_port
from tests.conftest import Backend
from tests.testlib import forms

ROOT = Path(__file__).resolve().parents[1]
CLIENTS = 8
ATTACHMENTS = 4
ATTACHMENT_BYTES = 2 * 1024 * 1024
GRACE_SECONDS = 2
MIB = 1024 * 1024


@dataclass
class Sent:
    dump: bytes
    attachments: dict[str, bytes]
    status: int | str = ""
    report_id: str = ""
    form: tuple[bytes, dict[str, str], dict[str, str]] | None = None


def start_collector(backend: Backend, tmp_path: Path) -> tuple[subprocess.Popen, str]:
    """The local run on free ports, against the backend's SeaweedFS and prefix."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(backend.env())
    env.update({
        "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": "us-east-1", "SUBMIT_SERVER_PORT": str(port),
        "REPORTS_SERVER_PORT": str(free_port()), "PROCESSING_WORKERS": "0",
        "PRUNE_RATE_MINUTES": "1440", "STORAGE_RETRY_SECONDS": "5",
    })
    log = (tmp_path / "collector.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "chalicelib.localrun", "--external-s3"], cwd=ROOT, env=env,
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/submit"
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, (tmp_path / "collector.log").read_text()
        try:
            if requests.get(url, timeout=1).status_code == 405:
                return process, url
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline, (tmp_path / "collector.log").read_text()
        time.sleep(0.1)


def send(url: str, sent: Sent) -> None:
    """POST the upload like Crashpad (chunked gzip form); the same form when sent again."""
    sent.form = sent.form or forms.crashpad_form(
        {"prod": "Jami", "ver": "1.0", "platform": "linux"}, dump=sent.dump,
        attachments=sent.attachments,
    )
    body, headers, query = sent.form
    try:
        response = requests.post(url, data=forms.chunked(body), headers=headers, params=query,
                                 timeout=60)
    except requests.RequestException as error:
        sent.status = type(error).__name__
        return
    sent.status = response.status_code
    sent.report_id = response.text if response.status_code == 200 else ""


def leftovers(backend: Backend) -> dict[str, list[str]]:
    """Stem -> part keys, for every stem no reports/ key names: what the kill left.

    Parts are listed before reports, so a stem found is one that had not committed.
    """
    parts = backend.keys(backend.prefix + "parts/")
    committed = {key.rsplit("/", 1)[1].split("~")[1]
                 for key in backend.keys(backend.prefix + "reports/")}
    found: dict[str, list[str]] = {}
    for key in parts:
        stem = key.rsplit("/", 1)[1].split(".")[0]
        if stem not in committed:
            found.setdefault(stem, []).append(key)
    return found


def sizes(backend: Backend) -> dict[str, int]:
    paginator = backend.client.get_paginator("list_objects_v2")
    return {item["Key"]: item["Size"]
            for page in paginator.paginate(Bucket=backend.bucket, Prefix=backend.prefix)
            for item in page.get("Contents", [])}


@pytest.mark.seaweedfs
@pytest.mark.slow
def test_kill_9_mid_burst_every_200_whole_and_leftovers_pruned_and_counted(
    seaweed_backend, tmp_path
) -> None:
    backend = seaweed_backend
    process, url = start_collector(backend, tmp_path)
    rng = random.Random(9)
    stop = threading.Event()
    sent: list[Sent] = []
    lock = threading.Lock()

    def client() -> None:
        while not stop.is_set():
            # Large attachments widen the window between a dump's PUT and its commit.
            item = Sent(forms.fake_dump(256 * 1024, rng.randrange(2**30)), {
                f"log{n}.txt": rng.randbytes(ATTACHMENT_BYTES) for n in range(ATTACHMENTS)})
            with lock:
                sent.append(item)
            send(url, item)
            if not isinstance(item.status, int):
                return  # the collector is gone

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 60
        # Kill once some uploads were answered and two are cut short, one with its dump
        # stored and at most one attachment: several large PUTs away from its commit.
        while not (sum(s.status == 200 for s in sent) >= CLIENTS
                   and len(caught := leftovers(backend)) >= 2
                   and any(len(keys) <= 2 for keys in caught.values())):
            assert time.monotonic() < deadline, "no upload was ever caught between PUTs"
            assert process.poll() is None, (tmp_path / "collector.log").read_text()
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
    finally:
        stop.set()
        if process.poll() is None:
            process.kill()
        for thread in threads:
            thread.join(70)

    answered = [s for s in sent if s.status == 200]
    cut = [s for s in sent if s.status != 200]
    assert len(answered) >= CLIENTS and cut
    assert all(not isinstance(s.status, int) for s in cut), [s.status for s in cut]
    store = backend.store()
    for item in answered:
        stored = store.get(item.report_id)
        with store.open_dump(stored) as stream:
            assert stream.read() == item.dump
        for index, name in enumerate(sorted(item.attachments)):
            assert stored.attachments[index]["name"] == name
            with store.open_attachment(stored, index) as stream:
                assert stream.read() == item.attachments[name]

    left = leftovers(backend)
    assert len(left) >= 2 and len(left) <= len(cut)
    # Within the grace period the cut uploads count as in progress: nothing goes.
    early = pruning.prune_to_limit(store, 1024 * MIB, 3600)
    assert (early.orphans_removed, early.in_progress_uploads) == (0, len(left))
    assert leftovers(backend) == left

    # A client sends one cut upload again to the restarted collector: it is resumed
    # under a fresh stem with the id its first attempt was given, and keeps its claim.
    retried_stem = sorted(left)[0]
    claim_key = f"{backend.prefix}parts/{retried_stem}.dmp"
    retried = next(s for s in cut if s.dump == backend.read(claim_key))
    process, url = start_collector(backend, tmp_path)
    try:
        send(url, retried)
    finally:
        process.kill()
        process.wait(10)
    first_id = backend.client.head_object(Bucket=backend.bucket, Key=claim_key)["Metadata"][
        "report-id"]
    assert (retried.status, retried.report_id) == (200, first_id)
    answered.append(retried)
    resumed = store.get(first_id).claim
    assert re.fullmatch(retried_stem + "-[0-9a-f]{16}", resumed)
    kept_claim = sorted(left.pop(retried_stem))
    left_keys = sorted(key for keys in left.values() for key in keys)
    committed_before = sorted(backend.keys(backend.prefix + "reports/"))
    size_of = sizes(backend)

    time.sleep(GRACE_SECONDS + 1.5)  # S3 times have one-second resolution
    result = pruning.prune_to_limit(store, 1024 * MIB, GRACE_SECONDS)
    assert result.orphans_removed == len(left_keys)
    assert sorted(result.orphan_keys) == left_keys
    assert result.orphan_bytes == sum(size_of[key] for key in left_keys) > 0
    assert (result.reports_deleted, result.in_progress_uploads) == (0, 0)
    assert leftovers(backend) == {retried_stem: kept_claim}  # counted with its report
    assert sorted(backend.keys(backend.prefix + "reports/")) == committed_before
    for item in answered:
        with store.open_dump(store.get(item.report_id)) as stream:
            assert stream.read() == item.dump
