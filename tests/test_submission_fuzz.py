"""Property-based fuzzing of the submission parser: real Crashpad forms, mutated.

Whatever the bytes, parse_submission returns a Submission or raises a SubmissionRejected
subclass, within a time and a memory bound; over HTTP, no answer is a 5xx.
"""

from __future__ import annotations

import gzip
import io
import time
import tracemalloc
import zlib

import pytest
import requests
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from chalicelib import submission
from chalicelib.submission import Limits, SubmissionRejected, parse_submission
from tests.testlib import forms

BOUNDARY = "---MultipartBoundary-fuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzz---"
LIMITS = Limits(max_body_bytes=4 * 1024 * 1024, max_annotations=16, max_annotation_bytes=1024,
                max_attachments=4)
SECONDS = 2.0
# The request's memory budget and annotations, the 64 KiB steps, the parser's buffers.
MEMORY_BYTES = submission.MEMORY_BUDGET + 16 * 1024 + 2 * 1024 * 1024


def base_form(gzip_body: bool = False) -> tuple[bytes, dict[str, str]]:
    body, headers, _ = forms.crashpad_form(
        {"platform": "linux", "prod": "Jami", "ver": "1.0"}, dump=forms.fake_dump(3000),
        attachments={"log.txt": b"line one\r\nline two\r\n"}, gzip=gzip_body,
        boundary=BOUNDARY, report_uuid="8dfb04e7-6886-4a04-9d1f-37f706baa429",
        guid="1e352e12-b4ef-3442-bcf5-7c40b24e2ea0",
    )
    return body, {k.lower(): v for k, v in headers.items()}


PLAIN, HEADERS = base_form()
TOKENS = [b"\r\n", b"--", BOUNDARY.encode(), b"\r\n--" + BOUNDARY.encode(), b'"', b";",
          b"Content-Disposition: form-data; ", b'name="upload_file_minidump"; ',
          b'filename="x.dmp"', b"\r\n\r\n", b"MDMP", b"\x00", b"\xff", b"\x1f\x8b"]


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` with a few edits: bytes flipped, cut, repeated, or multipart tokens put in."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(out)))
        kind = draw(st.sampled_from(["flip", "cut", "insert", "token", "repeat", "truncate"]))
        if kind == "flip" and at < len(out):
            out[at] ^= draw(st.integers(1, 255))
        elif kind == "cut":
            del out[at : at + draw(st.integers(1, 200))]
        elif kind == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=40))
        elif kind == "token":
            out[at:at] = draw(st.sampled_from(TOKENS)) * draw(st.integers(1, 3))
        elif kind == "repeat":
            out[at:at] = out[at : at + draw(st.integers(1, 500))] * draw(st.integers(1, 20))
        elif kind == "truncate":
            del out[at:]
    return bytes(out)


@st.composite
def bodies(draw: st.DrawFn) -> tuple[bytes, dict[str, str]]:
    """A mutated request: the form's bytes, then maybe gzip (mutated or not), and headers
    that may lie about either."""
    body = draw(mutated(PLAIN))
    headers = dict(HEADERS)
    way = draw(st.sampled_from(["plain", "gzip", "gzip-mutated", "deflate-raw"]))
    if way == "gzip":
        body = gzip.compress(body, mtime=0)
    elif way == "gzip-mutated":
        body = draw(mutated(gzip.compress(body, mtime=0)))
    elif way == "deflate-raw":
        body = zlib.compress(body)
    if way != "plain" and draw(st.booleans()):
        headers["content-encoding"] = "gzip"
    if draw(st.booleans()):
        headers["content-type"] = draw(st.sampled_from([
            f"multipart/form-data; boundary={BOUNDARY[:-3]}", "multipart/form-data",
            'multipart/form-data; boundary="a\\"b"', "multipart/form-data; boundary=" + "b" * 300,
            "text/plain", "", f"multipart/form-data; boundary={BOUNDARY}; charset=latin1",
        ]))
    return body, headers


def parse_bounded(body: bytes, headers: dict[str, str]) -> str:
    """Parse within the time and memory bounds; 'ok' or the rejection's class name."""
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    started = time.monotonic()
    try:
        with parse_submission(io.BytesIO(body), headers, {"guid": "g"}, LIMITS) as sent:
            sent.dump.content.seek(0)
            assert sent.dump.content.read(4) == b"MDMP"
            outcome = "ok"
    except SubmissionRejected as error:
        assert error.reason and "\n" not in error.reason
        outcome = type(error).__name__
    elapsed = time.monotonic() - started
    peak = tracemalloc.get_traced_memory()[1] - before
    assert elapsed < SECONDS, f"took {elapsed:.2f} s"
    assert peak < MEMORY_BYTES, f"held {peak} bytes"
    return outcome


@pytest.fixture(scope="module")
def traced():
    tracemalloc.start()
    yield
    tracemalloc.stop()


def test_the_unmutated_forms_parse(traced) -> None:
    assert parse_bounded(PLAIN, HEADERS) == "ok"
    assert parse_bounded(gzip.compress(PLAIN), {**HEADERS, "content-encoding": "gzip"}) == "ok"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=bodies())
def test_mutated_bodies_are_parsed_or_rejected_within_bounds(traced, request) -> None:
    body, headers = request
    event(parse_bounded(body, headers))


@settings(max_examples=60, deadline=None)
@given(size=st.integers(1, 64), parts=st.integers(0, 8), gzipped=st.booleans())
def test_bombs_and_many_parts_stop_at_the_limits(traced, size, parts, gzipped) -> None:
    """Inflating MiBs of zeros, or more parts than allowed: refused, memory still bounded."""
    attachments = {f"a{n}.bin": bytes(size * 64 * 1024) for n in range(parts)}
    body, headers, _ = forms.crashpad_form(dump=b"MDMP" + bytes(size * 64 * 1024),
                                           attachments=attachments, gzip=False)
    inflated = len(body)
    if gzipped:
        body, headers = gzip.compress(body), {**headers, "Content-Encoding": "gzip"}
    outcome = parse_bounded(body, {k.lower(): v for k, v in headers.items()})
    if inflated > LIMITS.max_body_bytes:
        assert outcome == "SubmissionTooLarge"
    elif parts > LIMITS.max_attachments:
        assert outcome == "SubmissionTooLarge"
    else:
        assert outcome == "ok"


@pytest.mark.seaweedfs
@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(request=bodies(), chunked=st.booleans())
def test_over_http_garbage_never_gets_a_5xx(http_server, request, chunked) -> None:
    body, headers = request
    sent = forms.chunked(body) if chunked else body
    reply = requests.post(http_server.submit_url, data=sent, headers=headers, timeout=30)
    assert reply.status_code in (200, 400, 413, 415), reply.text
    event(str(reply.status_code))
    if reply.status_code == 200:
        assert len(reply.text) == 16 and int(reply.text, 16) >= 0


@pytest.fixture
def http_server(live_servers, seaweed_backend):
    return live_servers(seaweed_backend)
