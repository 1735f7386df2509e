"""Large downloads redirect to presigned S3 URLs when DOWNLOAD_REDIRECT_MB is set."""

from __future__ import annotations

import io
import zipfile

import pytest
import requests
from chalice.test import Client

from chalicelib import web
from tests.testlib import forms
from tests.testlib.viewing import LOGIN, USERS


@pytest.mark.seaweedfs
def test_large_dump_and_attachment_redirect_to_a_presigned_url(app_env, seaweed_backend) -> None:
    application = app_env(seaweed_backend, VIEWER_USERS=USERS, DOWNLOAD_REDIRECT_MB="0.01")
    dump = forms.fake_dump(64 * 1024)
    attachments = {"big.log": b"L" * 20_000, "small.txt": b"s"}
    body, headers, query = forms.crashpad_form(dump=dump, attachments=attachments)
    with Client(application.app) as client:
        report_id = client.http.post(f"/submit?guid={query['guid']}", body=body,
                                     headers=headers).body.decode()
        redirected = client.http.get(f"/reports/{report_id}/dump", headers=LOGIN)
        assert redirected.status_code == 302
        fetched = requests.get(redirected.headers["Location"], timeout=10)
        assert fetched.status_code == 200 and fetched.content == dump
        assert fetched.headers["Content-Disposition"] == f'attachment; filename="{report_id}.dmp"'

        big = client.http.get(f"/reports/{report_id}/attachments/0", headers=LOGIN)
        assert big.status_code == 302
        assert requests.get(big.headers["Location"], timeout=10).content == b"L" * 20_000
        small = client.http.get(f"/reports/{report_id}/attachments/1", headers=LOGIN)
        assert small.status_code == 200 and small.body == b"s"
        assert client.http.get(f"/reports/{report_id}/attachments/2",
                               headers=LOGIN).status_code == 404
        assert client.http.get(f"/reports/{report_id}/dump").status_code == 401


def test_no_redirect_by_default(app_env, moto_backend) -> None:
    application = app_env(moto_backend, VIEWER_USERS=USERS)
    body, headers, query = forms.crashpad_form(dump=forms.fake_dump(64 * 1024))
    with Client(application.app) as client:
        report_id = client.http.post("/submit", body=body, headers=headers).body.decode()
        response = client.http.get(f"/reports/{report_id}/dump", headers=LOGIN)
    assert response.status_code == 200 and len(response.body) == 64 * 1024


def test_a_bundle_too_large_to_send_is_refused_with_a_reason(app_env, moto_backend) -> None:
    application = app_env(moto_backend, VIEWER_USERS=USERS, DOWNLOAD_REDIRECT_MB="0.01")
    body, headers, query = forms.crashpad_form(dump=forms.fake_dump(64 * 1024))
    with Client(application.app) as client:
        report_id = client.http.post("/submit", body=body, headers=headers).body.decode()
        response = client.http.get(f"/reports/{report_id}/bundle", headers=LOGIN)
    # The status is web's to choose (its table in the README); the reason says what to do.
    assert response.status_code == web.status_for(web.TooLargeToSend())
    assert b"download its parts one by one" in response.body


@pytest.mark.seaweedfs
def test_the_local_server_streams_dumps_attachments_and_bundles_whole(
    live_servers, seaweed_backend
) -> None:
    servers = live_servers(seaweed_backend, VIEWER_USERS=USERS)
    dump = forms.fake_dump(3 * 1024 * 1024 + 17, seed=5)
    log = bytes(range(256)) * 5000
    body, headers, query = forms.crashpad_form({"platform": "linux"}, dump=dump,
                                               attachments={"app.log": log})
    report_id = requests.post(servers.submit_url, data=body, headers=headers, params=query,
                              timeout=30).text
    base = f"{servers.viewer_url}/reports/{report_id}"
    fetched = requests.get(f"{base}/dump", headers=LOGIN, timeout=30)
    assert fetched.status_code == 200 and fetched.content == dump
    assert fetched.headers["Content-Length"] == str(len(dump))
    assert fetched.headers["Content-Disposition"] == f'attachment; filename="{report_id}.dmp"'
    attachment = requests.get(f"{base}/attachments/0", headers=LOGIN, timeout=30)
    assert attachment.content == log and attachment.headers["Content-Length"] == str(len(log))
    zipped = requests.get(f"{base}/bundle", headers=LOGIN, timeout=30)
    assert zipped.headers["Content-Type"] == "application/zip"
    assert zipped.headers["Content-Length"] == str(len(zipped.content))
    with zipfile.ZipFile(io.BytesIO(zipped.content)) as archive:
        assert archive.read("minidump.dmp") == dump
        assert archive.read("attachments/00-app.log") == log
    refused = requests.get(f"{base}/dump", timeout=30)
    assert refused.status_code == 401 and refused.content != dump


@pytest.mark.seaweedfs
def test_a_download_announces_the_size_s3_holds_not_the_one_recorded(
    live_servers, seaweed_backend
) -> None:
    """A part rewritten after its report was recorded is sent whole, never cut to the
    recorded size behind a 200."""
    servers = live_servers(seaweed_backend, VIEWER_USERS=USERS)
    body, headers, query = forms.crashpad_form({"platform": "linux"},
                                               dump=forms.fake_dump(2000, seed=1))
    report_id = requests.post(servers.submit_url, data=body, headers=headers, params=query,
                              timeout=30).text
    store = seaweed_backend.store()
    dump_key = next(k for k in seaweed_backend.keys(seaweed_backend.prefix + "parts/")
                    if k.endswith(".dmp"))
    longer = forms.fake_dump(5000, seed=2)
    store.s3.put_object(Bucket=store.bucket, Key=dump_key, Body=longer)
    fetched = requests.get(f"{servers.viewer_url}/reports/{report_id}/dump", headers=LOGIN,
                           timeout=30)
    assert fetched.status_code == 200
    assert fetched.headers["Content-Length"] == "5000"
    assert fetched.content == longer
