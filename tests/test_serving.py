"""The draining, port-sharing listeners (chalicelib.serving), in process, on loopback."""

from __future__ import annotations

import errno
import socket
import threading
import time

import pytest

from chalicelib import serving
from chalicelib.serving import DrainingServer, listening_sockets


def answering(name: bytes):
    """A WSGI app that reads the body and answers `name` and the body's length."""

    def app(environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        payload = name + b" " + str(len(body)).encode()
        start_response("200 OK", [("Content-Length", str(len(payload)))])
        return [payload]

    return app


def request(port: int, body: bytes = b"", keep_alive: bool = False) -> bytes:
    connection = "keep-alive" if keep_alive else "close"
    return (f"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n"
            f"Connection: {connection}\r\n\r\n").encode() + body


def read_answer(sock: socket.socket, timeout: float = 10) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length")))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


@pytest.fixture
def servers():
    started: list[DrainingServer] = []

    def make(name: bytes, port: int = 0) -> DrainingServer:
        server = DrainingServer(answering(name), listening_sockets("127.0.0.1", port), threads=4)
        started.append(server)
        return server

    yield make
    for server in started:
        server.close()


def test_connections_waiting_in_the_backlog_are_served_not_reset(servers) -> None:
    """The loop has not accepted anything yet: all 40 connections sit in the kernel's
    accept queue, their requests sent, when the drain begins."""
    server = servers(b"A")
    clients = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(40)]
    for n, client in enumerate(clients):
        client.sendall(request(server.port, b"x" * n))
    server.drain()
    server.start()
    answers = [read_answer(client) for client in clients]
    assert [a.split(b"\r\n")[0] for a in answers] == [b"HTTP/1.1 200 OK"] * 40
    assert [a.rsplit(b"\r\n\r\n", 1)[1] for a in answers] == [
        b"A %d" % n for n in range(40)
    ]
    assert server.wait(5)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2)
    for client in clients:
        client.close()


def test_a_second_listener_on_the_port_takes_every_new_connection(
    servers, monkeypatch
) -> None:
    steered: list[bool] = []
    steer = serving.steer_new_connections_to_second
    monkeypatch.setattr(serving, "steer_new_connections_to_second",
                        lambda sock: steered.append(steer(sock)) or steered[-1])
    old = servers(b"old").start()
    new = servers(b"new", old.port).start()
    if not steered[-1]:
        pytest.skip("this kernel refuses the steering filter: no way to pick the listener")
    seen = []
    for _ in range(30):
        with socket.create_connection(("127.0.0.1", old.port)) as client:
            client.sendall(request(old.port))
            seen.append(read_answer(client).rsplit(b"\r\n\r\n", 1)[1])
    assert seen == [b"new 0"] * 30
    old.drain()
    assert old.wait(5)
    assert not new.wait(0)
    with socket.create_connection(("127.0.0.1", old.port)) as client:
        client.sendall(request(old.port, b"abc"))
        assert read_answer(client).endswith(b"\r\n\r\nnew 3")


