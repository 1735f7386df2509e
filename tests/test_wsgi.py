"""The WSGI adapter that serves app.py in the local run."""

from __future__ import annotations

import io
import threading

import pytest

from chalice import Chalice, Response
from chalice.test import Client
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel

from chalicelib import pages, web
from chalicelib.wsgi import CHUNK, INLINE_BODY_BYTES, ChaliceWSGI, HTTP10ChunkedParser

DOWNLOAD = bytes(range(256)) * 1000 + b"end"


class Tracked(io.BytesIO):
    """A download stream that remembers the sizes asked of it and that it was closed."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.asked: list[int] = []
        self.was_closed = False

    def read(self, size: int | None = -1) -> bytes:
        self.asked.append(size)
        return super().read(size)

    def close(self) -> None:
        self.was_closed = True
        super().close()


def make_app() -> Chalice:
    app = Chalice(app_name="adapter-test")

    @app.route("/echo/{value}", methods=["GET", "POST"], content_types=["*/*"])
    def echo(value):
        data = web.body(app.current_request).read()
        return Response(body=f"{value}:{len(data)}:{data[:8].hex()}", status_code=200,
                        headers={"Content-Type": "text/plain"})

    @app.route("/download/{status}", methods=["GET"])
    def download(status):
        opened.append(Tracked(DOWNLOAD))
        response = pages.download_stream(opened[-1], len(DOWNLOAD), "d.bin")
        response.status_code = int(status)
        return response

    opened: list[Tracked] = []
    app.opened = opened
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


def stream_call(adapter: ChaliceWSGI, path: str):
    seen = {}

    def start_response(status, headers):
        seen["status"], seen["headers"] = status, dict(headers)

    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "",
               "HTTP_ACCEPT": "*/*", "wsgi.input": io.BytesIO()}
    return seen, adapter(environ, start_response)


def test_a_download_is_sent_from_its_stream_in_chunks_then_closed() -> None:
    app = make_app()
    seen, body = stream_call(ChaliceWSGI(app, lambda route: True, 10**9), "/download/200")
    assert seen["status"] == "200 OK"
    assert seen["headers"]["Content-Length"] == str(len(DOWNLOAD))
    assert seen["headers"]["Content-Disposition"] == 'attachment; filename="d.bin"'
    chunks = list(body)
    assert b"".join(chunks) == DOWNLOAD
    assert [len(c) for c in chunks] == [CHUNK] * 3 + [len(DOWNLOAD) - 3 * CHUNK]
    assert max(app.opened[0].asked) == CHUNK
    assert not app.opened[0].was_closed
    body.close()  # what the server does at the end, or when the client goes
    assert app.opened[0].was_closed


def test_a_download_cut_short_by_the_client_closes_its_stream() -> None:
    app = make_app()
    _, body = stream_call(ChaliceWSGI(app, lambda route: True, 10**9), "/download/200")
    assert next(iter(body)) == DOWNLOAD[:CHUNK]
    body.close()
    assert app.opened[0].was_closed and app.opened[0].asked == [CHUNK]


def test_a_stream_that_ends_early_fails_rather_than_send_a_short_file() -> None:
    app = make_app()
    _, body = stream_call(ChaliceWSGI(app, lambda route: True, 10**9), "/download/200")
    body.size += 1
    with pytest.raises(OSError, match="ended 1 bytes early"):
        list(body)


def test_a_stream_of_an_answer_that_is_not_200_is_closed_unsent() -> None:
    app = make_app()
    seen, body = stream_call(ChaliceWSGI(app, lambda route: True, 10**9), "/download/404")
    assert seen["status"] == "404 Not Found" and b"".join(body) == b""
    assert app.opened[0].was_closed


def test_outside_the_local_server_a_download_is_read_whole_and_closed() -> None:
    app = make_app()
    with Client(app) as client:
        response = client.http.get("/download/200", headers={"Accept": "*/*"})
    assert response.status_code == 200 and response.body == DOWNLOAD
    assert app.opened[0].was_closed


def parsed(raw: bytes) -> HTTP10ChunkedParser:
    parser = HTTP10ChunkedParser(Adjustments())
    while raw and not parser.completed:
        raw = raw[parser.received(raw):]
    return parser


def test_http10_chunked_bodies_are_read_like_http11_ones() -> None:
    chunked = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    for version in (b"1.0", b"1.1"):
        parser = parsed(b"POST /submit HTTP/" + version + b"\r\nTransfer-Encoding: chunked\r\n"
                        b"Content-Type: x/y\r\n\r\n" + chunked)
        assert parser.completed and parser.error is None
        assert parser.get_body_stream().read() == b"hello world"
        assert parser.headers["CONTENT_LENGTH"] == "11"
        assert "TRANSFER_ENCODING" not in parser.headers
    # With a Content-Length too, chunked wins, as in HTTP/1.1: one framing, never two.
    parser = parsed(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
                    + chunked)
    assert parser.get_body_stream().read() == b"hello world"
    assert parser.headers["CONTENT_LENGTH"] == "11"
    assert HTTPChannel.parser_class is HTTP10ChunkedParser
