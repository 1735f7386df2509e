"""What a pruning run reads from its one listing: committed reports, the parts of each
upload (grouped by stem), and what processing wrote; pruning.py decides from it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol

from chalicelib import crash_store, report_keys, symbol_store
from chalicelib.crash_store import CRASHES, SIGNATURES, CrashEntry
from chalicelib.store import ReportStore

FACETS = ("product", "version", "platform")


class Counts(Protocol):
    """Where scan counts what it saw (PruneResult)."""

    objects_scanned: int
    other_keys: int


@dataclasses.dataclass(slots=True)
class Report:
    id: str
    key: str
    claim: str  # the stem of its parts (report_keys.ReportSummary.claim)
    meta_size: int
    facets: tuple[str, ...]
    parts_size: int = 0  # the stem's parts, counted on the newest report of that stem
    part_keys: Sequence[str] = ()
    output_keys: list[str] = dataclasses.field(default_factory=list)  # processing's keys


@dataclasses.dataclass(slots=True)
class Upload:
    """The parts stored under one stem."""

    keys: list[str]
    size: int
    newest: float  # POSIX time of the newest part; a float is a third of a datetime


def attach_resumed_claims(
    reports: Sequence[Report], uploads: dict[str, Upload], cutoff: float
) -> None:
    """Give a report that a retry resumed under a fresh stem the claim's own parts.

    The claim (the first attempt's dump) is what makes later retries answer that
    report's id, so it is counted with the report and deleted with it, never as an
    orphan; parts younger than the grace period stay (an attempt may be writing them).
    """
    resumed = {
        report_keys.base_claim(item.claim): item for item in reports
        if item.claim != report_keys.base_claim(item.claim)
    }
    for claim in [claim for claim in uploads if claim in resumed]:
        upload, item = uploads.pop(claim), resumed[claim]
        item.parts_size += upload.size
        if upload.newest < cutoff:
            item.part_keys = [*item.part_keys, *upload.keys]


@dataclasses.dataclass
class Output:
    """What processing wrote, by report id: crash keys and signature markers."""

    crashes: dict[str, CrashEntry] = dataclasses.field(default_factory=dict)
    keys: dict[str, list[tuple[str, float]]] = dataclasses.field(default_factory=dict)
    orphan_keys: list[str] = dataclasses.field(default_factory=list)
    notes: dict[tuple[str, str], list[str]] = dataclasses.field(default_factory=dict)
    with_symbols: set[tuple[str, str]] = dataclasses.field(default_factory=set)
    staged: list[tuple[str, float]] = dataclasses.field(default_factory=list)

    def add(self, report_id: str, key: str, modified: float) -> None:
        self.keys.setdefault(report_id, []).append((key, modified))


def scan(store: ReportStore, result: Counts) -> tuple[list[Report], dict[str, Upload], Output]:
    """One pass over the listing: reports, parts grouped by stem, processing output,
    and the rest counted into result."""
    reports: list[Report] = []
    uploads: dict[str, Upload] = {}
    output = Output()
    crashes_at, markers_at = store.prefix + CRASHES, store.prefix + SIGNATURES
    missing_at = store.prefix + symbol_store.MISSING
    symbols_at = (store.prefix + symbol_store.SYMBOLS, store.prefix + symbol_store.SYMBOL_LOG)
    staged_at = store.prefix + symbol_store.UPLOADS
    facets: dict[tuple[str, ...], tuple[str, ...]] = {}  # one tuple per distinct combination
    for stored in store.iter_objects():
        result.objects_scanned += 1
        if stored.kind == "report" and stored.summary is not None:
            facts = stored.summary.facts
            combination = tuple(facts.get(name, "") for name in FACETS)
            reports.append(
                Report(
                    id=stored.summary.id,
                    key=stored.key,
                    claim=stored.claim,
                    meta_size=stored.size,
                    facets=facets.setdefault(combination, combination),
                )
            )
        elif stored.kind == "part":
            modified = stored.last_modified.timestamp()
            upload = uploads.get(stored.claim)
            if upload is None:
                uploads[stored.claim] = Upload([stored.key], stored.size, modified)
            else:
                upload.keys.append(stored.key)
                upload.size += stored.size
                upload.newest = max(upload.newest, modified)
        elif stored.key.startswith(crashes_at):
            entry = crash_store.parse_crash_name(stored.key[len(crashes_at):], stored.key)
            if entry is None:
                result.other_keys += 1
                continue
            # Two keys for one report only while it is reprocessed: count the newest.
            output.crashes[entry.report_id] = entry
            output.add(entry.report_id, stored.key, stored.last_modified.timestamp())
        elif stored.key.startswith(markers_at):
            marker = crash_store.parse_marker_name(stored.key[len(markers_at):])
            if marker is None:
                result.other_keys += 1
                continue
            output.add(marker[1].id, stored.key, stored.last_modified.timestamp())
        elif stored.key.startswith(missing_at):
            missing = symbol_store.parse_missing_key(stored.key[len(missing_at):], stored.key)
            if missing is None:
                result.other_keys += 1
                continue
            output.add(missing.report_id, stored.key, stored.last_modified.timestamp())
            output.notes.setdefault((missing.debug_file, missing.debug_id), []).append(
                missing.report_id)
        elif stored.key.startswith(symbols_at):
            if stored.key.endswith(".sym") and stored.key.startswith(symbols_at[0]):
                found = symbol_store.module_of(stored.key[len(symbols_at[0]):])
                if found is not None:
                    output.with_symbols.add(found)
        elif stored.key.startswith(staged_at):
            # A sym-upload-v2 file never completed: an orphan once past the grace period.
            output.staged.append((stored.key, stored.last_modified.timestamp()))
        elif stored.kind == "other" and not stored.key.endswith(crash_store.SIGNATURE_SUMMARY):
            result.other_keys += 1
    return reports, uploads, output
