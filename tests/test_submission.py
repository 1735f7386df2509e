"""parse_submission: the wire form in, annotations, dump and attachments out."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io

import pytest

from chalicelib import submission
from chalicelib.submission import (
    Limits,
    MalformedSubmission,
    SubmissionTooLarge,
    UnsupportedSubmission,
    parse_submission,
)
from tests.testlib import forms

LIMITS = Limits(max_body_bytes=8 * 1024 * 1024, max_annotations=64, max_annotation_bytes=4096)


def parse(body: bytes, headers: dict[str, str], query=None, limits: Limits = LIMITS):
    lowered = {k.lower(): v for k, v in headers.items()}
    return parse_submission(io.BytesIO(body), lowered, query, limits)


@pytest.mark.parametrize("use_gzip", [True, False])
def test_crashpad_form_parses_fields_dump_and_attachments(use_gzip: bool) -> None:
    dump = forms.fixture_dump()
    body, headers, query = forms.crashpad_form(
        {"platform": "linux", "client_sha": "c0ffee", "prod": "Jami", "ver": "1.0"},
        dump=dump,
        attachments={"att.txt": b"hello\r\n--not a boundary", "zz.log": b"zz"},
        gzip=use_gzip,
        report_uuid="8dfb04e7-6886-4a04-9d1f-37f706baa429",
        guid="1e352e12-b4ef-3442-bcf5-7c40b24e2ea0",
    )
    with parse(body, headers, query) as sub:
        assert sub.annotations == {
            "platform": "linux", "client_sha": "c0ffee", "prod": "Jami", "ver": "1.0",
            "guid": "1e352e12-b4ef-3442-bcf5-7c40b24e2ea0",
        }
        assert sub.dump.read() == dump
        assert sub.dump.size == len(dump)
        assert [(a.filename, a.read()) for a in sub.attachments] == [
            ("att.txt", b"hello\r\n--not a boundary"), ("zz.log", b"zz")]
        assert sub.crashpad_uuid == "8dfb04e7-6886-4a04-9d1f-37f706baa429"
        assert sub.client_guid == "1e352e12-b4ef-3442-bcf5-7c40b24e2ea0"
        assert sub.query == {"guid": query["guid"], "product": "Jami", "version": "1.0"}


def test_gzip_detected_by_magic_without_header() -> None:
    body, headers, _ = forms.crashpad_form(gzip=True)
    del headers["Content-Encoding"]
    with parse(body, headers) as sub:
        assert sub.dump.read() == forms.fixture_dump()


def test_inflated_body_with_stale_gzip_header_is_accepted() -> None:
    body, headers, _ = forms.crashpad_form(gzip=False)
    headers["Content-Encoding"] = "gzip"  # a gateway inflated it but kept the header
    with parse(body, headers) as sub:
        assert sub.dump.read() == forms.fixture_dump()


def test_breakpad_style_dump_with_content_type() -> None:
    body, headers, _ = forms.crashpad_form(
        gzip=False, dump_content_type="application/octet-stream")
    with parse(body, headers) as sub:
        assert sub.dump.read() == forms.fixture_dump()


def test_dump_file_name_that_is_not_a_uuid_gives_no_uuid() -> None:
    body, headers, _ = forms.crashpad_form(gzip=False, report_uuid="../../etc/passwd")
    with parse(body, headers) as sub:
        assert sub.crashpad_uuid is None


def test_invalid_utf8_annotation_is_kept_with_replacement() -> None:
    body, headers, _ = forms.crashpad_form({"k": "x"}, gzip=False)
    body = body.replace(b"\r\n\r\nx\r\n", b"\r\n\r\n\xff\xfe\x00ok\r\n", 1)
    with parse(body, headers) as sub:
        assert sub.annotations["k"] == "\ufffd\ufffd\x00ok"


@pytest.mark.parametrize(
    ("mutate", "error", "reason"),
    [
        (lambda b, h: (b.replace(b'name="upload_file_minidump"', b'name="other"'), h),
         MalformedSubmission, "no upload_file_minidump"),
        (lambda b, h: (b.replace(b"MDMP", b"XXXX", 1), h),
         MalformedSubmission, "MDMP"),
        (lambda b, h: (b[: len(b) // 2], h), MalformedSubmission, "malformed multipart"),
        (lambda b, h: (b, {**h, "Content-Type": "application/json"}),
         UnsupportedSubmission, "multipart/form-data"),
        (lambda b, h: (b, {**h, "Content-Type": "multipart/form-data"}),
         MalformedSubmission, "boundary"),
    ],
)
def test_bad_input_is_rejected_with_a_reason(mutate, error, reason) -> None:
    body, headers, _ = forms.crashpad_form(gzip=False)
    body, headers = mutate(body, headers)
    with pytest.raises(error) as raised:
        parse(body, headers)
    assert reason in raised.value.reason
    assert "\n" not in raised.value.reason


def test_broken_gzip() -> None:
    body, headers, _ = forms.crashpad_form(gzip=True)
    broken = body[:10] + bytes(b ^ 0x55 for b in body[10:40]) + body[40:]
    with pytest.raises(MalformedSubmission, match="gzip"):
        parse(broken, headers)
    with pytest.raises(MalformedSubmission, match="truncated"):
        parse(body[: len(body) // 2], headers)


def test_body_over_limit() -> None:
    body, headers, _ = forms.crashpad_form(dump=forms.fake_dump(300_000), gzip=False)
    with pytest.raises(SubmissionTooLarge, match="body larger"):
        parse(body, headers, limits=Limits(200_000, 64, 4096))


def test_gzip_bomb_stops_at_the_limit_without_inflating_it_all() -> None:
    inner, headers, _ = forms.crashpad_form(dump=b"MDMP" + bytes(50 * 1024 * 1024), gzip=False)
    bomb = gzip.compress(inner, compresslevel=9)
    assert len(bomb) < 200_000
    with pytest.raises(SubmissionTooLarge, match="inflated body larger"):
        parse(bomb, {**headers, "Content-Encoding": "gzip"}, limits=Limits(1024 * 1024, 64, 4096))


def test_too_many_annotations() -> None:
    body, headers, _ = forms.crashpad_form({f"k{i:03d}": "v" for i in range(70)}, gzip=False)
    with pytest.raises(SubmissionTooLarge, match="annotations"):
        parse(body, headers)


def test_annotation_too_large() -> None:
    body, headers, _ = forms.crashpad_form({"big": "x" * 5000}, gzip=False)
    with pytest.raises(SubmissionTooLarge, match="annotation larger"):
        parse(body, headers)


def test_two_dumps_rejected() -> None:
    body, headers, _ = forms.crashpad_form(gzip=False)
    boundary = headers["Content-Type"].split("boundary=")[1]
    dump_header = b'\r\nContent-Disposition: form-data; name="upload_file_minidump"'
    part = body[body.index(b"--" + boundary.encode() + dump_header):]
    doubled = body[: -len(f"--{boundary}--\r\n")] + part
    with pytest.raises(MalformedSubmission, match="more than one"):
        parse(doubled, headers)


def test_unknown_content_encoding() -> None:
    body, headers, _ = forms.crashpad_form(gzip=False)
    with pytest.raises(UnsupportedSubmission, match="Content-Encoding"):
        parse(body, {**headers, "Content-Encoding": "br"})


def test_large_dump_is_spooled_to_disk() -> None:
    dump = forms.fake_dump(3 * 1024 * 1024)
    body, headers, _ = forms.crashpad_form(dump=dump, gzip=True)
    with parse(body, headers) as sub:
        assert not sub.dump.in_memory
        assert sub.dump.read() == dump




def test_parts_share_one_memory_budget_then_one_file() -> None:
    parts = {f"p{i:02d}.bin": bytes([i]) * (1024 * 1024) for i in range(12)}
    body, headers, _ = forms.crashpad_form(dump=forms.fake_dump(1000), attachments=parts)
    with parse(body, headers, limits=dataclasses.replace(LIMITS, max_body_bytes=64 << 20)) as sub:
        in_memory = [p.size for p in [sub.dump, *sub.attachments] if p.in_memory]
        assert sum(in_memory) <= submission.MEMORY_BUDGET
        # Files arrive sorted: p00 and p01 spend the budget, the rest and the dump spill.
        assert in_memory == [1024 * 1024, 1024 * 1024]
        assert not sub.dump.in_memory and sub.dump.read() == forms.fake_dump(1000)
        on_disk = [p for p in [sub.dump, *sub.attachments] if not p.in_memory]
        assert len(on_disk) == 11
        assert len({id(p.content.raw.shared) for p in on_disk}) == 1
        assert [(a.filename, a.read()) for a in sub.attachments] == list(parts.items())
        shared = on_disk[0].content.raw.shared
        assert not shared.file.closed
    assert shared.file.closed


def test_a_part_spilled_midway_keeps_its_bytes_in_order() -> None:
    dump = forms.fake_dump(submission.MEMORY_BUDGET + 12345, seed=3)
    body, headers, _ = forms.crashpad_form(dump=dump, attachments={"a.txt": b"after"})
    with parse(body, headers) as sub:
        assert not sub.dump.in_memory and sub.dump.read() == dump
        assert sub.dump.sha256 == hashlib.sha256(dump).hexdigest()
        assert sub.attachments[0].in_memory and sub.attachments[0].read() == b"after"
        sub.dump.content.seek(4)
        assert sub.dump.content.read(4) == dump[4:8]


def test_too_many_attachments() -> None:
    parts = {f"p{i}.txt": b"x" for i in range(6)}
    body, headers, _ = forms.crashpad_form(attachments=parts)
    with parse(body, headers, limits=dataclasses.replace(LIMITS, max_attachments=6)) as sub:
        assert len(sub.attachments) == 6
    parts["p6.txt"] = b"y"
    body, headers, _ = forms.crashpad_form(attachments=parts)
    with pytest.raises(SubmissionTooLarge, match="more than 6 attachments"):
        parse(body, headers, limits=dataclasses.replace(LIMITS, max_attachments=6))
    assert submission.Limits(1, 1, 1).max_attachments == submission.MAX_ATTACHMENTS == 128


def test_annotations_together_are_bounded() -> None:
    limits = Limits(max_body_bytes=64 << 20, max_annotations=512, max_annotation_bytes=65536)
    fields = {f"a{i:03d}": "v" * 65000 for i in range(15)}
    body, headers, _ = forms.crashpad_form(fields)
    with parse(body, headers, limits=limits) as sub:
        assert len(sub.annotations) == 15 + 1
    fields.update({f"b{i:03d}": "v" * 65000 for i in range(2)})
    body, headers, _ = forms.crashpad_form(fields)
    with pytest.raises(SubmissionTooLarge, match="annotations larger than 1024 KiB together"):
        parse(body, headers, limits=limits)


def test_annotations_are_bounded_as_the_metadata_will_hold_them() -> None:
    """A control character takes 6 bytes of JSON, an invalid byte 3 (U+FFFD): 200 KiB
    sent would be over 1 MiB stored, a memory cost the bytes sent do not show."""
    limits = Limits(max_body_bytes=64 << 20, max_annotations=512, max_annotation_bytes=65536)
    for value in ("\x01" * 50_000, "\x1f" * 50_000):
        fields = {f"a{i}": value for i in range(4)}
        body, headers, _ = forms.crashpad_form(fields)
        with pytest.raises(SubmissionTooLarge, match="1024 KiB together, as stored"):
            parse(body, headers, limits=limits)
    plain = {f"a{i}": "\x01" * 40_000 for i in range(4)}  # 960 KiB stored
    body, headers, _ = forms.crashpad_form(plain)
    with parse(body, headers, limits=limits) as sub:
        assert sub.annotations["a3"] == "\x01" * 40_000
