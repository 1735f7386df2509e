"""Settings: defaults, parsing errors, and the README table kept in step with SETTINGS."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from chalicelib.config import (
    EXPECT_CONTINUE_SECONDS,
    GATEWAY_SECONDS,
    OUTSIDE_STORAGE_SECONDS,
    SETTINGS,
    Config,
    ConfigError,
)

README = Path(__file__).resolve().parents[1] / "README.md"


def test_defaults() -> None:
    cfg = Config.from_env({})
    assert cfg.max_reports_bytes == 5120 * 1024 * 1024
    assert (cfg.submit_port, cfg.reports_port) == (8080, 8081)
    assert cfg.storage_retry_seconds == 20
    assert cfg.prune_rate_minutes == 10
    assert cfg.orphan_grace_seconds == 3600
    assert cfg.bucket == "crash-reports" and cfg.prefix == ""


def test_prefix_gets_a_trailing_slash() -> None:
    assert Config.from_env({"REPORTS_PREFIX": "crashes"}).prefix == "crashes/"


@pytest.mark.parametrize("name", ["MAX_REPORTS_SIZE_MB", "SUBMIT_SERVER_PORT",
                                  "STORAGE_RETRY_SECONDS"])
def test_malformed_numbers_name_the_setting(name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Config.from_env({name: "lots"})


def test_readme_table_lists_every_setting_with_its_default() -> None:
    rows = {}
    for line in README.read_text().splitlines():
        match = re.match(r"^\| `([A-Z0-9_]+)` \| (.*?) \|", line)
        if match:
            rows[match[1]] = match[2]
    for setting in SETTINGS:
        assert setting.name in rows, f"{setting.name} missing from the README table"
        shown = rows[setting.name].strip("`")
        assert shown == (setting.default or "(empty)"), setting.name


NUMERIC = [s.name for s in SETTINGS if s.default and s.default.replace(".", "").isdigit()]
ZERO_MEANS_SOMETHING = {"DOWNLOAD_REDIRECT_MB": "never redirect", "PROCESSING_WORKERS": "none"}


def test_every_numeric_setting_is_checked() -> None:
    assert len(NUMERIC) == 17 and "ORPHAN_GRACE_MINUTES" in NUMERIC
    assert set(ZERO_MEANS_SOMETHING) <= set(NUMERIC)


@pytest.mark.parametrize("name", NUMERIC)
@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "1e999", "-1", "-0.5", "",
                                   "1e308", "1e13", "99999999999999999999"])
def test_non_finite_and_negative_numbers_are_refused_by_name(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"^{name} must be"):
        Config.from_env({name: value})


@pytest.mark.parametrize("name", NUMERIC)
def test_zero_is_refused_unless_it_means_something(name: str) -> None:
    if name in ZERO_MEANS_SOMETHING:
        cfg = Config.from_env({name: "0"})
        assert (cfg.download_redirect_bytes, cfg.processing_workers)[
            name == "PROCESSING_WORKERS"] == 0
    else:
        with pytest.raises(ConfigError, match=f"^{name} must be"):
            Config.from_env({name: "0"})


def test_ports_stay_within_tcp() -> None:
    assert Config.from_env({"LOCAL_S3_PORT": "65535"}).local_s3_port == 65535
    with pytest.raises(ConfigError, match="LOCAL_S3_PORT must be at least 1 and at most 65535"):
        Config.from_env({"LOCAL_S3_PORT": "65536"})


def test_storage_seconds_add_the_budget_and_one_attempts_timeouts() -> None:
    cfg = Config.from_env({"STORAGE_RETRY_SECONDS": "11", "S3_CONNECT_TIMEOUT_SECONDS": "2",
                           "S3_READ_TIMEOUT_SECONDS": "10"})
    assert (cfg.storage_retry_seconds, cfg.s3_connect_timeout, cfg.s3_read_timeout) == (11, 2, 10)
    assert cfg.storage_seconds == 11 + 2 + EXPECT_CONTINUE_SECONDS + 10 == 24
    assert cfg.answer_seconds == 24 + OUTSIDE_STORAGE_SECONDS == 27


def test_on_lambda_a_budget_that_passes_the_gateway_is_refused() -> None:
    lambda_env = {"AWS_LAMBDA_FUNCTION_NAME": "crash-collector-dev"}
    with pytest.raises(ConfigError, match=r"STORAGE_RETRY_SECONDS .* = 39 s.* 29 s"):
        Config.from_env(lambda_env)  # the defaults: 20 + 3 + 1 + 15, fine locally
    Config.from_env({})
    # 29 - 3 outside storage leaves 26 s: a sum of 26 is refused, 25.9 is not.
    fits = {"STORAGE_RETRY_SECONDS": "14.9", "S3_CONNECT_TIMEOUT_SECONDS": "2",
            "S3_READ_TIMEOUT_SECONDS": "8"}
    assert Config.from_env({**lambda_env, **fits}).answer_seconds == pytest.approx(28.9)
    with pytest.raises(ConfigError, match="STORAGE_RETRY_SECONDS"):
        Config.from_env({**lambda_env, **fits, "STORAGE_RETRY_SECONDS": "15"})
    assert GATEWAY_SECONDS == 29


def test_orphan_grace_has_a_floor_derived_from_the_longest_upload() -> None:
    assert Config.from_env({}).orphan_floor_seconds == 39 + 15 * 60
    assert Config.from_env({"ORPHAN_GRACE_MINUTES": "16"}).orphan_grace_seconds == 960
    with pytest.raises(ConfigError, match="^ORPHAN_GRACE_MINUTES must be at least 16: .* 39 s"):
        Config.from_env({"ORPHAN_GRACE_MINUTES": "15.9"})
    # A longer budget makes uploads longer, and the floor with them: 120 + 19 + 900 s.
    longer = {"STORAGE_RETRY_SECONDS": "120", "ORPHAN_GRACE_MINUTES": "17"}
    with pytest.raises(ConfigError, match="at least 18: .* 139 s"):
        Config.from_env(longer)
    assert Config.from_env({**longer, "ORPHAN_GRACE_MINUTES": "18"}).orphan_grace_seconds == 1080


def test_readme_table_says_what_the_help_says() -> None:
    rows = {}
    for line in README.read_text().splitlines():
        match = re.match(r"^\| `([A-Z0-9_]+)` \| .*? \| (.*) \|$", line)
        if match:
            rows[match[1]] = match[2]
    for setting in SETTINGS:
        assert rows[setting.name] == setting.help, setting.name
