"""Per-signature counts for the Crashes page, built from the pruner's one listing.

The pruner lists the whole prefix anyway; from the report keys (id, version, platform,
product) and the crash keys (signature id, reason, signature text) it builds
P/signatures.json, so the Crashes page reads one object instead of every report.
docs/storage-layout.md gives the schema.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
from collections.abc import Iterable
from typing import Any

from chalicelib import report
from chalicelib.crash_store import CrashEntry

SCHEMA = 1
DAYS = 30
# Most signatures kept (by count) and most values per facet of one signature.
SIGNATURE_LIMIT = 5000
FACET_LIMIT = 50
MISSING_SYMBOLS_LIMIT = 100


@dataclasses.dataclass(frozen=True, slots=True)
class CountedReport:
    id: str
    product: str
    version: str
    platform: str


@dataclasses.dataclass(slots=True)
class _Signature:
    signature: str
    signature_cut: bool
    reason: str
    count: int = 0
    first_seen: str = ""
    last_seen: str = ""
    versions: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    platforms: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    products: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    by_day: dict[str, collections.Counter[str]] = dataclasses.field(default_factory=dict)


def build(
    reports: Iterable[CountedReport], crashes: dict[str, CrashEntry], now: datetime.datetime
) -> dict[str, Any]:
    """The summary of `reports`, each counted under its crash's signature (if processed)."""
    today = now.astimezone(datetime.timezone.utc).date()
    days = [(today - datetime.timedelta(days=n)).isoformat() for n in range(DAYS - 1, -1, -1)]
    window = set(days)
    signatures: dict[str, _Signature] = {}
    total = processed = errors = 0
    newest = None
    for item in reports:
        total += 1
        newest = item.id if newest is None or item.id > newest else newest
        entry = crashes.get(item.id)
        if entry is None:
            continue
        processed += 1
        if entry.is_error:
            errors += 1
            continue
        counted = signatures.get(entry.sig)
        if counted is None:
            counted = signatures[entry.sig] = _Signature(
                entry.signature, entry.signature_cut, entry.reason
            )
        counted.count += 1
        if not counted.first_seen or item.id < counted.first_seen:
            counted.first_seen = item.id
        if item.id > counted.last_seen:
            counted.last_seen = item.id
        counted.versions[item.version] += 1
        counted.platforms[item.platform] += 1
        counted.products[item.product] += 1
        day = report.report_time(item.id).date().isoformat()
        if day in window:
            counted.by_day.setdefault(day, collections.Counter())[item.version] += 1
    ranked = sorted(signatures.items(), key=lambda pair: (-pair[1].count, pair[0]))
    kept = ranked[:SIGNATURE_LIMIT]
    return {
        "schema": SCHEMA,
        "generated_at": report.isoformat(now),
        "newest_id": newest,
        "total_reports": total,
        "processed": processed,
        "unprocessed": total - processed,
        "errors": errors,
        "days": days,
        "omitted_signatures": len(ranked) - len(kept),
        "signatures": {sig: _as_json(counted) for sig, counted in kept},
    }


def _as_json(counted: _Signature) -> dict[str, Any]:
    return {
        "signature": counted.signature,
        "signature_cut": counted.signature_cut,
        "reason": counted.reason,
        "count": counted.count,
        "first_seen": counted.first_seen,
        "last_seen": counted.last_seen,
        "versions": dict(counted.versions.most_common(FACET_LIMIT)),
        "platforms": dict(counted.platforms.most_common(FACET_LIMIT)),
        "products": dict(counted.products.most_common(FACET_LIMIT)),
        "by_day": {day: dict(counts) for day, counts in sorted(counted.by_day.items())},
    }


def missing_symbols(
    counts: collections.Counter[tuple[str, str]], with_symbols: set[tuple[str, str]]
) -> list[dict[str, Any]]:
    """Modules most often in crashing threads that still have no symbols, most first:
    the ones whose upload would name the most frames."""
    ranked = [
        {"debug_file": debug_file, "debug_id": debug_id, "reports": count}
        for (debug_file, debug_id), count in counts.most_common()
        if (debug_file, debug_id) not in with_symbols
    ]
    return ranked[:MISSING_SYMBOLS_LIMIT]
