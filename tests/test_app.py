"""/submit through Chalice's test client: replies, stored bytes, and rejected input."""

from __future__ import annotations

import gzip
import json

import pytest
from chalice.test import Client

from tests.testlib import forms


@pytest.fixture
def submit_client(app_env, moto_backend):
    application = app_env(moto_backend, MAX_SUBMISSION_MB="1", MAX_ANNOTATIONS="8",
                          MAX_ANNOTATION_KB="1")
    with Client(application.app) as client:
        yield client, moto_backend


def post(client, body: bytes, headers: dict[str, str], query: dict[str, str] | None = None):
    path = "/submit"
    if query:
        path += "?" + "&".join(f"{k}={v}" for k, v in query.items())
    return client.http.post(path, body=body, headers=headers)


def test_submit_answers_the_id_as_the_whole_text_body(submit_client) -> None:
    client, backend = submit_client
    body, headers, query = forms.crashpad_form({"platform": "linux", "prod": "Jami"})
    response = post(client, body, headers, query)
    assert response.status_code == 200
    report_id = response.body.decode()
    assert len(report_id) == 16 and report_id == report_id.lower()
    int(report_id, 16)
    assert response.headers["Content-Type"].startswith("text/plain")
    assert response.headers["Content-Length"] == "16"
    meta_key = next(k for k in backend.keys() if "/reports/" in k)
    meta = json.loads(backend.read(meta_key))
    assert meta["id"] == report_id
    assert meta["query"]["product"] == "Jami"
    dump_key = next(k for k in backend.keys() if k.endswith(".dmp"))
    assert backend.read(dump_key) == forms.fixture_dump()


BAD_INPUTS = {
    "no dump part": (
        lambda b, h: (b.replace(b'name="upload_file_minidump"', b'name="x"'), h),
        400, "no upload_file_minidump file part"),
    "not a minidump": (lambda b, h: (b.replace(b"MDMP", b"ZZZZ", 1), h), 400, "MDMP"),
    "broken gzip": (
        lambda b, h: (gzip.compress(b)[:40] + b"\x00" * 40, {**h, "Content-Encoding": "gzip"}),
        400, "broken gzip"),
    "too large": (
        lambda b, h: (b.replace(b"MDMP", b"MDMP" + bytes(1_100_000), 1), h), 413, "larger than"),
    "gzip bomb": (
        lambda b, h: (gzip.compress(b.replace(b"MDMP", b"MDMP" + bytes(30_000_000), 1)),
                      {**h, "Content-Encoding": "gzip"}), 413, "inflated body larger"),
    "not multipart": (lambda b, h: (b'{"a": 1}', {"Content-Type": "application/json"}),
                      415, "expected multipart/form-data"),
    "malformed multipart": (lambda b, h: (b[:200], h), 400, "malformed multipart"),
    "too many annotations": (
        lambda b, h: forms.crashpad_form({f"k{i}": "v" for i in range(20)}, gzip=False)[:2],
        413, "more than 8 annotations"),
    "annotation too large": (
        lambda b, h: forms.crashpad_form({"k": "v" * 2000}, gzip=False)[:2],
        413, "annotation larger than 1 KiB"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_gets_a_clear_error_and_stores_nothing(submit_client, case: str) -> None:
    client, backend = submit_client
    mutate, status, reason = BAD_INPUTS[case]
    body, headers, _ = forms.crashpad_form(gzip=False)
    body, headers = mutate(body, headers)
    response = post(client, body, headers)
    assert response.status_code == status, response.body[:300]
    text = response.body.decode()
    assert reason in text
    assert text.count("\n") == 1 and text.endswith("\n")
    assert backend.keys() == []


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_other_methods_are_405(submit_client, method: str) -> None:
    client, backend = submit_client
    response = client.http.request(method, "/submit", body=b"", headers={})
    assert response.status_code == 405
    assert backend.keys() == []


def test_storage_down_past_the_retry_budget_is_503_with_a_reason(app_env, moto_backend,
                                                                  monkeypatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
    application = app_env(moto_backend, STORAGE_RETRY_SECONDS="0.5")
    body, headers, query = forms.crashpad_form()
    with Client(application.app) as client:
        response = post(client, body, headers, query)
    assert response.status_code == 503
    assert response.body.decode().startswith("storage unavailable")
    assert moto_backend.keys() == []


def test_a_missing_bucket_is_500_at_once_with_a_reason(app_env, moto_backend) -> None:
    """A bucket that does not exist will not appear by retrying: no 503 "retry later"."""
    application = app_env(moto_backend, REPORTS_BUCKET="no-such-bucket")
    body, headers, query = forms.crashpad_form()
    with Client(application.app) as client:
        response = post(client, body, headers, query)
    assert response.status_code == 500
    assert "not found" in response.body.decode()


def test_concurrent_first_requests_share_one_store(app_env, moto_backend) -> None:
    """A burst against a cold server builds one store (and S3 client), not one per thread."""
    import threading

    application = app_env(moto_backend)
    start = threading.Barrier(16)
    built: list[object] = []

    def first_request() -> None:
        start.wait()
        built.append(application.reports())

    threads = [threading.Thread(target=first_request) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(built) == 16
    assert len({id(store) for store in built}) == 1
