"""Settings, read once from the environment.

Every setting is declared in SETTINGS with its default and help text; the README's
configuration table lists the same names (tests/test_config.py checks both agree).
boto3 reads the S3 endpoint (AWS_ENDPOINT_URL_S3) and credentials itself.

A value that could hurt is refused at boot, naming the setting: numbers that are not
finite, negative, zero where zero means nothing sensible, a storage budget that cannot
answer before API Gateway does, an orphan grace period shorter than an upload.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from typing import NamedTuple


class Setting(NamedTuple):
    name: str
    default: str
    help: str


SETTINGS = (
    Setting("REPORTS_BUCKET", "crash-reports", "S3 bucket that holds the reports."),
    Setting("REPORTS_PREFIX", "", "Key prefix inside the bucket (e.g. `crashes/`)."),
    Setting(
        "MAX_REPORTS_SIZE_MB",
        "5120",
        "Pruning keeps the bucket's reports under this many MiB, oldest deleted first.",
    ),
    Setting(
        "MAX_SUBMISSION_MB",
        "256",
        "Largest accepted upload, before and after gzip inflation (MiB); larger gets 413.",
    ),
    Setting(
        "MAX_ANNOTATIONS",
        "512",
        "Most annotation fields accepted in one submission; more gets 413.",
    ),
    Setting(
        "MAX_ANNOTATION_KB",
        "64",
        "Largest single annotation value (KiB); larger gets 413.",
    ),
    Setting(
        "STORAGE_RETRY_SECONDS",
        "20",
        "How long a request retries a failing bucket before answering 503: no S3 attempt"
        " starts later, so the answer comes within this, the two S3 timeouts and 1 s.",
    ),
    Setting(
        "S3_CONNECT_TIMEOUT_SECONDS",
        "3",
        "Longest wait for a connection to S3, per attempt.",
    ),
    Setting(
        "S3_READ_TIMEOUT_SECONDS",
        "15",
        "Longest wait for S3 to send or take the next bytes, per attempt.",
    ),
    Setting(
        "PRUNE_RATE_MINUTES",
        "10",
        "Minutes between scheduled pruning runs (on AWS and in the local run).",
    ),
    Setting(
        "ORPHAN_GRACE_MINUTES",
        "60",
        "Parts of an upload that never committed are removed after this many minutes;"
        " at least the longest upload plus S3's 15-minute clock allowance (16 by default).",
    ),
    Setting(
        "VIEWER_USERS",
        "",
        "Viewer logins, `user:hash` pairs separated by commas; hashes from "
        "`python -m chalicelib.auth hash`. Empty: the viewer refuses to serve.",
    ),
    Setting(
        "DOWNLOAD_REDIRECT_MB",
        "0",
        "Viewer downloads larger than this (MiB) answer 302 to a 5-minute presigned S3 URL;"
        " 0: never. Set 4 on Lambda, whose responses stop at 6 MB.",
    ),
    Setting(
        "SYMBOL_UPLOAD_KEYS",
        "",
        "Symbol upload keys, `name:hash` pairs like VIEWER_USERS; clients send `NAME:KEY`"
        " (HTTP Basic or `?key=`). Empty: symbol uploads are refused.",
    ),
    Setting(
        "MAX_SYMBOL_MB",
        "2048",
        "Largest accepted symbol file (MiB, after gzip); larger gets 413.",
    ),
    Setting(
        "PROCESSING_WORKERS",
        "1",
        "Local run: worker processes that process dumps (0: none, process with the backfill"
        " command instead).",
    ),
    Setting(
        "PROCESSING_TIMEOUT_SECONDS",
        "60",
        "Time budget for processing one dump; a dump over it is stored as ERROR_TIME_BUDGET.",
    ),
    Setting(
        "PROCESSING_MEMORY_MB",
        "1024",
        "Memory budget for processing one dump (MiB of address space); a dump over it is"
        " stored as ERROR_MEMORY_BUDGET.",
    ),
    Setting("SUBMIT_SERVER_PORT", "8080", "Local run: port of the submit server."),
    Setting("REPORTS_SERVER_PORT", "8081", "Local run: port of the viewer."),
    Setting("LOCAL_S3_PORT", "8333", "Local run: port of the embedded S3 server."),
)

MIB = 1024 * 1024
LARGEST = 1e12  # any setting: an exabyte in MiB, 30,000 years in seconds

# API Gateway (REST) ends every request at 29 s: a Lambda answer must be out by then.
GATEWAY_SECONDS = 29.0
# What a Lambda request spends outside S3 calls: a cold start (imports, first client),
# reading and parsing a body of at most 6 MB, building the answer.
OUTSIDE_STORAGE_SECONDS = 3.0
# botocore sends S3 bodies with `Expect: 100-continue` and waits up to 1 s for the
# 100 Continue before sending the body anyway: one more wait per attempt.
EXPECT_CONTINUE_SECONDS = 1.0
# S3 refuses a request signed more than 15 minutes away from its own clock, so the
# LastModified of a part and the pruner's clock can differ by that much.
S3_CLOCK_ALLOWANCE_SECONDS = 15 * 60


class ConfigError(ValueError):
    """A setting has a value that cannot be used."""


@dataclasses.dataclass(frozen=True)
class Config:
    bucket: str
    prefix: str
    max_reports_bytes: int
    max_submission_bytes: int
    max_annotations: int
    max_annotation_bytes: int
    storage_retry_seconds: float
    s3_connect_timeout: float
    s3_read_timeout: float
    prune_rate_minutes: int
    orphan_grace_seconds: int
    viewer_users: str
    download_redirect_bytes: int
    symbol_upload_keys: str
    max_symbol_bytes: int
    processing_workers: int
    processing_seconds: float
    processing_memory_mb: float
    submit_port: int
    reports_port: int
    local_s3_port: int

    @property
    def storage_seconds(self) -> float:
        """The longest a request spends on storage, failing or not.

        Every S3 attempt starts within storage_retry_seconds of the first (bucket.py
        starts none later), and the last one ends within its waits: the connection, the
        100 Continue, the answer (they bound each wait; moving a body takes its own
        time, which for Lambda's bodies of at most 6 MB within the region
        OUTSIDE_STORAGE_SECONDS covers).
        """
        return (self.storage_retry_seconds + self.s3_connect_timeout
                + EXPECT_CONTINUE_SECONDS + self.s3_read_timeout)

    @property
    def answer_seconds(self) -> float:
        """The latest a Lambda request answers: storage plus what happens outside it."""
        return self.storage_seconds + OUTSIDE_STORAGE_SECONDS

    @property
    def orphan_floor_seconds(self) -> float:
        """The shortest safe ORPHAN_GRACE_MINUTES, in seconds.

        An upload's body is received whole before its first write, so its parts are all
        written, and its report committed, within storage_seconds of the first part;
        ages are read from S3's clock, which may be S3_CLOCK_ALLOWANCE_SECONDS off ours.
        """
        return self.storage_seconds + S3_CLOCK_ALLOWANCE_SECONDS

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        """Build the config from a mapping (os.environ by default), defaults filled in.

        Raises ConfigError naming the setting when a value is malformed or unsafe.
        """
        env = os.environ if environ is None else environ
        raw = {s.name: env.get(s.name, s.default) for s in SETTINGS}

        def number(name: str, kind: type = float, minimum: float = 0.0,
                   zero: bool = False, maximum: float = LARGEST) -> float:
            """A finite number above minimum (or exactly 0 when zero is allowed), at most
            maximum: larger ones overflow once scaled to bytes or seconds."""
            text = raw[name].strip()
            try:
                value = kind(text)
            except ValueError:
                word = "a whole number" if kind is int else "a number"
                raise ConfigError(f"{name} must be {word}, not {raw[name]!r}") from None
            if not math.isfinite(value):
                raise ConfigError(f"{name} must be a finite number, not {raw[name]!r}")
            if zero and value == 0:
                return value
            if value <= 0 or value < minimum or value > maximum:
                if zero:
                    bounds = "0 or more"
                else:
                    bounds = f"at least {minimum:g}" if minimum > 0 else "greater than 0"
                bounds += f" and at most {maximum:g}"
                raise ConfigError(f"{name} must be {bounds}, not {raw[name]!r}")
            return value

        def port(name: str) -> int:
            return int(number(name, int, 1, maximum=65535))

        prefix = raw["REPORTS_PREFIX"]
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        if not raw["REPORTS_BUCKET"]:
            raise ConfigError("REPORTS_BUCKET must not be empty")
        cfg = cls(
            bucket=raw["REPORTS_BUCKET"],
            prefix=prefix,
            max_reports_bytes=int(number("MAX_REPORTS_SIZE_MB") * MIB),
            max_submission_bytes=int(number("MAX_SUBMISSION_MB", float, 0.001) * MIB),
            max_annotations=int(number("MAX_ANNOTATIONS", int, 1)),
            max_annotation_bytes=int(number("MAX_ANNOTATION_KB", float, 1) * 1024),
            storage_retry_seconds=number("STORAGE_RETRY_SECONDS"),
            s3_connect_timeout=number("S3_CONNECT_TIMEOUT_SECONDS"),
            s3_read_timeout=number("S3_READ_TIMEOUT_SECONDS"),
            prune_rate_minutes=int(number("PRUNE_RATE_MINUTES", int, 1)),
            orphan_grace_seconds=int(number("ORPHAN_GRACE_MINUTES") * 60),
            viewer_users=raw["VIEWER_USERS"],
            download_redirect_bytes=int(number("DOWNLOAD_REDIRECT_MB", zero=True) * MIB),
            symbol_upload_keys=raw["SYMBOL_UPLOAD_KEYS"],
            max_symbol_bytes=int(number("MAX_SYMBOL_MB", float, 0.001) * MIB),
            processing_workers=int(number("PROCESSING_WORKERS", int, zero=True)),
            processing_seconds=number("PROCESSING_TIMEOUT_SECONDS"),
            processing_memory_mb=number("PROCESSING_MEMORY_MB"),
            submit_port=port("SUBMIT_SERVER_PORT"),
            reports_port=port("REPORTS_SERVER_PORT"),
            local_s3_port=port("LOCAL_S3_PORT"),
        )
        cfg.check_budgets(behind_gateway=on_lambda(env))
        return cfg

    def check_budgets(self, behind_gateway: bool) -> None:
        """Refuse timings that lose uploads: raises ConfigError naming the setting."""
        floor_minutes = math.ceil(self.orphan_floor_seconds / 60)
        if self.orphan_grace_seconds < floor_minutes * 60:
            raise ConfigError(
                f"ORPHAN_GRACE_MINUTES must be at least {floor_minutes}: an upload writes its"
                f" parts within {self.storage_seconds:g} s (STORAGE_RETRY_SECONDS +"
                " S3_CONNECT_TIMEOUT_SECONDS + 1 s for 100 Continue + S3_READ_TIMEOUT_SECONDS),"
                " and S3's clock may be 15 minutes off this host's"
            )
        if behind_gateway and self.answer_seconds >= GATEWAY_SECONDS:
            raise ConfigError(
                "STORAGE_RETRY_SECONDS + S3_CONNECT_TIMEOUT_SECONDS + 1 s for 100 Continue +"
                f" S3_READ_TIMEOUT_SECONDS = {self.storage_seconds:g} s, plus"
                f" {OUTSIDE_STORAGE_SECONDS:g} s outside storage, must stay under API"
                f" Gateway's {GATEWAY_SECONDS:g} s: lower them"
            )


def on_lambda(environ: Mapping[str, str]) -> bool:
    """True inside AWS Lambda, whose API requests API Gateway ends at 29 s."""
    return bool(environ.get("AWS_LAMBDA_FUNCTION_NAME"))


def load() -> Config:
    return Config.from_env()
