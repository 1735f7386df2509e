"""The private report viewer: index pages and report details as plain dicts.

Every page builder returns plain dicts (lists, strings, numbers) that the HTML
templates and the JSON API both render, so the two cannot drift apart. Index rows come
from the bucket listing alone (the store's keys carry the facts): a page costs list
requests, never a GET per row.

Modules: `query` reads an index URL's filters and cursor, `urls` builds every link,
`paging` finds which reports a page holds, `index` and `detail` build the report pages
(`crash_view` the processed crash on a report's page), `crashes` the Crashes page and
the signature pages from the pruner's signature summary (`summary`), `charts` the
reports-per-day charts those pages draw as SVG, and `symbols` the Symbols page (stored
symbol files from the upload log, and the modules most wanted).
"""

from chalicelib.viewer.detail import (
    attachment_filename,
    attachment_index,
    attachment_meta,
    describe,
    report_page,
)
from chalicelib.viewer.crashes import crashes_page, signature_page
from chalicelib.viewer.index import index_page, stored_count
from chalicelib.viewer.query import BadQuery, Query
from chalicelib.viewer.symbols import symbols_page
from chalicelib.viewer.urls import Urls

__all__ = [
    "BadQuery",
    "Query",
    "Urls",
    "attachment_filename",
    "attachment_index",
    "attachment_meta",
    "crashes_page",
    "describe",
    "index_page",
    "report_page",
    "signature_page",
    "stored_count",
    "symbols_page",
]
