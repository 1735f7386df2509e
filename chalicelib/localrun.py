"""The local run: embedded S3, submit and viewer servers, and the pruning schedule.

`make run` (python -m chalicelib.localrun) starts SeaweedFS on loopback with its data
under .local-data/, then serves app.py through waitress: /submit on
SUBMIT_SERVER_PORT, every other route on REPORTS_SERVER_PORT. `chalice local` is not
used because it reads Crashpad's chunked bodies as empty and runs no schedules.
Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any

import waitress

from chalicelib import config, report
from chalicelib.processing.worker import ProcessingPool
from chalicelib.seaweed import SeaweedServer
from chalicelib.wsgi import ChaliceWSGI

log = logging.getLogger("localrun")
SUBMIT_ROUTES = {"/submit"}


def is_public(route: str) -> bool:
    """Routes of the public port: crash submission and symbol uploads (with their key);
    everything else (the viewer, the symbol files themselves) is private."""
    return route in SUBMIT_ROUTES or route == "/symbols/upload" or route.startswith(
        "/symbols/v1/"
    )


def serve(app: object, cfg: config.Config, host: str = "127.0.0.1") -> list[object]:
    """Start the submit and viewer servers in threads; returns them (call .close())."""
    body_limit = max(cfg.max_submission_bytes, cfg.max_symbol_bytes) + 1024 * 1024
    servers = [
        waitress.create_server(
            ChaliceWSGI(app, is_public, body_limit),
            host=host, port=cfg.submit_port, threads=16,
            max_request_body_size=body_limit, channel_timeout=120, ident="crash-collector",
        ),
        waitress.create_server(
            ChaliceWSGI(app, lambda r: not is_public(r), body_limit),
            host=host, port=cfg.reports_port, threads=8, ident="crash-collector",
        ),
    ]
    for server in servers:
        threading.Thread(target=server.run, daemon=True).start()
    return servers


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=".local-data", help="where the embedded S3 keeps data")
    parser.add_argument(
        "--external-s3", action="store_true",
        help="use the S3 at AWS_ENDPOINT_URL_S3 (or AWS) instead of starting SeaweedFS",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address the servers listen on")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cfg = config.load()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    s3: SeaweedServer | None = None
    if args.external_s3:
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3", "AWS S3")
    else:
        s3 = SeaweedServer(Path(args.data) / "s3", cfg.bucket, cfg.local_s3_port).start()
        endpoint = os.environ["AWS_ENDPOINT_URL_S3"] = s3.endpoint
    import app as application  # after the endpoint is set: the store reads it on first use

    stop = threading.Event()
    try:
        application.reports().check_bucket()
        servers = serve(application.app, cfg, args.host)
    except Exception as error:
        if s3 is not None:
            s3.stop()
        raise SystemExit(f"cannot start: {error}") from None
    pool = None
    if cfg.processing_workers > 0:
        pool = attach_processing(application, cfg.processing_workers)
    prune = getattr(application, "prune", None)
    if prune is not None:
        threading.Thread(
            target=run_schedule, args=(prune, cfg.prune_rate_minutes, stop, pool), daemon=True
        ).start()
    where = f", data in {s3.data_dir}" if s3 is not None else ""
    print(f"S3              {endpoint}  bucket {cfg.bucket}{where}")
    print(f"submit          http://{args.host}:{cfg.submit_port}/submit")
    print(f"viewer          http://{args.host}:{cfg.reports_port}/")
    print(f"processing      {cfg.processing_workers} worker process(es)")
    if not cfg.viewer_users:
        print("viewer login    none set, so the viewer refuses to serve. Set one with:\n"
              "  export VIEWER_USERS=\"admin:$(python -m chalicelib.auth hash)\"")
    print("Ctrl-C stops everything.")
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        for server in servers:
            server.close()
        if pool is not None:
            pool.stop()
        if s3 is not None:
            s3.stop()


if __name__ == "__main__":
    main()
