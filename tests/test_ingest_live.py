"""/submit through the real local-run HTTP server: chunked bodies, concurrency, outages."""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import threading
import time

import pytest
import requests

from chalicelib.seaweed import SeaweedServer
from tests.conftest import BUCKET, Backend
from tests.testlib import forms


def send(url: str, body: bytes, headers: dict[str, str], query: dict[str, str],
         timeout: float = 60) -> requests.Response:
    """POST like Crashpad: chunked (a generator body), never Content-Length."""
    return requests.post(url, data=forms.chunked(body), headers=headers, params=query,
                         timeout=timeout)


def stored_reports(backend: Backend) -> dict[str, dict]:
    """id -> metadata, for every committed report under the backend's prefix."""
    found = {}
    for key in backend.keys(backend.prefix + "reports/"):
        meta = json.loads(backend.read(key))
        found[meta["id"]] = meta
    return found


def dump_of(backend: Backend, meta: dict) -> bytes:
    store = backend.store()
    with store.open_dump(store.get(meta["id"])) as stream:
        return stream.read()


@pytest.mark.seaweedfs
@pytest.mark.parametrize("use_gzip", [True, False])
def test_chunked_crashpad_upload_is_stored(live_servers, seaweed_backend, use_gzip) -> None:
    servers = live_servers(seaweed_backend)
    dump = forms.fixture_dump("linux-x86_64-crashpad-chromeos-chrome-sigsegv.dmp")
    body, headers, query = forms.crashpad_form(
        {"platform": "linux", "client_sha": "abc", "prod": "Jami", "ver": "1.0"}, dump=dump,
        attachments={"att.txt": b"attached", "zz.log": b"last"}, gzip=use_gzip)
    response = send(servers.submit_url, body, headers, query)
    assert response.status_code == 200
    assert response.headers["Content-Length"] == "16"
    report_id = response.text
    reports = stored_reports(seaweed_backend)
    assert list(reports) == [report_id]
    assert dump_of(seaweed_backend, reports[report_id]) == dump
    assert reports[report_id]["annotations"]["client_sha"] == "abc"


@pytest.mark.seaweedfs
def test_submit_port_serves_only_submit(live_servers, seaweed_backend) -> None:
    servers = live_servers(seaweed_backend)
    assert requests.get(servers.submit_url.replace("/submit", "/"), timeout=5).status_code == 404
    assert requests.get(servers.submit_url, timeout=5).status_code == 405
    assert requests.post(servers.viewer_url + "/submit", timeout=5).status_code == 404


@pytest.mark.seaweedfs
def test_oversized_chunked_body_is_413_and_stores_nothing(live_servers, seaweed_backend) -> None:
    servers = live_servers(seaweed_backend, MAX_SUBMISSION_MB="1")
    body, headers, query = forms.crashpad_form(dump=forms.fake_dump(3 * 1024 * 1024), gzip=False)
    response = send(servers.submit_url, body, headers, query)
    assert response.status_code == 413
    assert seaweed_backend.keys() == []


@pytest.mark.seaweedfs
@pytest.mark.slow
def test_8_clients_x_50_submissions_all_stored_byte_exact(live_servers, seaweed_backend) -> None:
    servers = live_servers(seaweed_backend)

    def client(n: int) -> list[tuple[str, str]]:
        results = []
        for i in range(50):
            dump = forms.fake_dump(20_000 + i, seed=n * 1000 + i)
            body, headers, query = forms.crashpad_form({"platform": f"c{n}"}, dump=dump)
            response = send(servers.submit_url, body, headers, query)
            assert response.status_code == 200, response.text
            results.append((response.text, hashlib.sha256(dump).hexdigest()))
        return results

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answered = [r for rs in pool.map(client, range(8)) for r in rs]
    reports = stored_reports(seaweed_backend)
    assert len(answered) == 400 and len({i for i, _ in answered}) == 400
    assert {i: reports[i]["dump"]["sha256"] for i, _ in answered} == dict(answered)
    sample = answered[::37]
    for report_id, digest in sample:
        assert hashlib.sha256(dump_of(seaweed_backend, reports[report_id])).hexdigest() == digest


@pytest.mark.seaweedfs
@pytest.mark.slow
def test_storage_outage_within_the_retry_budget_loses_nothing(
    live_servers, tmp_path, aws_env
) -> None:
    """Kill -9 the S3 server during a burst, restart it within 5 s: every report is kept."""
    s3 = SeaweedServer(tmp_path / "s3", BUCKET).start()
    try:
        backend = Backend("seaweedfs", s3.client(), BUCKET, s3.endpoint)
        servers = live_servers(backend, STORAGE_RETRY_SECONDS="20")
        stop = threading.Event()
        answered: list[tuple[int, str, str]] = []
        waits: list[float] = []

        def client(n: int) -> None:
            i = 0
            while not stop.is_set():
                dump = forms.fake_dump(30_000, seed=n * 100_000 + i)
                body, headers, query = forms.crashpad_form(dump=dump)
                started = time.monotonic()
                response = send(servers.submit_url, body, headers, query)
                waits.append(time.monotonic() - started)
                answered.append((response.status_code, response.text,
                                 hashlib.sha256(dump).hexdigest()))
                i += 1

        threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        s3.kill()
        time.sleep(3.0)
        s3.start()
        time.sleep(1.5)
        stop.set()
        for thread in threads:
            thread.join(60)
        statuses = [status for status, _, _ in answered]
        assert statuses and set(statuses) == {200}, statuses
        reports = stored_reports(backend)
        for _, report_id, digest in answered:
            assert reports[report_id]["dump"]["sha256"] == digest
            assert hashlib.sha256(dump_of(backend, reports[report_id])).hexdigest() == digest
        assert len(answered) > 20
        assert max(waits) > 2.0  # some uploads really waited out the outage
    finally:
        s3.stop()
