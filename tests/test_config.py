"""Settings: defaults, parsing errors, and the README table kept in step with SETTINGS."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from chalicelib.config import SETTINGS, Config, ConfigError

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
