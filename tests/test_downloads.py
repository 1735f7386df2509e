"""Large downloads redirect to presigned S3 URLs when DOWNLOAD_REDIRECT_MB is set."""

from __future__ import annotations

import pytest
import requests
from chalice.test import Client

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
    assert response.status_code == 501
    assert b"download its parts one by one" in response.body
