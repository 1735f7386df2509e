"""Serve the Chalice app through a real WSGI server (the local run).

`chalice local` reads chunked request bodies as empty, and Crashpad always sends
chunked bodies, so the local run puts the same `app` behind waitress instead: this
adapter turns a WSGI request into the API Gateway proxy event Lambda would get and the
handler's answer back into a WSGI response. Unlike `chalice local` it passes the body
as bytes (no base64 round trip), or as a stream when large so that a 100 MB dump
is never held in memory, and keeps `app.current_request` per thread. Downloads go the
other way the same: a view hands its S3 stream over (`pages.download_stream`) and the
adapter sends it 64 KiB at a time, closing it at the end or when the client goes.

Crashpad's socket transport sends an HTTP/1.0 request line with a chunked body, which
waitress reads as empty (it honours Transfer-Encoding on HTTP/1.1 only): importing this
module makes waitress's channels use `HTTP10ChunkedParser`, which reads such bodies.
"""

from __future__ import annotations

import base64
import http
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from typing import Any, BinaryIO

from chalice import Chalice
from chalice.local import RouteMatcher
from waitress.buffers import OverflowableBuffer
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser, TransferEncodingNotImplemented
from waitress.receiver import ChunkedReceiver
from waitress.utilities import BadRequest

from chalicelib import pages, web

StartResponse = Callable[..., Any]
CHUNK_LINE_BYTES = 4096  # longest chunk-size line (with extensions) or trailer taken
INLINE_BODY_BYTES = 1024 * 1024  # larger bodies reach web.body() as a stream
CHUNK = 64 * 1024


def make_thread_safe(app: Chalice) -> None:
    """Keep current_request and lambda_context per thread.

    Chalice stores the request on the app object, which is fine on Lambda (one request
    per process at a time) but mixes up requests under a threaded server.
    """
    if getattr(type(app), "_thread_safe", False):
        return
    local = threading.local()

    def attribute(name: str) -> property:
        return property(
            lambda self: getattr(local, name, None),
            lambda self, value: setattr(local, name, value),
        )

    app.__class__ = type(
        "ThreadSafe" + type(app).__name__,
        (type(app),),
        {
            "_thread_safe": True,
            "current_request": attribute("current_request"),
            "lambda_context": attribute("lambda_context"),
        },
    )


class ChaliceWSGI:
    """A WSGI application serving the routes of `app` that `allow(route)` accepts."""

    def __init__(
        self, app: Chalice, allow: Callable[[str], bool], max_body_bytes: int
    ) -> None:
        make_thread_safe(app)
        self.app = app
        self.allow = allow
        self.max_body_bytes = max_body_bytes
        self.matcher = RouteMatcher([r for r in app.routes if allow(r)])

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "") or "/"  # already percent-decoded by the server
        query = environ.get("QUERY_STRING", "")
        try:
            match = self.matcher.match_route(path)
        except ValueError:
            return self._reply(start_response, 404, {}, b"not found\n")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length > self.max_body_bytes:
            return self._reply(start_response, 413, {}, b"body too large\n")
        stream = environ["wsgi.input"]
        inline = length <= INLINE_BODY_BYTES
        body = stream.read(length) if inline and length else b""
        event = {
            "requestContext": {
                "httpMethod": environ["REQUEST_METHOD"],
                "resourcePath": match.route,
                "path": path,
                "identity": {"sourceIp": environ.get("REMOTE_ADDR", "")},
            },
            "headers": _headers(environ),
            "pathParameters": match.captured or None,
            "multiValueQueryStringParameters": urllib.parse.parse_qs(
                query, keep_blank_values=True
            ) or None,
            "stageVariables": {},
            "body": body,
            "isBase64Encoded": False,
        }
        if not inline:
            event[web.BODY_STREAM] = _Limited(stream, length)
        with pages.stream_channel() as handed:
            answer = self.app(event, None)
        stream = _pick(handed, answer["statusCode"])
        payload = answer.get("body") or b""
        if answer.get("isBase64Encoded"):
            payload = base64.b64decode(payload)
        elif isinstance(payload, str):
            payload = payload.encode()
        response_headers = dict(answer.get("headers") or {})
        for name, values in (answer.get("multiValueHeaders") or {}).items():
            response_headers[name] = values
        if stream is not None:
            body = StreamBody(*stream)
            self._start(start_response, 200, response_headers, body.size)
            return body
        return self._reply(start_response, answer["statusCode"], response_headers, payload)

    @classmethod
    def _reply(
        cls, start_response: StartResponse, status: int, headers: dict[str, Any], payload: bytes
    ) -> list[bytes]:
        cls._start(start_response, status, headers, len(payload))
        return [payload]

    @staticmethod
    def _start(
        start_response: StartResponse, status: int, headers: dict[str, Any], length: int
    ) -> None:
        pairs = []
        for name, value in headers.items():
            if name.lower() == "content-length":
                continue
            for item in value if isinstance(value, list) else [value]:
                pairs.append((name, str(item)))
        pairs.append(("Content-Length", str(length)))
        start_response(f"{status} {http.HTTPStatus(status).phrase}", pairs)


