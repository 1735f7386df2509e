"""The local run's crash processing: a bounded pool of worker processes.

Processing is CPU work in Python; in the server's own threads it would hold the
interpreter lock the upload threads need, so it runs in PROCESSING_WORKERS separate
processes. The pool is fed report ids as reports are stored (the submit route hands
them over without waiting), by a scan for unprocessed reports when it starts (what a
restart left behind) and by each pruning run's list of reports still unprocessed.
At most two jobs per worker are in flight; the rest wait in the feed queue. While
reports are arriving, new jobs wait for a quiet moment (at most MAX_DEFER_SECONDS):
the workers' CPU would otherwise come out of ingest on a small machine.
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import multiprocessing
import queue
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures.process import BrokenProcessPool

from chalicelib import config
from chalicelib.crash_store import CrashStore
from chalicelib.processing import processor
from chalicelib.store import ReportStore, ReportSummary, inverted
from chalicelib.symbol_store import SymbolStore

log = logging.getLogger("processing")
# Jobs wait until no report has been stored for QUIET_SECONDS, but never longer than
# MAX_DEFER_SECONDS each.
QUIET_SECONDS = 0.5
MAX_DEFER_SECONDS = 10.0

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
    # A terminal's Ctrl-C reaches the whole process group: the local run stops the pool
    # itself once its requests are drained, and a job under way should finish.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cfg = config.load()
    _stores = (
        ReportStore.from_config(cfg), CrashStore.from_config(cfg), SymbolStore.from_config(cfg)
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")


def _process(report_id: str, again: bool) -> str:
    """In a worker: process one report; returns a line for the log. Unless `again`
    (symbols arrived), a report processed since it was queued is left as it is."""
    assert _stores is not None
    reports, crashes, symbols = _stores
    if not again and next(crashes.iter_report_crashes(report_id), None) is not None:
        return f"{report_id}: already processed"
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
    """Feeds report ids to worker processes, at most two jobs per worker in flight.

    A worker that dies breaks the whole pool, failing every job in flight: those jobs
    become suspects and run again one at a time, alone in a fresh pool, so only the
    dump that really kills a worker (twice) is marked ERROR_WORKER_DIED.
    """

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)
        self.capacity = 2 * self.workers
        self.feed: queue.SimpleQueue[tuple[str, bool]] = queue.SimpleQueue()
        self.processed = 0
        self._pending: set[str] = set()  # queued or in flight: queued once
        self._last_stored = 0.0
        self._pending_lock = threading.Lock()
        self._suspects: collections.deque[tuple[str, bool]] = collections.deque()
        self._slots = threading.Semaphore(self.capacity)
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
        self._reports, self._crashes = reports, crashes
        self._thread.start()
        threading.Thread(
            target=lambda: self.add_all(r.id for r in unprocessed(reports, crashes)),
            name="processing-backlog", daemon=True,
        ).start()
        return self

    def stored(self, report_id: str) -> None:
        """The submit route's listener: a report was just stored. Never blocks."""
        self._last_stored = time.monotonic()
        self.add(report_id)

    def _wait_for_quiet(self) -> None:
        """Hold new jobs back while reports are arriving: on a machine whose cores also
        serve /submit (the local run), a worker's CPU would come out of ingest. Waits at
        most MAX_DEFER_SECONDS, so a steady stream still gets processed."""
        deadline = time.monotonic() + MAX_DEFER_SECONDS
        while not self._stop.is_set() and time.monotonic() < deadline:
            quiet_for = time.monotonic() - self._last_stored
            if quiet_for >= QUIET_SECONDS:
                return
            self._stop.wait(QUIET_SECONDS - quiet_for)

    def add(self, report_id: str, again: bool = False) -> None:
        """Queue a report; never blocks (the submit route calls this). `again`: process
        it even if it was processed (its missing symbols arrived)."""
        with self._pending_lock:
            if report_id in self._pending:
                return
            self._pending.add(report_id)
        self.feed.put_nowait((report_id, again))

    def add_all(self, report_ids: Iterable[str], again: bool = False) -> None:
        for report_id in report_ids:
            self.add(report_id, again)

    def stop(self) -> None:
        self._stop.set()
        self.feed.put_nowait(("", False))
        self._thread.join(timeout=10)
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _next(self) -> tuple[str, bool, int] | None:
        """The next job and the slots it takes: all of them for a suspect."""
        if self._suspects:
            report_id, again = self._suspects.popleft()
            return report_id, again, self.capacity
        try:
            report_id, again = self.feed.get(timeout=0.5)
        except queue.Empty:
            return None
        return (report_id, again, 1) if report_id else None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._feed_one()
            except Exception:  # the feed must outlive any one job's trouble
                log.exception("processing feed")

    def _feed_one(self) -> None:
        job = self._next()
        if job is None:
            return
        report_id, again, slots = job
        self._wait_for_quiet()
        for _ in range(slots):
            self._slots.acquire()
        if self._stop.is_set():
            return
        executor = self._executor
        try:
            future = executor.submit(_process, report_id, again)
        except (BrokenProcessPool, RuntimeError):
            self._release(slots)
            self._restart(executor)
            self._suspects.append((report_id, again))
            return
        future.add_done_callback(
            lambda done, job=job, used=executor: self._done(job, done, used)
        )

    def _release(self, slots: int) -> None:
        for _ in range(slots):
            self._slots.release()

    def _done(
        self, job: tuple[str, bool, int], future: concurrent.futures.Future[str],
        executor: concurrent.futures.ProcessPoolExecutor,
    ) -> None:
        report_id, again, slots = job
        try:
            log.info("processed %s", future.result())
            self.processed += 1
        except BrokenProcessPool:
            if not self._stop.is_set():
                self._restart(executor)
                if slots == self.capacity:  # it ran alone: this dump kills workers
                    self._mark_failed(report_id, "the processing worker died on this dump")
                else:
                    self._suspects.append((report_id, again))
                    self._release(slots)
                    return  # still pending: it runs again, alone
        except Exception:
            log.exception("processing %s failed; it stays unprocessed", report_id)
        with self._pending_lock:
            self._pending.discard(report_id)
        self._release(slots)

    def _restart(self, broken: concurrent.futures.ProcessPoolExecutor) -> None:
        """Replace the pool once, however many of its jobs report it broken."""
        with self._restart_lock:
            if self._executor is not broken:
                return
            self._executor = self._start()
        broken.shutdown(wait=False, cancel_futures=True)

    def _mark_failed(self, report_id: str, message: str) -> None:
        try:
            stored = self._reports.find(report_id)
            if stored is not None:
                self._crashes.put_crash(stored, processor.error_crash("WORKER_DIED", message))
        except Exception:
            log.exception("could not mark %s", report_id)
