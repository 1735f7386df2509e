"""Index-page queries: the filters, cursor and page size read from a URL."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping

from chalicelib import report
from chalicelib.crash_store import is_signature_id

PER_PAGE = 25
MAX_PER_PAGE = 100
FILTER_FIELDS = report.FACT_FIELDS
DATE_FIELDS = ("since", "until")


class BadQuery(ValueError):
    """A filter, cursor or page size in the URL cannot be used."""


@dataclasses.dataclass(frozen=True)
class Query:
    """What an index page shows: filters, a cursor, the page size.

    `before` shows reports older than that id, `after` the ones just newer; both are
    16 hex digits (any value works, not only existing ids). `offset` is only a hint for
    "Showing X-Y": cursors, not offsets, decide what a page holds.
    """

    fields: tuple[tuple[str, str], ...] = ()
    since: datetime.date | None = None
    until: datetime.date | None = None
    before: str | None = None
    after: str | None = None
    offset: int = 0
    per_page: int = PER_PAGE
    signature: str | None = None  # a signature id: that signature's reports only

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> Query:
        """Read a query string's values; empty values mean "not filtered". Raises BadQuery."""
        fields = tuple(
            (name, params[name]) for name in FILTER_FIELDS if params.get(name, "") != ""
        )
        since, until = _date(params, "since"), _date(params, "until")
        if since and until and since > until:
            raise BadQuery("since must not be after until")
        before, after = _cursor(params, "before"), _cursor(params, "after")
        if before and after:
            raise BadQuery("use either before or after, not both")
        offset = _number(params, "offset", 0, 0, 10**9)
        per_page = _number(params, "per_page", PER_PAGE, 1, MAX_PER_PAGE)
        signature = params.get("signature", "") or None
        if signature is not None and not is_signature_id(signature):
            raise BadQuery("signature must be a signature id (16 lowercase hex digits)")
        if signature and after:
            raise BadQuery("a signature's reports page older only: use before, not after")
        return cls(fields, since, until, before, after, offset, per_page, signature)

    @property
    def filtered(self) -> bool:
        return bool(self.fields or self.since or self.until or self.signature)

    def filters(self) -> dict[str, str]:
        """The active filters as query-string values (for links and display)."""
        active = dict(self.fields)
        if self.signature:
            active["signature"] = self.signature
        for name in DATE_FIELDS:
            value = getattr(self, name)
            if value is not None:
                active[name] = value.isoformat()
        return active

    def kept(self) -> dict[str, str]:
        """What every link from the page carries along: the filters and the page size."""
        carried = self.filters()
        if self.per_page != PER_PAGE:
            carried["per_page"] = str(self.per_page)
        return carried

    def id_range(self) -> tuple[str | None, str | None]:
        """(older_than, newer_than) ids for the date range: UTC days, both inclusive."""
        older_than = newer_than = None
        if self.until is not None:
            end = _midnight(self.until + datetime.timedelta(days=1))
            older_than = report.id_bound(end, upper=False)
        if self.since is not None:
            start = _midnight(self.since) - datetime.timedelta(milliseconds=1)
            newer_than = report.id_bound(start, upper=True)
        return older_than, newer_than


def _date(params: Mapping[str, str], name: str) -> datetime.date | None:
    value = params.get(name, "")
    if not value:
        return None
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        raise BadQuery(f"{name} must be a date like 2026-01-31") from None


def _cursor(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name, "")
    if not value:
        return None
    if not report.is_report_id(value):
        raise BadQuery(f"{name} must be a report id (16 lowercase hex digits)")
    return value


def _number(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    value = params.get(name, "")
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise BadQuery(f"{name} must be a whole number") from None
    if not low <= number <= high:
        raise BadQuery(f"{name} must be between {low} and {high}")
    return number


def _midnight(day: datetime.date) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time(), datetime.timezone.utc)
