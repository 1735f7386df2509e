"""What the statuses mean, and downloads for clients that send no Accept header.

No Accept header means any type is acceptable; Python's urllib sends none. With
web.accept_any_type on the app, such a request gets its file from the local server (a
real urllib request) and from the Lambda handler (the answer base64-encoded, which API
Gateway decodes because the API's binary media types include */*). Errors: a bundle too
large to send is 403, a permanent S3 refusal is 500 at once, a failing bucket 503.
"""

from __future__ import annotations

import base64
import io
import json
import re
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest
from chalice.deploy.swagger import TerraformSwaggerGenerator

from chalicelib import web
from tests.conftest import BUCKET, Backend
from tests.testlib import forms
from tests.testlib.lambda_events import (
    FailingS3,
    LambdaContext,
    accepting_any_type,
    answer_body,
    rest_event,
)
from tests.testlib.viewing import PASSWORD, USERS

README = Path(__file__).resolve().parents[1] / "README.md"
AUTHORIZATION = "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()


@pytest.fixture
def any_type(app_env):
    """app.py with web.accept_any_type applied for the test, then as it was."""
    import app as application

    with accepting_any_type(application.app):
        yield application


def urlopen(url: str, data: bytes | None = None, headers: dict[str, str] | None = None):
    request = urllib.request.Request(url, data=data, headers=headers or {})
    assert not request.has_header("Accept")
    return urllib.request.urlopen(request, timeout=30)


def test_urllib_without_accept_downloads_from_the_local_server(any_type, live_servers,
                                                               backend) -> None:
    servers = live_servers(backend, VIEWER_USERS=USERS)
    dump = forms.fake_dump(200_000, seed=8)
    body, headers, query = forms.crashpad_form(dump=dump, attachments={"log.txt": b"line\n"})
    with urlopen(f"{servers.submit_url}?guid={query['guid']}", body, headers) as answer:
        report_id = answer.read().decode()
    login = {"Authorization": AUTHORIZATION}

    with urlopen(f"{servers.viewer_url}/reports/{report_id}/dump", headers=login) as answer:
        assert answer.status == 200
        assert answer.headers["Content-Type"] == "application/octet-stream"
        assert answer.read() == dump
    with urlopen(f"{servers.viewer_url}/reports/{report_id}/bundle", headers=login) as answer:
        archive = zipfile.ZipFile(io.BytesIO(answer.read()))
    assert archive.read("minidump.dmp") == dump
    assert archive.read("attachments/00-log.txt") == b"line\n"
    with urlopen(f"{servers.viewer_url}/api/reports/{report_id}", headers=login) as answer:
        assert json.loads(answer.read())["id"] == report_id
    with pytest.raises(urllib.error.HTTPError) as refused:
        urlopen(f"{servers.viewer_url}/reports/{report_id}/dump")
    assert refused.value.code == 401


def lambda_get(application, path: str, resource: str, params: dict[str, str],
               headers: dict[str, str]) -> dict:
    event = rest_event("GET", path, resource, headers, query=None, path_parameters=params)
    return application.app(event, LambdaContext())


def test_the_lambda_handler_answers_a_request_without_accept(any_type, app_env,
                                                             moto_backend) -> None:
    application = app_env(moto_backend, VIEWER_USERS=USERS)
    dump = forms.fake_dump(50_000, seed=9)
    body, headers, query = forms.crashpad_form(dump=dump, gzip=False)
    submitted = application.app(
        rest_event("POST", "/submit", "/submit", headers, body, query=query), LambdaContext())
    report_id = answer_body(submitted).decode()
    assert submitted["statusCode"] == 200 and len(report_id) == 16
    login = {"Authorization": AUTHORIZATION}

    answer = lambda_get(application, f"/reports/{report_id}/dump",
                        "/reports/{report_id}/dump", {"report_id": report_id}, login)
    assert answer["statusCode"] == 200, answer_body(answer)
    assert answer["headers"]["Content-Type"] == "application/octet-stream"
    # Base64 for API Gateway to decode: the API's binary media types include */*.
    assert answer["isBase64Encoded"] is True
    assert base64.b64decode(answer["body"]) == dump
    page = lambda_get(application, f"/api/reports/{report_id}", "/api/reports/{report_id}",
                      {"report_id": report_id}, login)
    assert page["statusCode"] == 200 and page["isBase64Encoded"] is True
    assert json.loads(answer_body(page))["id"] == report_id
    # An explicit Accept is left as it is, and served alike.
    typed = lambda_get(application, f"/reports/{report_id}/dump", "/reports/{report_id}/dump",
                       {"report_id": report_id}, {**login, "Accept": "text/html"})
    assert typed["statusCode"] == 200 and answer_body(typed) == dump


