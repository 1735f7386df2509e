"""The pruner's per-signature counts (`P/signatures.json`), read at most every 30 s.

The summary is one object the pruner rewrites every PRUNE_RATE_MINUTES, so a process
keeps what it read for SUMMARY_SECONDS instead of reading it for every page. A summary
that is missing, unreadable or of another schema is treated as absent.
"""

from __future__ import annotations

import threading
import time
import weakref
from typing import Any

from chalicelib.crash_store import CrashStore
from chalicelib.store import StoreError

SUMMARY_SECONDS = 30.0
SCHEMA = 1

_cache: weakref.WeakKeyDictionary[CrashStore, tuple[float, dict[str, Any] | None]] = (
    weakref.WeakKeyDictionary()
)
_lock = threading.Lock()


def signature_summary(crashes: CrashStore) -> dict[str, Any] | None:
    """The last signatures.json the pruner wrote, or None without a usable one."""
    now = time.monotonic()
    with _lock:
        cached = _cache.get(crashes)
    if cached is not None and cached[0] > now:
        return cached[1]
    try:
        summary = usable(crashes.get_signature_summary())
    except (StoreError, ValueError):  # unreadable: the pages say there is no summary yet
        summary = None
    with _lock:
        _cache[crashes] = (now + SUMMARY_SECONDS, summary)
    return summary


def usable(summary: Any) -> dict[str, Any] | None:
    """The summary when its shape is the one the pages read, else None."""
    if not isinstance(summary, dict) or summary.get("schema") != SCHEMA:
        return None
    days = summary.get("days")
    if not isinstance(days, list) or not all(isinstance(day, str) for day in days):
        return None
    if not isinstance(summary.get("signatures"), dict):
        return None
    return summary


def count(value: Any) -> int:
    """A count from the summary; anything but a non-negative int counts as 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return 0
    return value


def counts(value: Any) -> dict[str, int]:
    """A {name: count} map from the summary, odd entries dropped."""
    if not isinstance(value, dict):
        return {}
    return {str(name): count(n) for name, n in value.items() if count(n) > 0}
