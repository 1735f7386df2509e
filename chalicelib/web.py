"""The HTTP edge: request bodies in, responses out, domain errors to status codes.

Only this module knows status codes (the README's status table lists them). Views are
wrapped in `translate_errors`, because Chalice turns exceptions into responses before
any middleware sees them.
"""

from __future__ import annotations

import functools
import io
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any, BinaryIO

from chalice import Chalice, Response
from chalice.app import CaseInsensitiveMapping, Request

from chalicelib import auth, bucket, store, submission, symbol_store, symbol_upload, viewer

log = logging.getLogger(__name__)


class TooLargeToSend(Exception):
    """A download larger than this deployment can answer (Lambda stops at 6 MB).

    403: the request is understood and refused, for a reason no credentials and no
    retry will change; the message says what to fetch instead. Not 501 (the route is
    implemented), not 413 (that is about the request's own body).
    """


# Most specific first: subclasses before their bases.
ERROR_STATUS: list[tuple[type[BaseException], int]] = [
    (submission.SubmissionTooLarge, 413),
    (submission.UnsupportedSubmission, 415),
    (submission.MalformedSubmission, 400),
    (viewer.BadQuery, 400),
    (auth.Unauthorized, 401),
    (auth.ViewerNotConfigured, 503),
    (auth.LoginsBusy, 503),  # with Retry-After
    (auth.UploadsNotConfigured, 503),
    (symbol_upload.SymbolRejected, 400),
    (symbol_upload.SymbolTooLarge, 413),
    (symbol_upload.UploadsBusy, 503),
    (symbol_store.SymbolNotFound, 404),
    (store.ReportNotFound, 404),
    (bucket.StoreUnavailable, 503),  # the bucket kept failing: retry later
    (bucket.StoreRefused, 500),  # AccessDenied, NoSuchBucket...: the deployment needs fixing
    (bucket.StoreError, 500),
    (TooLargeToSend, 403),
]


# Event key under which the local WSGI server passes a large body as a stream.
BODY_STREAM = "bodyStream"


def body(request: Request) -> BinaryIO:
    """The raw request body as a stream (already base64-decoded by Chalice)."""
    stream = request.to_original_event().get(BODY_STREAM)
    if stream is not None:
        return stream
    raw = request.raw_body or b""
    return io.BytesIO(raw if isinstance(raw, bytes) else raw.encode())


def headers(request: Request) -> dict[str, str]:
    return {k.lower(): v for k, v in request.headers.items()}


def query(request: Request) -> dict[str, str]:
    """Query parameters, the last value of each."""
    params = request.query_params or {}
    return {k: params[k] for k in params}


def text(content: str, status: int = 200, extra: Mapping[str, str] | None = None) -> Response:
    """A text/plain reply with Content-Length: some Crashpad transports need it."""
    data = content.encode()
    response_headers = {
        "Content-Type": "text/plain; charset=utf-8",
        "Content-Length": str(len(data)),
        "Cache-Control": "no-store",
    }
    response_headers.update(extra or {})
    return Response(body=content, status_code=status, headers=response_headers)


def json_text(value: Any, status: int = 200) -> Response:
    """JSON with json.dumps' default spacing (`{"status": "FOUND"}`): symupload reads
    replies with regular expressions that expect exactly that."""
    return text(json.dumps(value), status, {"Content-Type": "application/json"})


def status_for(error: BaseException) -> int | None:
    for kind, status in ERROR_STATUS:
        if isinstance(error, kind):
            return status
    return None


def error_message(error: BaseException) -> str:
    reason = getattr(error, "reason", None) or (error.args[0] if error.args else "")
    return " ".join(str(reason).split())[:300] or type(error).__name__


ErrorRenderer = Callable[[int, str, dict[str, str]], Response]


def translating(render_error: ErrorRenderer) -> Callable[[Callable[..., Response]], Callable]:
    """A view decorator that renders the domain's exceptions with render_error.

    render_error(status, one-line message, extra headers) builds the reply; exceptions
    that ERROR_STATUS does not know propagate (Chalice answers 500).
    """

    def decorator(view: Callable[..., Response]) -> Callable[..., Response]:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Response:
            try:
                return view(*args, **kwargs)
            except Exception as error:
                status = status_for(error)
                if status is None:
                    raise
                if status >= 500:
                    log.error("%s: %s", type(error).__name__, error)
                headers = dict(getattr(error, "headers", None) or {})
                return render_error(status, error_message(error), headers)

        return wrapper

    return decorator


translate_errors = translating(
    lambda status, message, headers: text(message + "\n", status, headers)
)
translate_errors.__doc__ = "Turn the domain's exceptions into one-line text replies."


ANY_TYPE = "*/*"


def accept_any_type(app: Chalice) -> None:
    """Answer a request without an Accept header as HTTP says: any type will do.

    Chalice refuses a binary answer (400) unless the request's Accept names its type.
    API Gateway (REST, Lambda proxy) decodes a base64 answer only when the first type
    of the request's Accept matches one of the API's binaryMediaTypes exactly or as
    `type/*` (a request without Accept, or with `Accept: */*`, matches neither), and
    documents `*/*` as the entry for clients whose Accept the API cannot control. So
    this adds */* to the binary types (Chalice deploys them as binaryMediaTypes, and
    then base64-encodes every answer, which the gateway and the local server decode),
    and installs an HTTP middleware that fills in `Accept: */*` when a request has none
    and hands Chalice text bodies as UTF-8 bytes (it base64-encodes only bytes).
    Idempotent.
    """
    if ANY_TYPE not in app.api.binary_types:
        app.api.binary_types.append(ANY_TYPE)
    if not any(func is any_type_middleware for func, _ in app.middleware_handlers):
        app.register_middleware(any_type_middleware, "http")


def any_type_middleware(
    request: Request | None, get_response: Callable[[Request | None], Response]
) -> Response:
    """See accept_any_type."""
    if request is not None and not request.headers.get("accept", "").strip():
        request.headers = CaseInsensitiveMapping({**request.headers, "accept": ANY_TYPE})
    response = get_response(request)
    if isinstance(response.body, str):
        response.body = response.body.encode()
    return response
