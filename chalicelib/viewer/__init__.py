"""The private report viewer: index pages and report details as plain dicts.

Every page builder returns plain dicts (lists, strings, numbers) that the HTML
templates and the JSON API both render, so the two cannot drift apart. Index rows come
from the bucket listing alone (the store's keys carry the facts): a page costs list
requests, never a GET per row.

Modules: `query` reads an index URL's filters and cursor, `urls` builds every link,
`paging` finds which reports a page holds, `index` and `detail` build the pages.
"""

from chalicelib.viewer.detail import (
    attachment_filename,
    attachment_index,
    attachment_meta,
    describe,
    report_page,
)
from chalicelib.viewer.index import index_page, stored_count
from chalicelib.viewer.query import BadQuery, Query
from chalicelib.viewer.urls import Urls

__all__ = [
    "BadQuery",
    "Query",
    "Urls",
    "attachment_filename",
    "attachment_index",
    "attachment_meta",
    "describe",
    "index_page",
    "report_page",
    "stored_count",
]
