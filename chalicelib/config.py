"""Settings, read once from the environment.

Every setting is declared in SETTINGS with its default and help text; the README's
configuration table lists the same names (tests/test_config.py checks both agree).
boto3 reads the S3 endpoint (AWS_ENDPOINT_URL_S3) and credentials itself.
"""

from __future__ import annotations

import dataclasses
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
        "How long a submission retries a failing bucket before answering 503.",
    ),
    Setting(
        "PRUNE_RATE_MINUTES",
        "10",
        "Minutes between scheduled pruning runs (on AWS and in the local run).",
    ),
    Setting(
        "ORPHAN_GRACE_MINUTES",
        "60",
        "Parts of an upload that never committed are removed after this many minutes.",
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

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        """Build the config from a mapping (os.environ by default), defaults filled in.

        Raises ConfigError naming the setting when a value is malformed.
        """
        env = os.environ if environ is None else environ
        raw = {s.name: env.get(s.name, s.default) for s in SETTINGS}

        def number(name: str, kind: type = int, minimum: float = 0) -> float:
            try:
                value = kind(raw[name])
            except ValueError:
                raise ConfigError(f"{name} must be a number, not {raw[name]!r}") from None
            if value < minimum:
                raise ConfigError(f"{name} must be at least {minimum}")
            return value

        prefix = raw["REPORTS_PREFIX"]
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        if not raw["REPORTS_BUCKET"]:
            raise ConfigError("REPORTS_BUCKET must not be empty")
        return cls(
            bucket=raw["REPORTS_BUCKET"],
            prefix=prefix,
            max_reports_bytes=int(number("MAX_REPORTS_SIZE_MB", float) * MIB),
            max_submission_bytes=int(number("MAX_SUBMISSION_MB", float, 0.001) * MIB),
            max_annotations=int(number("MAX_ANNOTATIONS", int, 1)),
            max_annotation_bytes=int(number("MAX_ANNOTATION_KB", float, 1) * 1024),
            storage_retry_seconds=number("STORAGE_RETRY_SECONDS", float),
            prune_rate_minutes=int(number("PRUNE_RATE_MINUTES", int, 1)),
            orphan_grace_seconds=int(number("ORPHAN_GRACE_MINUTES", float) * 60),
            viewer_users=raw["VIEWER_USERS"],
            download_redirect_bytes=int(number("DOWNLOAD_REDIRECT_MB", float) * MIB),
            symbol_upload_keys=raw["SYMBOL_UPLOAD_KEYS"],
            max_symbol_bytes=int(number("MAX_SYMBOL_MB", float, 0.001) * MIB),
            processing_workers=int(number("PROCESSING_WORKERS", int)),
            processing_seconds=number("PROCESSING_TIMEOUT_SECONDS", float),
            processing_memory_mb=number("PROCESSING_MEMORY_MB", float),
            submit_port=int(number("SUBMIT_SERVER_PORT", int, 1)),
            reports_port=int(number("REPORTS_SERVER_PORT", int, 1)),
            local_s3_port=int(number("LOCAL_S3_PORT", int, 1)),
        )


def load() -> Config:
    return Config.from_env()
