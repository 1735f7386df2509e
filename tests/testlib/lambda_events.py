"""What Lambda hands app.py behind API Gateway (REST, Lambda proxy), and S3 endpoints that fail.

`rest_event` builds the proxy event the gateway sends: body base64-encoded with
`isBase64Encoded` true (the API's binary media types cover every request here), headers
twice (`headers`, last value of each, and `multiValueHeaders`), the stage in
`requestContext`. `FailingS3` is a loopback HTTP server that answers every S3 request
with one error, or never answers, and counts what it got.
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from chalicelib import web

API_ID = "a1b2c3d4e5"
STAGE = "api"


def rest_event(
    method: str,
    path: str,
    resource: str,
    headers: Mapping[str, str | list[str]] | None = None,
    body: bytes | None = None,
    query: Mapping[str, str] | None = None,
    path_parameters: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """An API Gateway REST proxy event for `method path`, routed to `resource`."""
    multi = {name: value if isinstance(value, list) else [value]
             for name, value in (headers or {}).items()}
    multi.setdefault("Host", [f"{API_ID}.execute-api.us-east-1.amazonaws.com"])
    multi.setdefault("X-Forwarded-For", ["203.0.113.9"])
    multi.setdefault("X-Forwarded-Proto", ["https"])
    multi.setdefault("X-Amzn-Trace-Id", ["Root=1-00000000-000000000000000000000000"])
    queries = {name: [value] for name, value in (query or {}).items()}
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": {name: values[-1] for name, values in multi.items()},
        "multiValueHeaders": multi,
        "queryStringParameters": {k: v[-1] for k, v in queries.items()} or None,
        "multiValueQueryStringParameters": queries or None,
        "pathParameters": dict(path_parameters) if path_parameters else None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "path": f"/{STAGE}{path}",
            "stage": STAGE,
            "domainName": f"{API_ID}.execute-api.us-east-1.amazonaws.com",
            "apiId": API_ID,
            "accountId": "123456789012",
            "requestId": str(uuid.uuid4()),
            "protocol": "HTTP/1.1",
            "requestTimeEpoch": int(time.time() * 1000),
            "identity": {"sourceIp": "203.0.113.9", "userAgent": multi.get("User-Agent", [""])[-1]},
        },
        "body": None if body is None else base64.b64encode(body).decode(),
        "isBase64Encoded": body is not None,
    }


class LambdaContext:
    """The context object Lambda passes: its clock runs from creation."""

    function_name = "crash-collector-dev"
    memory_limit_in_mb = 1024

    def __init__(self, timeout_seconds: float = 60) -> None:
        self.aws_request_id = str(uuid.uuid4())
        self._ends = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._ends - time.monotonic()) * 1000))


def answer_body(answer: dict[str, Any]) -> bytes:
    """The bytes the client gets: API Gateway decodes a base64 answer when the request's
    Accept matches a binary media type, which */* always does."""
    body = answer.get("body") or ""
    if answer.get("isBase64Encoded"):
        return base64.b64decode(body)
    return body.encode() if isinstance(body, str) else body


@contextlib.contextmanager
def accepting_any_type(app: Any) -> Iterator[Any]:
    """web.accept_any_type on app for the block, then the app as it was."""
    had_type = web.ANY_TYPE in app.api.binary_types
    had_middleware = any(f is web.any_type_middleware for f, _ in app.middleware_handlers)
    web.accept_any_type(app)
    try:
        yield app
    finally:
        if not had_type:
            app.api.binary_types.remove(web.ANY_TYPE)
        if not had_middleware:
            app.middleware_handlers[:] = [
                (f, kind) for f, kind in app.middleware_handlers
                if f is not web.any_type_middleware
            ]


def closed_port_url() -> str:
    """A loopback URL nothing listens on: connections are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class FailingS3:
    """A loopback S3 endpoint that answers every request with `status` and S3's error
    `code`, or (status None) accepts connections and never answers."""

    def __init__(self, status: int | None, code: str = "") -> None:
        self.status = status
        self.code = code
        self.requests: list[str] = []
        self.connections = 0
        self._stop = threading.Event()

    def __enter__(self) -> FailingS3:
        if self.status is None:
            self._listener = socket.create_server(("127.0.0.1", 0))
            self._listener.settimeout(0.1)
            self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
            self._held: list[socket.socket] = []
            self._thread = threading.Thread(target=self._hold, daemon=True)
        else:
            self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
            self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
            self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self.status is None:
            self._thread.join(5)
            for conn in self._held:
                conn.close()
            self._listener.close()
        else:
            self._server.shutdown()
            self._server.server_close()

    def _hold(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            self._held.append(conn)

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        outer = self
        xml = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{self.code}</Code>"
               "<Message>refused by the test endpoint</Message>"
               "<RequestId>0000</RequestId></Error>").encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                outer.requests.append(f"{self.command} {self.path}")
                length = int(self.headers.get("Content-Length") or 0)
                if self.headers.get("Expect", "").lower() == "100-continue":
                    length = 0  # answered before the body: the client sends none
                if length:
                    self.rfile.read(length)
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/xml")
                body = b"" if self.command == "HEAD" else xml
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _answer

            def log_message(self, *args: object) -> None:
                pass

        return Handler