def _pick(handed: list[tuple[BinaryIO, int]], status: int) -> tuple[BinaryIO, int] | None:
    """The stream to send: the view's last one, if the answer is a 200; the rest closed."""
    chosen = handed.pop() if handed and status == 200 else None
    for stream, _ in handed:
        stream.close()
    return chosen


class StreamBody:
    """A WSGI response body read from `stream` 64 KiB at a time; the server closes it
    (at the end, or when the client disconnects), which closes the stream."""

    def __init__(self, stream: BinaryIO, size: int) -> None:
        self.stream = stream
        self.size = size

    def __iter__(self) -> Iterator[bytes]:
        left = self.size
        while left > 0:
            chunk = self.stream.read(min(CHUNK, left))
            if not chunk:
                # Headers are gone: cutting the connection short is the only honest answer.
                raise OSError(f"stored object ended {left} bytes early")
            left -= len(chunk)
            yield chunk

    def close(self) -> None:
        self.stream.close()


def _headers(environ: dict[str, Any]) -> dict[str, str]:
    found = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            found[key[5:].replace("_", "-").lower()] = value
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            found[key.replace("_", "-").lower()] = environ[key]
    return found


class _Limited:
    """Read at most `length` bytes of the WSGI input."""

    def __init__(self, stream: Any, length: int) -> None:
        self.stream = stream
        self.left = length

    def read(self, size: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        size = self.left if size < 0 else min(size, self.left)
        data = self.stream.read(size)
        self.left -= len(data)
        return data


class BoundedChunkedReceiver(ChunkedReceiver):
    """waitress's chunked body reader, refusing a chunk-size line or trailer past
    CHUNK_LINE_BYTES: it would keep either whole (copying it again on every read) up to
    the body limit."""

    def received(self, s: bytes) -> int:
        consumed = super().received(s)
        if len(self.control_line) > CHUNK_LINE_BYTES or len(self.trailer) > CHUNK_LINE_BYTES:
            self.error = BadRequest("chunk size line or trailer too long")
            self.all_chunks_received = True
        return consumed


class HTTP10ChunkedParser(HTTPRequestParser):
    """waitress's request parser, also reading chunked bodies of HTTP/1.0 requests
    (Crashpad's socket transport sends them), and bounding chunk-size lines.

    HTTP/1.0's Transfer-Encoding is taken exactly as waitress takes HTTP/1.1's: only
    `chunked` codings, the last one chunked, else 501; it wins over Content-Length.
    """

    def parse_header(self, header_plus: bytes) -> None:
        super().parse_header(header_plus)
        if self.version == "1.0" and "TRANSFER_ENCODING" in self.headers:
            codings = [
                coding.strip(" \t").lower()
                for coding in self.headers.pop("TRANSFER_ENCODING").split(",") if coding
            ]
            if any(coding != "chunked" for coding in codings) or not codings:
                raise TransferEncodingNotImplemented(
                    "Transfer-Encoding requested is not supported."
                )
            self.headers.pop("CONTENT_LENGTH", None)
            self.content_length = 0
            self.chunked = True
        if self.chunked:
            self.body_rcv = BoundedChunkedReceiver(OverflowableBuffer(self.adj.inbuf_overflow))


HTTPChannel.parser_class = HTTP10ChunkedParser
