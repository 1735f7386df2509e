"""The viewer's side of the HTTP edge: viewer dicts rendered as HTML, JSON or downloads.

Templates live in chalicelib/templates/ (deployed with the Lambda) and are autoescaped:
every value in a crash report comes from the client. Errors on pages render
error.html, on the API a JSON object, with the status `web.status_for` gives.
"""

from __future__ import annotations

import contextlib
import functools
import json as jsonlib
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import jinja2
from chalice import Response
from chalice.app import Request

from chalicelib import web
from chalicelib.viewer.urls import Urls


TEMPLATES = Path(__file__).parent / "templates"
# Private pages: never cached, never framed, no script, styles only from the page itself.
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}


def _filesize(size: Any) -> str:
    try:
        value = float(size)
    except (TypeError, ValueError):
        return str(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(size)


def _when(iso: str) -> str:
    """2026-11-25T18:15:36.546Z as 2026-11-25 18:15:36 (UTC, said in the page header)."""
    return str(iso).replace("T", " ")[:19]


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["filesize"] = _filesize
    env.filters["when"] = _when
    env.filters["dict_without"] = lambda mapping, key: {
        k: v for k, v in mapping.items() if k != key
    }
    return env


def render(template: str, context: Mapping[str, Any], urls: Urls) -> str:
    return environment().get_template(template).render(**context, urls=urls.as_html())


def urls_for(request: Request) -> Urls:
    """Links for this request: behind API Gateway's default domain, the stage is a prefix."""
    context = request.context or {}
    stage = context.get("stage", "")
    domain = str(context.get("domainName", ""))
    return Urls(f"/{stage}" if stage and ".execute-api." in domain else "")


def html(
    template: str,
    context: Mapping[str, Any],
    urls: Urls,
    status: int = 200,
    extra: Mapping[str, str] | None = None,
) -> Response:
    body = render(template, context, urls)
    headers = {"Content-Type": "text/html; charset=utf-8", **_PAGE_HEADERS, **(extra or {})}
    return Response(body=body, status_code=status, headers=headers)


def json(data: Any, status: int = 200, extra: Mapping[str, str] | None = None) -> Response:
    body = jsonlib.dumps(data, ensure_ascii=False, indent=1, sort_keys=False)
    headers = {"Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store",
               "X-Content-Type-Options": "nosniff", **(extra or {})}
    return Response(body=body, status_code=status, headers=headers)


def download(
    data: bytes, filename: str, content_type: str = "application/octet-stream"
) -> Response:
    """A file to save, never to display: client bytes must not run as a page here.

    Any Accept header, or none, gets it (web.accept_any_type); API Gateway answers at
    most 6 MB.
    """
    headers = {
        "Content-Type": content_type,
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    }
    return Response(body=data, status_code=200, headers=headers)


class Streams(threading.local):
    """Download streams handed from a view to the local server (one request per thread)."""

    open: list[tuple[BinaryIO, int]] | None = None


streams = Streams()


@contextlib.contextmanager
def stream_channel() -> Iterator[list[tuple[BinaryIO, int]]]:
    """For the WSGI adapter: the downloads the view called within hands over as
    (stream, size), for the adapter to send in chunks and close."""
    streams.open = []
    try:
        yield streams.open
    finally:
        streams.open = None


def download_stream(
    body: BinaryIO, size: int | None, filename: str,
    content_type: str = "application/octet-stream",
) -> Response:
    """A file to save, sent from a stream that this call owns (and closes).

    Under the local server (within `stream_channel`) the stream goes to the server, which
    sends it 64 KiB at a time; elsewhere (Lambda) it is read whole here, so callers keep
    what they send there within DOWNLOAD_REDIRECT_MB. `size` None: a file, measured here.
    """
    if size is None:
        size = body.seek(0, 2)
        body.seek(0)
    handed = streams.open
    if handed is None:
        with body:
            return download(body.read(), filename, content_type)
    handed.append((body, size))
    return download(b"", filename, content_type)


def download_json(data: Any, filename: str) -> Response:
    """A JSON document to save (Content-Disposition: attachment), not to display."""
    body = jsonlib.dumps(data, ensure_ascii=False, indent=1, sort_keys=True)
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    }
    return Response(body=body, status_code=200, headers=headers)


def redirect(url: str) -> Response:
    """Send the browser elsewhere for a download (a presigned URL that expires soon)."""
    return Response(body="", status_code=302,
                    headers={"Location": url, "Cache-Control": "no-store"})


def _error_page(status: int, message: str, headers: dict[str, str]) -> Response:
    context = {"status": status, "message": message}
    return html("error.html", context, Urls(), status, headers)


def _error_json(status: int, message: str, headers: dict[str, str]) -> Response:
    return json({"status": status, "error": message}, status, headers)


html_errors = web.translating(_error_page)
html_errors.__doc__ = "Turn domain exceptions into error.html with their status."
json_errors = web.translating(_error_json)
json_errors.__doc__ = 'Turn domain exceptions into {"status", "error"} JSON.'
