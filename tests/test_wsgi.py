"""The WSGI adapter that serves app.py in the local run."""

from __future__ import annotations

import io
import threading

from chalice import Chalice, Response

from chalicelib import web
from chalicelib.wsgi import INLINE_BODY_BYTES, ChaliceWSGI


def make_app() -> Chalice:
    app = Chalice(app_name="adapter-test")

    @app.route("/echo/{value}", methods=["GET", "POST"], content_types=["*/*"])
    def echo(value):
        data = web.body(app.current_request).read()
        return Response(body=f"{value}:{len(data)}:{data[:8].hex()}", status_code=200,
                        headers={"Content-Type": "text/plain"})

    return app


def call(adapter: ChaliceWSGI, path: str, body: bytes = b"", method: str = "POST"):
    seen = {}

    def start_response(status, headers):
        seen["status"], seen["headers"] = status, dict(headers)

    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": "",
               "CONTENT_LENGTH": str(len(body)), "CONTENT_TYPE": "application/octet-stream",
               "wsgi.input": io.BytesIO(body)}
    payload = b"".join(adapter(environ, start_response))
    return seen["status"], seen["headers"], payload.decode()


def test_paths_are_not_decoded_twice() -> None:
    adapter = ChaliceWSGI(make_app(), lambda route: True, 10**9)
    status, headers, text = call(adapter, "/echo/a%41", method="GET")
    assert (status, text) == ("200 OK", "a%41:0:")
    assert headers["Content-Length"] == str(len(text))


def test_small_and_large_bodies_reach_the_view_whole() -> None:
    adapter = ChaliceWSGI(make_app(), lambda route: True, 10**9)
    for size in (10, INLINE_BODY_BYTES + 1):
        body = bytes([7]) * size
        assert call(adapter, "/echo/x", body)[2] == f"x:{size}:{body[:8].hex()}"


def test_routes_not_allowed_on_this_port_are_404() -> None:
    adapter = ChaliceWSGI(make_app(), lambda route: False, 10**9)
    assert call(adapter, "/echo/x")[0] == "404 Not Found"


def test_concurrent_requests_keep_their_own_bodies() -> None:
    adapter = ChaliceWSGI(make_app(), lambda route: True, 10**9)
    results = {}

    def worker(n: int) -> None:
        results[n] = [call(adapter, f"/echo/{n}", bytes([n]) * (1000 + n))[2]
                      for _ in range(50)]

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for n, texts in results.items():
        assert set(texts) == {f"{n}:{1000 + n}:{(bytes([n]) * 8).hex()}"}
