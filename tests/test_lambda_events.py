"""/submit through the real Lambda handler, `app.app(event, context)`, as API Gateway calls it.

The events are REST proxy events (tests/testlib/lambda_events.py): base64 body with
`isBase64Encoded`, `multiValueHeaders`, a gzip upload the gateway already inflated but
whose `Content-Encoding: gzip` it kept. On Lambda (AWS_LAMBDA_FUNCTION_NAME set) the
config refuses a storage budget that cannot answer before API Gateway's 29 s; these tests
shrink the figures through the same settings and check a failing bucket answers 503
within what the config derives from them.
"""

from __future__ import annotations

import json
import os
import re
import time

import pytest
from botocore.exceptions import ClientError

from chalicelib.bucket import Bucket, StoreRefused, StoreUnavailable
from chalicelib.config import GATEWAY_SECONDS, ConfigError
from tests.conftest import BUCKET, Backend
from tests.testlib import forms
from tests.testlib.lambda_events import (
    FailingS3,
    LambdaContext,
    answer_body,
    closed_port_url,
    rest_event,
)

# Small enough for a test, and passed through the same derivation as the stage's.
FAST = {"STORAGE_RETRY_SECONDS": "2.5", "S3_CONNECT_TIMEOUT_SECONDS": "0.5",
        "S3_READ_TIMEOUT_SECONDS": "1"}