def test_drain_waits_for_a_body_still_being_sent(servers) -> None:
    server = servers(b"A").start()
    body = bytes(range(256)) * 400
    with socket.create_connection(("127.0.0.1", server.port)) as client:
        client.sendall(request(server.port, body, keep_alive=True)[: 200 + len(body) // 2])
        time.sleep(0.3)
        server.drain()
        assert not server.wait(1.5)  # longer than IDLE_GRACE_SECONDS: still receiving
        client.sendall(request(server.port, body, keep_alive=True)[200 + len(body) // 2:])
        answer = read_answer(client)
        assert answer.startswith(b"HTTP/1.1 200 OK")
        assert b"\r\nConnection: close\r\n" in answer  # asked keep-alive, told close
        assert answer.endswith(b"A 102400")
        assert server.wait(3)
        assert client.recv(10) == b""


def test_idle_keep_alive_connection_is_closed_and_does_not_hold_the_drain(servers) -> None:
    server = servers(b"A").start()
    with socket.create_connection(("127.0.0.1", server.port)) as client:
        client.sendall(request(server.port, b"hi", keep_alive=True))
        answer = read_answer(client)
        assert b"Connection: close" not in answer and answer.endswith(b"A 2")
        started = time.monotonic()
        server.drain()
        assert server.wait(serving.IDLE_GRACE_SECONDS + 2)
        assert time.monotonic() - started < serving.IDLE_GRACE_SECONDS + 1
        client.settimeout(2)
        assert client.recv(10) == b""


def test_an_unshared_listener_keeps_its_port() -> None:
    server = DrainingServer(answering(b"A"), listening_sockets("127.0.0.1", 0, shared=False))
    try:
        with pytest.raises(OSError):
            listening_sockets("127.0.0.1", server.port)
    finally:
        server.close()


def test_a_port_held_by_a_server_that_does_not_share_it_is_refused() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        with pytest.raises(OSError) as caught:
            listening_sockets("127.0.0.1", holder.getsockname()[1])
    assert "in use" in str(caught.value)


class EndlessDownload:
    """A WSGI response of `size` bytes, made on demand, that notes who serves it and
    whether the server closed it."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.sent = 0
        self.closed = threading.Event()
        self.serving_thread: threading.Thread | None = None
        self.started = threading.Event()

    def __call__(self, environ, start_response):
        self.serving_thread = threading.current_thread()
        start_response("200 OK", [("Content-Length", str(self.size))])
        self.started.set()
        return self

    def __iter__(self):
        chunk = b"d" * 65536
        while self.sent < self.size and not self.closed.is_set():
            self.sent += len(chunk)
            yield chunk

    def close(self) -> None:
        self.closed.set()


@pytest.mark.parametrize("stop", ["close", "drain then abort"])
def test_stopping_at_once_ends_a_download_to_a_client_that_reads_nothing(stop) -> None:
    """The task thread waits for the client to take its output; stopping must wake it, so
    it ends and closes the response instead of waiting forever on a dead server."""
    download = EndlessDownload(200 * 1024 * 1024)
    server = DrainingServer(download, listening_sockets("127.0.0.1", 0), threads=2).start()
    try:
        with socket.socket() as client:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            client.connect(("127.0.0.1", server.port))
            client.sendall(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
            assert download.started.wait(5)
            deadline = time.monotonic() + 5
            while download.sent < 20 * 1024 * 1024 and time.monotonic() < deadline:
                time.sleep(0.05)  # until the output buffers are full and the task waits
            sent = download.sent
            time.sleep(0.3)
            assert download.sent == sent < 100 * 1024 * 1024  # blocked on the client
            if stop == "close":
                server.close()
            else:
                server.drain()
                assert not server.wait(1.5)  # a response still being sent holds the drain
                server.abort()
            assert server.wait(5)
            assert download.closed.wait(3)
            download.serving_thread.join(3)
            assert not download.serving_thread.is_alive()
            assert download.sent < download.size
    finally:
        server.close()


class RefusingReusePort(socket.socket):
    """A socket on a kernel without SO_REUSEPORT."""

    def setsockopt(self, level, option, *value):
        if level == socket.SOL_SOCKET and option == socket.SO_REUSEPORT:
            raise OSError(errno.ENOPROTOOPT, "Protocol not available")
        return super().setsockopt(level, option, *value)


def test_a_kernel_refusing_port_sharing_gets_an_unshared_listener(monkeypatch, caplog) -> None:
    with monkeypatch.context() as patched:
        patched.setattr(socket, "socket", RefusingReusePort)
        (sock,) = listening_sockets("127.0.0.1", 0)
    server = DrainingServer(answering(b"alone"), [sock]).start()
    try:
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 0
        warning = next(r for r in caplog.records if r.name == "serving")
        assert warning.levelname == "WARNING"
        assert f"port {server.port}: this system refuses SO_REUSEPORT" in warning.getMessage()
        assert "no rolling restart" in warning.getMessage()
        with pytest.raises(OSError) as caught:
            listening_sockets("127.0.0.1", server.port)
        assert caught.value.errno == errno.EADDRINUSE
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as client:
            client.sendall(request(server.port, b"xyz"))
            assert read_answer(client).endswith(b"\r\n\r\nalone 3")
    finally:
        server.close()


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback here")
def test_a_name_with_two_addresses_is_served_on_both(monkeypatch) -> None:
    """`localhost` names ::1 and 127.0.0.1 on most systems (this one may list only one)."""
    resolve = socket.getaddrinfo

    def both_loopbacks(host, port, *args, **kwargs):
        if host != "localhost":
            return resolve(host, port, *args, **kwargs)
        return [*resolve("::1", port, *args, **kwargs),
                *resolve("127.0.0.1", port, *args, **kwargs),
                *resolve("::1", port, *args, **kwargs)]  # listed twice: bound once

    monkeypatch.setattr(socket, "getaddrinfo", both_loopbacks)
    sockets = listening_sockets("localhost", 0)
    assert [s.getsockname()[:2] for s in sockets] == [
        ("::1", sockets[0].getsockname()[1]), ("127.0.0.1", sockets[0].getsockname()[1])
    ]
    server = DrainingServer(answering(b"both"), sockets).start()
    try:
        for address in ("::1", "127.0.0.1"):
            with socket.create_connection((address, server.port), timeout=5) as client:
                client.sendall(request(server.port, address.encode()))
                assert read_answer(client).endswith(b"both %d" % len(address))
        server.drain()
        assert server.wait(5)
        for address in ("::1", "127.0.0.1"):
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection((address, server.port), timeout=2)
    finally:
        server.close()


def test_an_address_family_the_system_lacks_is_left_out(monkeypatch, caplog) -> None:
    resolve = socket.getaddrinfo

    def both_loopbacks(host, port, *args, **kwargs):
        if host != "localhost":
            return resolve(host, port, *args, **kwargs)
        return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", port, 0, 0)),
                *resolve("127.0.0.1", port, *args, **kwargs)]

    class NoIPv6(socket.socket):
        def __init__(self, family=socket.AF_INET, *args, **kwargs):
            if family == socket.AF_INET6:
                raise OSError(errno.EAFNOSUPPORT, "Address family not supported by protocol")
            super().__init__(family, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", both_loopbacks)
    with monkeypatch.context() as patched:
        patched.setattr(socket, "socket", NoIPv6)
        sockets = listening_sockets("localhost", 0)
    try:
        assert [s.getsockname()[0] for s in sockets] == ["127.0.0.1"]
        assert [r.getMessage() for r in caplog.records if r.name == "serving"] == [
            f"localhost: not listening on ::1 ([Errno {errno.EAFNOSUPPORT}] Address family"
            " not supported by protocol)"
        ]
    finally:
        for sock in sockets:
            sock.close()
