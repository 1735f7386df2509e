"""The benchmarks' common output: rows of (figure, value, same-run baseline, ratio)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

Row = tuple[str, str, str, str]
HEADERS: Row = ("figure", "value", "baseline", "ratio")


def ratio(value: float, baseline: float) -> str:
    return f"{value / baseline:.2f}" if baseline else "-"


def print_table(lines: Sequence[Sequence[str]]) -> None:
    """Left-aligned columns, the first line the headers."""
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(lines[0]))]
    for line in lines:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(line, widths)).rstrip())


def emit(result: dict[str, Any], rows: list[Row], as_json: bool) -> None:
    """A benchmark's answer: its JSON with its rows (what `python -m bench` reads), or
    the table."""
    if as_json:
        print(json.dumps({**result, "rows": rows}, indent=2))
    else:
        print_table([HEADERS, *rows])
