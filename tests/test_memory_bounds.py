"""Server memory under hostile load, measured on the server process alone (docs/limits.md).

The server runs in a subprocess; its peak RSS (VmHWM) is reset once the store is built
(as `make run`'s startup check builds it), then read after the load.
"""

from __future__ import annotations

import hashlib
import json

import pytest
import requests

from tests.conftest import BUCKET
from tests.testlib import forms, served
from tests.testlib.viewing import LOGIN, USERS

MIB = 1024 * 1024
HOSTILE_GROWTH_MIB = 256  # the bound docs/limits.md states for 16 x 60 parts of 1 MiB
DOWNLOAD_GROWTH_MIB = 64  # for one 256 MiB dump download


def warmed(app: served.ServedApp) -> float:
    """Build the server's store with one ordinary upload, then reset its peak; its RSS."""
    body, headers, query = forms.crashpad_form({"platform": "linux"})
    assert served.post_all(app.submit_url, [(body, headers, query)])[0][0] == 200
    with open(f"/proc/{app.process.pid}/clear_refs", "w") as clear:
        clear.write("5")  # VmHWM := VmRSS
    return app.memory_mib("VmRSS")


@pytest.mark.seaweedfs
@pytest.mark.slow
def test_16_uploads_of_60_parts_of_1_mib_stay_within_the_memory_bound(
    seaweed, seaweed_backend
) -> None:
    with served.ServedApp(seaweed.endpoint, BUCKET, seaweed_backend.prefix,
                          STORAGE_RETRY_SECONDS="240") as app:
        before = warmed(app)
        uploads = [served.hostile_form() for _ in range(16)]
        assert all(len(body) < 100_000 for body, _, _ in uploads)
        answers = served.post_all(app.submit_url, uploads)
        growth = app.memory_mib("VmHWM") - before
        assert [status for status, _ in answers] == [200] * 16, app.output()
        assert growth < HOSTILE_GROWTH_MIB, f"peak RSS grew {growth:.0f} MiB"
    meta = json.loads(seaweed_backend.read(next(
        key for key in seaweed_backend.keys(seaweed_backend.prefix + "reports/")
        if json.loads(seaweed_backend.read(key))["id"] == answers[7][1]
    )))
    zeros = hashlib.sha256(bytes(MIB)).hexdigest()
    assert [a["sha256"] for a in meta["attachments"]] == [zeros] * 59
    assert meta["dump"]["sha256"] == hashlib.sha256(b"MDMP" + bytes(MIB - 4)).hexdigest()


@pytest.mark.seaweedfs
@pytest.mark.slow
def test_16_uploads_of_too_many_parts_are_refused_within_the_memory_bound(
    seaweed, seaweed_backend
) -> None:
    with served.ServedApp(seaweed.endpoint, BUCKET, seaweed_backend.prefix) as app:
        before = warmed(app)
        upload = served.hostile_form(parts=200)
        answers = served.post_all(app.submit_url, [upload] * 16)
        growth = app.memory_mib("VmHWM") - before
    assert answers == [(413, "more than 128 attachments\n")] * 16
    assert growth < HOSTILE_GROWTH_MIB, f"peak RSS grew {growth:.0f} MiB"
    assert len(seaweed_backend.keys(seaweed_backend.prefix + "reports/")) == 1  # the warm-up


@pytest.mark.seaweedfs
@pytest.mark.slow
def test_16_uploads_of_control_character_annotations_are_refused_within_the_bound(
    seaweed, seaweed_backend
) -> None:
    """Control characters take 6 bytes each in the metadata JSON: bounded as stored."""
    fields = {f"k{n:02d}": "\x01" * (64 * 1024 - 64) for n in range(15)}
    upload = forms.crashpad_form(fields, dump=b"MDMP" + bytes(1000))
    assert len(upload[0]) < 20_000
    with served.ServedApp(seaweed.endpoint, BUCKET, seaweed_backend.prefix) as app:
        before = warmed(app)
        answers = served.post_all(app.submit_url, [upload] * 16)
        growth = app.memory_mib("VmHWM") - before
    assert answers == [(413, "annotations larger than 1024 KiB together, as stored\n")] * 16
    assert growth < HOSTILE_GROWTH_MIB / 4, f"peak RSS grew {growth:.0f} MiB"
    assert len(seaweed_backend.keys(seaweed_backend.prefix + "reports/")) == 1  # the warm-up


@pytest.mark.seaweedfs
@pytest.mark.slow
def test_a_256_mib_dump_download_is_streamed(seaweed, seaweed_backend) -> None:
    report_id, digest = served.store_big_dump(seaweed_backend.store(retry_seconds=60), 256 * MIB)
    with served.ServedApp(seaweed.endpoint, BUCKET, seaweed_backend.prefix,
                          VIEWER_USERS=USERS) as app:
        before = warmed(app)
        received, got = hashlib.sha256(), 0
        with requests.get(f"{app.viewer_url}/reports/{report_id}/dump", headers=LOGIN,
                          stream=True, timeout=120) as reply:
            assert reply.status_code == 200
            assert reply.headers["Content-Length"] == str(256 * MIB)
            for chunk in reply.iter_content(MIB):
                received.update(chunk)
                got += len(chunk)
        growth = app.memory_mib("VmHWM") - before
    assert (got, received.hexdigest()) == (256 * MIB, digest)
    assert growth < DOWNLOAD_GROWTH_MIB, f"peak RSS grew {growth:.0f} MiB"