def test_the_deployed_api_treats_every_type_as_binary(any_type) -> None:
    swagger = TerraformSwaggerGenerator().generate_swagger(any_type.app)
    types = swagger["x-amazon-apigateway-binary-media-types"]
    assert "*/*" in types and "multipart/form-data" in types
    web.accept_any_type(any_type.app)  # idempotent
    assert any_type.app.api.binary_types.count("*/*") == 1
    assert sum(f is web.any_type_middleware for f, _ in any_type.app.middleware_handlers) == 1


def test_a_bundle_too_large_to_send_is_403_saying_what_to_fetch(any_type, app_env,
                                                                moto_backend) -> None:
    application = app_env(moto_backend, VIEWER_USERS=USERS, DOWNLOAD_REDIRECT_MB="0.01")
    body, headers, query = forms.crashpad_form(dump=forms.fake_dump(64 * 1024), gzip=False)
    report_id = answer_body(application.app(
        rest_event("POST", "/submit", "/submit", headers, body, query=query), LambdaContext()
    )).decode()
    answer = lambda_get(application, f"/reports/{report_id}/bundle",
                        "/reports/{report_id}/bundle", {"report_id": report_id},
                        {"Authorization": AUTHORIZATION})
    assert answer["statusCode"] == 403
    assert answer_body(answer) == b"bundle too large to send here: download its parts one by one\n"


def post_upload(application) -> tuple[dict, float]:
    body, headers, query = forms.crashpad_form(dump=forms.fake_dump(10_000), gzip=False)
    started = time.monotonic()
    answer = application.app(rest_event("POST", "/submit", "/submit", headers, body,
                                        query=query), LambdaContext())
    return answer, time.monotonic() - started


@pytest.mark.parametrize("status, code", [(403, "AccessDenied"), (403, "InvalidAccessKeyId"),
                                          (400, "InvalidArgument"), (501, "NotImplemented")])
def test_a_permanent_s3_refusal_is_500_at_once_naming_the_code(aws_env, app_env, status,
                                                               code) -> None:
    with FailingS3(status, code) as endpoint:
        application = app_env(Backend("refusing", None, BUCKET, endpoint.url),
                              STORAGE_RETRY_SECONDS="10")
        answer, elapsed = post_upload(application)
    assert answer["statusCode"] == 500
    text = answer_body(answer).decode()
    assert re.fullmatch(rf"storage refused: S3 {code} \({status}\) on PutObject "
                        r"\(see the server log\)\n", text)
    assert "refused by the test endpoint" not in text  # S3's own words stay in the log
    assert len(endpoint.requests) == 1 and elapsed < 2


def test_a_missing_bucket_is_500_naming_it(app_env, moto_backend) -> None:
    application = app_env(moto_backend, REPORTS_BUCKET="no-such-bucket")
    answer, elapsed = post_upload(application)
    assert answer["statusCode"] == 500
    assert answer_body(answer) == (b"storage refused: S3 NoSuchBucket on PutObject, the bucket"
                                   b" was not found\n")
    assert elapsed < 2


def test_no_credentials_is_500_without_contacting_s3(aws_env, app_env, monkeypatch,
                                                     tmp_path) -> None:
    with FailingS3(500, "InternalError") as endpoint:
        application = app_env(Backend("uncredentialed", None, BUCKET, endpoint.url),
                              STORAGE_RETRY_SECONDS="10")
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            monkeypatch.delenv(name)
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        answer, elapsed = post_upload(application)
    assert answer["statusCode"] == 500
    assert answer_body(answer) == b"storage refused: NoCredentialsError (see the server log)\n"
    assert endpoint.requests == [] and elapsed < 2


def test_the_readme_status_table_lists_every_status_web_gives() -> None:
    rows = {}
    for line in README.read_text().splitlines():
        match = re.match(r"^\| `(\d{3})` \| (.+) \| (.+) \|$", line)
        if match:
            rows[int(match[1])] = (match[2], match[3])
    given = {status for _, status in web.ERROR_STATUS}
    assert given <= set(rows), given - set(rows)
    assert {200, 302, 405} <= set(rows)
    assert "do not retry" in rows[500][1] and "retry later" in rows[503][1]
    assert "one by one" in rows[403][1]
