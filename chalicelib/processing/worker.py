"""The local run's crash processing: a bounded pool of worker processes.

Processing is CPU work in Python; in the server's own threads it would hold the
interpreter lock the upload threads need, so it runs in PROCESSING_WORKERS separate
processes. The pool is fed report ids as reports are stored (the submit route hands
them over without waiting), by a scan for unprocessed reports when it starts (what a
restart left behind) and by each pruning run's list of reports still unprocessed.
At most two jobs per worker are in flight; the rest wait in the feed queue.
"""

from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
import queue
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures.process import BrokenProcessPool

from chalicelib import config
from chalicelib.crash_store import CrashStore
from chalicelib.processing import processor
from chalicelib.store import ReportStore, ReportSummary, inverted
from chalicelib.symbol_store import SymbolStore

log = logging.getLogger("processing")
ATTEMPTS = 2  # a report whose processing kills its worker twice is marked, not retried

_stores: tuple[ReportStore, CrashStore, SymbolStore] | None = None


def unprocessed(
    reports: ReportStore, crashes: CrashStore, newer_than: str | None = None
) -> Iterator[ReportSummary]:
    """Committed reports that have no processed crash, newest first.

    Walks the two listings side by side (both newest first): one pass over each.
    """
    processed = crashes.iter_crashes(newer_than)
    current = next(processed, None)
    for stored in reports.iter_newest(newer_than=newer_than):
        position = inverted(stored.id)
        while current is not None and inverted(current.report_id) < position:
            current = next(processed, None)
        if current is None or current.report_id != stored.id:
            yield stored


def _init_worker() -> None:
    global _stores
    cfg = config.load()
    _stores = (
        ReportStore.from_config(cfg), CrashStore.from_config(cfg), SymbolStore.from_config(cfg)
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")


def _process(report_id: str) -> str:
    """In a worker: process one report; returns a line for the log."""
    assert _stores is not None
    reports, crashes, symbols = _stores
    stored = reports.find(report_id)
    if stored is None:
        return f"{report_id}: gone (pruned)"
    cfg = config.load()
    entry = processor.process_report(
        reports, crashes, stored, symbols,
        seconds=cfg.processing_seconds, megabytes=cfg.processing_memory_mb,
    )
    return f"{report_id}: {entry.reason} | {entry.signature}"


class ProcessingPool:
    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)
        self.feed: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.processed = 0
        self._attempts: dict[str, int] = {}
        self._slots = threading.BoundedSemaphore(2 * self.workers)
        self._executor = self._start()
        self._restart_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="processing-feed", daemon=True)

    def _start(self) -> concurrent.futures.ProcessPoolExecutor:
        return concurrent.futures.ProcessPoolExecutor(
            self.workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
        )

    def start(self, reports: ReportStore, crashes: CrashStore) -> ProcessingPool:
        """Start feeding; first queue what a restart left unprocessed (in a thread)."""
        self._crashes = crashes
        self._thread.start()
        threading.Thread(
            target=lambda: self.add_all(r.id for r in unprocessed(reports, crashes)),
            name="processing-backlog", daemon=True,
        ).start()
        return self

    def add(self, report_id: str) -> None:
        """Queue a report for processing; never blocks (the submit route calls this)."""
        self.feed.put_nowait(report_id)

    def add_all(self, report_ids: Iterable[str]) -> None:
        for report_id in report_ids:
            self.add(report_id)

    def stop(self) -> None:
        self._stop.set()
        self.feed.put_nowait("")
        self._thread.join(timeout=10)
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            report_id = self.feed.get()
            if not report_id:
                continue
            self._slots.acquire()
            if self._stop.is_set():
                return
            executor = self._executor
            try:
                future = executor.submit(_process, report_id)
            except (BrokenProcessPool, RuntimeError):
                self._slots.release()
                self._restart(executor)
                self.feed.put_nowait(report_id)
                continue
            future.add_done_callback(
                lambda done, rid=report_id, used=executor: self._done(rid, done, used)
            )

    def _done(
        self, report_id: str, future: concurrent.futures.Future[str],
        executor: concurrent.futures.ProcessPoolExecutor,
    ) -> None:
        self._slots.release()
        try:
            log.info("processed %s", future.result())
            self.processed += 1
            self._attempts.pop(report_id, None)
        except BrokenProcessPool:
            attempts = self._attempts.get(report_id, 0) + 1
            self._attempts[report_id] = attempts
            if not self._stop.is_set():
                self._restart(executor)
                if attempts < ATTEMPTS:
                    self.feed.put_nowait(report_id)
                else:
                    self._mark_failed(report_id, "the processing worker died on this dump")
        except Exception:
            log.exception("processing %s failed; it stays unprocessed", report_id)

    def _restart(self, broken: concurrent.futures.ProcessPoolExecutor) -> None:
        """Replace the pool once, however many of its jobs report it broken."""
        with self._restart_lock:
            if self._executor is not broken:
                return
            self._executor = self._start()
        broken.shutdown(wait=False, cancel_futures=True)

    def _mark_failed(self, report_id: str, message: str) -> None:
        try:
            reports = ReportStore(
                self._crashes.s3, self._crashes.bucket, self._crashes.prefix,
                self._crashes.retry_seconds,
            )
            stored = reports.find(report_id)
            if stored is not None:
                self._crashes.put_crash(stored, processor.error_crash("WORKER_DIED", message))
        except Exception:
            log.exception("could not mark %s", report_id)
