"""The local run: embedded S3, submit and viewer servers, and the pruning schedule.

`make run` (python -m chalicelib.localrun) starts SeaweedFS on loopback with its data
under .local-data/, then serves app.py through waitress: /submit on
SUBMIT_SERVER_PORT, every other route on REPORTS_SERVER_PORT. `chalice local` is not
used because it reads Crashpad's chunked bodies as empty and runs no schedules.

SIGTERM or Ctrl-C stops gracefully (docs/running.md): stop accepting, finish every
request under way (at most STORAGE_RETRY_SECONDS + DRAIN_MARGIN_SECONDS), then stop the
processing pool and the embedded S3. A second signal, a second or more after the first,
cuts the drain short; the S3 is stopped either way. The listeners share their ports
(chalicelib.serving), so a new run can start while the old one drains.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import math
import os
import signal
import socket
import threading
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from chalicelib import config, report
from chalicelib.processing.worker import ProcessingPool
from chalicelib.seaweed import SeaweedServer
from chalicelib.serving import DrainingServer, listening_sockets
from chalicelib.wsgi import ChaliceWSGI

log = logging.getLogger("localrun")
SUBMIT_ROUTES = {"/submit"}
# Covers the last S3 attempt a request may start within its retry budget (15 s read
# timeout) and the time a client takes to send the rest of its body.
DRAIN_MARGIN_SECONDS = 20
EMBEDDED_S3_KEYS = ("local", "local")  # weed mini runs without auth; any pair is accepted


def is_public(route: str) -> bool:
    """Routes of the public port: crash submission and symbol uploads (with their key);
    everything else (the viewer, the symbol files themselves) is private."""
    return route in SUBMIT_ROUTES or route == "/symbols/upload" or route.startswith(
        "/symbols/v1/"
    )


def serve(
    app: object, cfg: config.Config, host: str = "127.0.0.1", shared: bool = False
) -> list[DrainingServer]:
    """Start the submit and viewer servers in threads; returns them (.drain(), .close()).

    `shared`: a later run may bind the same ports and take the new connections (a rolling
    restart); tests and benchmarks keep their ports to themselves. Raises OSError naming
    the port when one is held by a server that does not share it.
    """
    body_limit = max(cfg.max_submission_bytes, cfg.max_symbol_bytes) + 1024 * 1024
    plan = [
        (cfg.submit_port, ChaliceWSGI(app, is_public, body_limit),
         {"threads": 16, "max_request_body_size": body_limit, "channel_timeout": 120}),
        (cfg.reports_port, ChaliceWSGI(app, lambda r: not is_public(r), body_limit),
         {"threads": 8}),
    ]
    sockets: list[list[socket.socket]] = []
    try:
        for port, _, _ in plan:
            try:
                sockets.append(listening_sockets(host, port, shared=shared))
            except OSError as error:
                raise OSError(error.errno, f"port {port} on {host}: {error.strerror}") from None
    except OSError:
        for sock in (sock for group in sockets for sock in group):
            sock.close()
        raise
    return [
        DrainingServer(wsgi, group, ident="crash-collector", **options).start()
        for (_, wsgi, options), group in zip(plan, sockets, strict=True)
    ]


def drain(servers: list[DrainingServer], seconds: float, hurry: Any = lambda: False) -> bool:
    """Drain every server at once, for at most `seconds` or until `hurry()` is true, then
    cut what is left. Returns True when every request under way was finished."""

    def under_way() -> tuple[int, int]:
        receiving, running = zip(*(server.under_way() for server in servers), strict=True)
        return sum(receiving), sum(running)

    log.info("draining: %d being received, %d being answered", *under_way())
    for server in servers:
        server.drain()
    started = noted = time.monotonic()
    while busy := [server for server in servers if not server.wait(0)]:
        now = time.monotonic()
        if hurry() or now - started > seconds:
            log.warning("stopping now: cutting %d upload(s) being received and %d request(s)"
                        " being answered", *under_way())
            for server in servers:
                server.abort()
            for server in servers:
                server.wait(5)
            return False
        if now - noted >= 5:
            noted = now
            log.info("draining: %d being received, %d being answered (%.0f s left)",
                     *under_way(), seconds - (now - started))
        busy[0].wait(0.1)  # one that has stopped would return at once: a busy loop
    log.info("drained in %.1f s", time.monotonic() - started)
    return True


class StopRequests:
    """SIGINT and SIGTERM as timestamps the main thread polls. A handler that raises (the
    default KeyboardInterrupt) can land inside the cleanup and skip stopping the S3."""

    SAME_REQUEST_SECONDS = 1.0  # make passes a SIGTERM on to its child: the same request

    def __init__(self) -> None:
        self.times: list[float] = []

    def install(self) -> StopRequests:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: object) -> None:
        self.times.append(time.monotonic())

    def wait(self) -> None:
        while not self.times:
            time.sleep(0.1)

    def again(self) -> bool:
        """A second request to stop, not the first one delivered twice."""
        return any(t - self.times[0] >= self.SAME_REQUEST_SECONDS for t in self.times[1:])


def prepare_environment(environ: MutableMapping[str, str], s3_endpoint: str | None) -> None:
    """Point the app's S3 client at the embedded S3 (`s3_endpoint`), or, when None (an
    external S3), leave the credential chain alone: environment keys, AWS_PROFILE,
    container or instance credentials all stay as they are."""
    if s3_endpoint is None:
        return
    environ["AWS_ENDPOINT_URL_S3"] = s3_endpoint
    environ["AWS_ACCESS_KEY_ID"], environ["AWS_SECRET_ACCESS_KEY"] = EMBEDDED_S3_KEYS
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):
        environ.pop(name, None)
    environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


def notify_service_manager(state: str, environ: MutableMapping[str, str] = os.environ) -> bool:
    """Tell systemd (Type=notify) our state, e.g. "READY=1" or "STOPPING=1"; a no-op
    (False) when not started by it."""
    address = environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(state.encode(), address)
    except OSError as error:
        log.warning("cannot notify the service manager at %s: %s", address, error)
        return False
    return True


def attach_processing(application: Any, workers: int) -> ProcessingPool:
    """Start the processing pool and have the app feed it: each stored report, and the
    reports that lacked symbols when these arrive. Stop it with .stop()."""
    pool = ProcessingPool(workers).start(application.reports(), application.crashes())
    application.report_stored.append(pool.stored)
    application.symbols_stored.append(
        lambda debug_file, debug_id: pool.add_all(
            application.symbols().missing_reports(debug_file, debug_id), again=True)
    )
    return pool


def run_schedule(
    prune: object, minutes: int, stop: threading.Event, pool: ProcessingPool | None = None
) -> None:
    """Run the app's scheduled pruning every `minutes`, as EventBridge would on AWS;
    reports it finds unprocessed (older than a minute: not just queued) go to the pool."""
    event = {
        "detail-type": "Scheduled Event", "source": "local.schedule", "detail": {}, "time": "",
        "region": "local", "resources": [], "account": "", "id": "", "version": "0",
    }
    while not stop.wait(minutes * 60):
        try:
            result = prune(event, None)
        except Exception:
            log.exception("scheduled pruning failed")
            continue
        if pool is not None and isinstance(result, dict):
            settled = report.id_bound(
                datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=1),
                False,
            )
            pool.add_all(i for i in result.get("unprocessed_ids", ()) if i < settled)
            pool.add_all(result.get("reprocess_ids", ()), again=True)


def positive_seconds(text: str) -> float:
    """A finite number of seconds above zero (argparse names the flag on refusal)."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, not {text!r}")
    return seconds


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=".local-data", help="where the embedded S3 keeps data")
    parser.add_argument(
        "--external-s3", action="store_true",
        help="use the S3 at AWS_ENDPOINT_URL_S3 (or AWS) instead of starting SeaweedFS",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address the servers listen on")
    parser.add_argument(
        "--drain-seconds", type=positive_seconds, default=None,
        help="longest wait for requests under way on stop (default: STORAGE_RETRY_SECONDS"
        f" + {DRAIN_MARGIN_SECONDS})",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cfg = config.load()
    stops = StopRequests().install()
    drain_seconds = args.drain_seconds
    if drain_seconds is None:
        drain_seconds = cfg.storage_retry_seconds + DRAIN_MARGIN_SECONDS
    s3: SeaweedServer | None = None
    try:
        if not args.external_s3:
            s3 = SeaweedServer(Path(args.data) / "s3", cfg.bucket, cfg.local_s3_port).start()
        prepare_environment(os.environ, s3.endpoint if s3 is not None else None)
        import app as application  # after the endpoint is set: the store reads it on first use

        application.reports().check_bucket()
        servers = serve(application.app, cfg, args.host, shared=True)
    except Exception as error:
        if s3 is not None:
            s3.stop()
        raise SystemExit(f"cannot start: {error}") from None
    stop = threading.Event()
    pool = None
    try:
        if cfg.processing_workers > 0:
            pool = attach_processing(application, cfg.processing_workers)
        prune = getattr(application, "prune", None)
        if prune is not None:
            threading.Thread(
                target=run_schedule, args=(prune, cfg.prune_rate_minutes, stop, pool),
                daemon=True,
            ).start()
        announce(args, cfg, s3, drain_seconds)
        notify_service_manager("READY=1")
        stops.wait()
        notify_service_manager("STOPPING=1")
        log.info("stopping: no new connections; finishing requests under way"
                 " (Ctrl-C again to stop at once)")
        drain(servers, drain_seconds, stops.again)
    finally:
        stop.set()
        for server in servers:
            server.close()  # a no-op once drained
        if pool is not None:
            pool.stop()
        if s3 is not None:
            s3.stop()
            log.info("embedded S3 stopped")


def announce(
    args: argparse.Namespace, cfg: config.Config, s3: SeaweedServer | None, drain_seconds: float
) -> None:
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3", "AWS S3")
    where = f", data in {s3.data_dir}, weed pid {s3.process.pid}" if s3 is not None else ""
    print(f"S3              {endpoint}  bucket {cfg.bucket}{where}")
    print(f"submit          http://{args.host}:{cfg.submit_port}/submit")
    print(f"viewer          http://{args.host}:{cfg.reports_port}/")
    print(f"processing      {cfg.processing_workers} worker process(es)")
    if not cfg.viewer_users:
        print("viewer login    none set, so the viewer refuses to serve. Set one with:\n"
              "  export VIEWER_USERS=\"admin:$(python -m chalicelib.auth hash)\"")
    print(f"Ctrl-C stops (finishing requests under way, at most {drain_seconds:.0f} s).",
          flush=True)


if __name__ == "__main__":
    main()