@pytest.fixture
def on_lambda(app_env, aws_env, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lambda's environment, after aws_env's clean slate and the import of app.py with
    the test settings (on Lambda the stage's settings are there before the import)."""
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "crash-collector-dev")


def submit_event(dump: bytes, **annotations: str) -> tuple[dict, str]:
    """A Crashpad upload as Lambda gets it: API Gateway inflated the gzip body already."""
    inflated, headers, query = forms.crashpad_form(annotations, dump=dump, gzip=False)
    headers = {**headers, "Content-Encoding": "gzip", "Accept": "*/*",
               "Accept-Encoding": ["gzip", "deflate"]}
    event = rest_event("POST", "/submit", "/submit", headers, inflated, query=query)
    return event, query["guid"]


@pytest.mark.parametrize("annotations", [{"prod": "Jami", "ver": "20261126", "platform": "linux"}])
def test_a_crashpad_upload_through_the_lambda_handler_is_stored_whole(
    on_lambda, app_env, backend, annotations
) -> None:
    application = app_env(backend)
    dump = forms.fake_dump(300_000, seed=6)
    event, guid = submit_event(dump, **annotations)
    assert event["isBase64Encoded"] and event["multiValueHeaders"]["Accept-Encoding"] == [
        "gzip", "deflate"]

    answer = application.app(event, LambdaContext())

    assert answer["statusCode"] == 200, answer_body(answer)
    report_id = answer_body(answer).decode()
    assert len(report_id) == 16 and int(report_id, 16) >= 0
    keys = backend.keys()
    (meta_key,) = [k for k in keys if "/reports/" in k]
    meta = json.loads(backend.read(meta_key))
    assert meta["id"] == report_id
    assert meta["annotations"]["platform"] == "linux"
    assert meta["query"] == {"guid": guid, "product": "Jami", "version": "20261126"}
    (dump_key,) = [k for k in keys if k.endswith(".dmp")]
    assert backend.read(dump_key) == dump


def test_the_lambda_budget_is_checked_when_the_function_starts(on_lambda, app_env,
                                                               moto_backend) -> None:
    with pytest.raises(ConfigError, match=r"= 26 s.* 29 s"):
        app_env(moto_backend, STORAGE_RETRY_SECONDS="20", S3_CONNECT_TIMEOUT_SECONDS="2",
                S3_READ_TIMEOUT_SECONDS="3")
    cfg = app_env(moto_backend, **FAST).settings()
    assert cfg.storage_seconds == 2.5 + 0.5 + 1 + 1 and cfg.answer_seconds < GATEWAY_SECONDS


FAILURES = {
    "connection refused": None,
    "S3 answers 500 InternalError": (500, "InternalError"),
    "S3 answers 503 SlowDown": (503, "SlowDown"),
    "S3 never answers": (None, ""),
}
SAID = {"connection refused": "EndpointConnectionError",
        "S3 answers 500 InternalError": r"S3 InternalError \(500\)",
        "S3 answers 503 SlowDown": r"S3 SlowDown \(503\)",
        "S3 never answers": "ReadTimeoutError"}


@pytest.mark.parametrize("failure", FAILURES)
def test_a_failing_bucket_answers_503_within_the_derived_time(on_lambda, app_env,
                                                              failure) -> None:
    kind = FAILURES[failure]
    with FailingS3(*kind) if kind else _refusing() as endpoint:
        application = app_env(Backend("failing", None, BUCKET, endpoint.url), **FAST)
        cfg = application.settings()
        event, _ = submit_event(forms.fake_dump(20_000))
        started = time.monotonic()
        answer = application.app(event, LambdaContext(timeout_seconds=60))
        elapsed = time.monotonic() - started

    assert answer["statusCode"] == 503
    said = answer_body(answer).decode()
    assert re.fullmatch(rf"storage unavailable: {SAID[failure]} after \d+ attempts\n", said)
    assert endpoint.url.split("//")[1] not in said  # the endpoint stays in the log
    # Retried for the whole budget, and done within budget + one attempt's timeouts.
    print(f"{failure}: 503 after {elapsed:.2f} s, derived bound {cfg.answer_seconds:g} s")
    assert cfg.storage_retry_seconds - 0.05 <= elapsed < cfg.storage_seconds + 0.5
    assert elapsed < cfg.answer_seconds
    assert os.environ["AWS_LAMBDA_FUNCTION_NAME"]  # the gateway's check applied
    if kind == (None, ""):
        # Each attempt waited 1 s for 100 Continue, then its read timeout; the second
        # started before the budget ran out and was let finish: 2 x 2 s.
        assert endpoint.connections == 2
        assert elapsed >= 2 * (1 + cfg.s3_read_timeout)
    elif kind:
        assert len(endpoint.requests) >= 3


class _refusing:
    def __enter__(self) -> _refusing:
        self.url = closed_port_url()
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def _error(status: int, code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "from the test"},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")


class _Client:
    """Just enough of a boto3 client for Bucket's constructor."""

    class meta:  # noqa: N801 - boto3's attribute name
        class events:  # noqa: N801
            @staticmethod
            def register(*args: object) -> None:
                pass


def test_no_attempt_starts_past_the_deadline_even_the_first_of_a_later_call() -> None:
    bucket = Bucket(_Client(), BUCKET, retry_seconds=0.6)
    starts: list[float] = []

    def slow_failure() -> None:
        starts.append(time.monotonic())
        time.sleep(0.25)
        raise _error(500, "InternalError")

    deadline = bucket.deadline()
    with pytest.raises(StoreUnavailable, match="InternalError"):
        bucket.retrying(deadline, slow_failure)
    ended = time.monotonic()
    assert len(starts) >= 2
    assert all(start < deadline for start in starts)
    assert ended < deadline + 0.25 + 0.05
    # A later call sharing the spent deadline makes no request at all.
    time.sleep(max(0.0, deadline - time.monotonic()))
    tried = len(starts)
    with pytest.raises(StoreUnavailable, match="retry budget ran out"):
        bucket.retrying(deadline, slow_failure)
    assert len(starts) == tried


def test_a_permanent_refusal_spends_no_retry_budget() -> None:
    bucket = Bucket(_Client(), BUCKET, retry_seconds=30)
    calls = []

    def denied() -> None:
        calls.append(1)
        raise _error(403, "AccessDenied")

    started = time.monotonic()
    with pytest.raises(StoreRefused, match=r"S3 AccessDenied \(403\) on PutObject"):
        bucket.retrying(bucket.deadline(), denied)
    assert calls == [1] and time.monotonic() - started < 0.1
