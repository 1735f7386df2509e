"""HTTP listeners for the local run that stop without losing a request and share their
port with a successor.

Stopping (`drain`): the listener first accepts every connection already queued in its
accept backlog (closing a listener resets those), then closes. Connections under way keep
being served by the same event loop: waitress reads a whole request body before it hands
the request to a thread, so a client still sending its body must be read to the end, not
only the requests already in threads. A connection counts as idle when it has no partial
request, no request queued or running and no answer left to send; idle connections are
closed once quiet for IDLE_GRACE_SECONDS (a client that just connected gets that long to
start). Answers given while draining carry `Connection: close`. The drain is over when no
connection is left.

Restarting: each listener is bound with SO_REUSEPORT, so a new process can bind the same
port while the old one still runs. On Linux the newcomer also attaches a one-instruction
classic BPF program to the port's socket group that picks the group's second socket, that
is the newcomer, for every new connection: from then on the old listener's backlog only
empties, and closing it resets nothing. Once the old one has left the group, the index is
out of range and the kernel falls back to its usual hash over the one socket left. This
assumes one old and one new process per port at a time (a third would take the place of
the second). A kernel that refuses SO_REUSEPORT gets an unshared listener and a warning:
no rolling restart there.

A host name is served on every address it resolves to (`localhost`: ::1 and 127.0.0.1),
one listener each, all in the same event loop.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import waitress
from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import WSGITask

log = logging.getLogger("serving")

IDLE_GRACE_SECONDS = 1.0
SO_ATTACH_REUSEPORT_CBPF = getattr(socket, "SO_ATTACH_REUSEPORT_CBPF", 51)
_BPF_RET_K = 0x06  # BPF_RET | BPF_K: return the constant k


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


def steer_new_connections_to_second(sock: socket.socket) -> bool:
    """Have the kernel give every new connection on this port to the group's socket 1.

    Returns False where the option does not exist (not Linux): there, a restart relies on
    the old process's backlog drain alone.
    """
    program = (_SockFilter * 1)(_SockFilter(_BPF_RET_K, 0, 0, 1))
    fprog = _SockFprog(1, program)
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, bytes(fprog))
    except OSError as error:
        log.info("no connection steering on this system (%s)", error)
        return False
    return True


def listening_sockets(
    host: str, port: int, backlog: int = 1024, shared: bool = True
) -> list[socket.socket]:
    """TCP listeners on host:port, one for each address `host` names (`localhost`: ::1 and
    127.0.0.1), that, when `shared`, another process of the same user can share (the new
    one taking the new connections). Port 0: one free port, the same for every address.

    Where the kernel refuses SO_REUSEPORT, the port is bound unshared, with a warning:
    the server runs, but a second one cannot start on the port until it has stopped.
    Raises OSError (EADDRINUSE) naming the address when a server that does not share its
    port holds it.
    """
    found: dict[tuple[int, str], tuple[int, int, int, tuple]] = {}
    for family, kind, proto, _, address in socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    ):
        found.setdefault((family, address[0]), (family, kind, proto, address))
    addresses = list(found.values())
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, address in addresses:
            if sockets:  # port 0: the port the first address got
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            try:
                sock, refusal = _listen(family, kind, proto, address, backlog, shared)
            except OSError as error:
                if error.errno in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL) and (
                    len(addresses) > 1
                ):
                    log.warning("%s: not listening on %s (%s)", host, address[0], error)
                    continue
                if len(addresses) > 1:
                    raise OSError(error.errno, f"{error.strerror} ({address[0]})") from None
                raise
            if refusal is not None and shared:
                log.warning(
                    "port %d: this system refuses SO_REUSEPORT (%s): listening unshared,"
                    " so no rolling restart (a new run cannot start until this one stops)",
                    sock.getsockname()[1], refusal,
                )
                shared = False
            sockets.append(sock)
        if not sockets:
            raise OSError(errno.EADDRNOTAVAIL, f"no address of {host} can be bound")
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _listen(
    family: int, kind: int, proto: int, address: tuple, backlog: int, shared: bool
) -> tuple[socket.socket, Exception | None]:
    """A listener, and why it is not shared when `shared` asked for it but the system
    refused."""
    sock = socket.socket(family, kind, proto)
    refusal = None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if shared:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            except (OSError, AttributeError) as error:  # AttributeError: no such option
                refusal, shared = error, False
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(backlog)
        if shared:
            steer_new_connections_to_second(sock)
    except BaseException:
        sock.close()
        raise
    return sock, refusal


class _Task(WSGITask):
    def build_response_header(self) -> bytes:
        if self.channel.server.draining:
            self.set_close_on_finish()
        return super().build_response_header()


class _Channel(HTTPChannel):
    task_class = _Task


def is_idle(channel: HTTPChannel) -> bool:
    """No request partly received, queued or running, and nothing left to send."""
    return not (
        channel.request is not None or channel.requests or channel.total_outbufs_len
        or channel.close_when_flushed
    )


class DrainingServer:
    """One waitress server on a port's listening sockets, with its own event loop thread.

    `drain()` stops accepting and lets every connection under way finish; `abort()` closes
    everything now; `wait(timeout)` tells whether the server has stopped.
    """

    def __init__(
        self, app: Callable[..., Any], sockets: Sequence[socket.socket], **adjustments: Any
    ) -> None:
        self.map: dict[int, Any] = {}
        server = waitress.create_server(app, map=self.map, sockets=list(sockets), **adjustments)
        self.task_dispatcher = server.task_dispatcher
        # One waitress listener per socket, sharing the loop's map and the task threads.
        self.listeners: list[TcpWSGIServer] = [
            d for d in self.map.values() if isinstance(d, TcpWSGIServer)
        ]
        for listener in self.listeners:
            listener.channel_class = _Channel
            listener.draining = False
        self.port: int = sockets[0].getsockname()[1]
        self._drain = threading.Event()
        self._abort = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"http-{self.port}", daemon=True
        )

    def start(self) -> DrainingServer:
        self._thread.start()
        return self

    def drain(self) -> None:
        self._drain.set()
        self._wake()

    def abort(self) -> None:
        self._abort.set()
        self._wake()

    def _wake(self) -> None:
        if not self._stopped.is_set():
            try:
                self.listeners[0].pull_trigger()
            except OSError:  # the loop closed its trigger meanwhile: it has stopped
                pass

    def wait(self, timeout: float | None = None) -> bool:
        return self._stopped.wait(timeout)

    def close(self) -> None:
        """Stop at once, cutting whatever is under way (tests and benchmarks)."""
        self.abort()
        if self._thread.is_alive():
            self.wait(10)
        else:
            self._close_all()

    def under_way(self) -> tuple[int, int]:
        """(connections receiving a request, requests queued or running): for the log."""
        channels = self._channels()
        receiving = sum(1 for c in channels if c.request is not None)
        return receiving, sum(len(c.requests) for c in channels)

    def _channels(self) -> list[HTTPChannel]:
        return [c for listener in self.listeners for c in list(listener.active_channels.values())]

    def _run(self) -> None:
        try:
            listening = True
            while not self._abort.is_set():
                draining = self._drain.is_set()
                wasyncore.loop(
                    timeout=0.1 if draining else 1.0, map=self.map, use_poll=True, count=1
                )
                if not draining:
                    continue
                if listening:
                    self._stop_accepting()
                    listening = False
                if self._close_idle():
                    break
        except Exception:
            log.exception("server loop on port %d", self.port)
        finally:
            self._close_all()
            self._stopped.set()

    def _stop_accepting(self) -> None:
        for listener in self.listeners:
            listener.draining = True
        for listener in self.listeners:
            accepted = self._accept_backlog(listener)
            wasyncore.dispatcher.close(listener)  # the listener only; the trigger stays
            log.info("port %d (%s): no longer accepting (%d taken from the backlog)",
                     self.port, listener.effective_host, accepted)

    def _accept_backlog(self, listener: TcpWSGIServer) -> int:
        accepted = 0
        while accepted < listener.adj.backlog:
            try:
                pair = listener.accept()
            except OSError:
                break
            if pair is None:
                break
            conn, address = pair
            try:
                listener.set_socket_options(conn)
            except OSError:
                conn.close()
                continue
            listener.channel_class(
                listener, conn, listener.fix_addr(address), listener.adj, map=self.map
            )
            accepted += 1
        return accepted

    def _close_idle(self) -> bool:
        """Close the connections that are idle and quiet; True when none is left."""
        now = time.time()
        channels = self._channels()
        for channel in channels:
            if is_idle(channel) and now - channel.last_activity >= IDLE_GRACE_SECONDS:
                channel.handle_close()
        return not any(listener.active_channels for listener in self.listeners)

    def _close_all(self) -> None:
        # handle_close, unlike the dispatcher's close that close_all calls, marks the
        # channel disconnected and wakes a task thread waiting for a slow client to take
        # its output, so the task ends and closes its response (and the stream behind it).
        for channel in self._channels():
            try:
                channel.handle_close()
            except OSError:
                pass
        wasyncore.close_all(self.map)
        self.task_dispatcher.shutdown(cancel_pending=True, timeout=1)
