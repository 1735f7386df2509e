"""Routes and schedules; the logic lives in chalicelib."""

import functools
import logging
import threading
from collections.abc import Callable
from typing import TypeVar

from chalice import Chalice, Rate

from chalicelib import (
    auth, bundle, config, crash_store, pages, pruning, report, store, submission, viewer, web,
)
from chalicelib.symbol_store import SYMBOLS, SymbolStore, sym_name, valid_module_id
from chalicelib.symbol_upload import accept_upload, complete_v2, upload_slot

log = logging.getLogger("app")
T = TypeVar("T")

app = Chalice(app_name="crash-collector")
app.api.binary_types.extend(["multipart/form-data", "application/zip"])
web.accept_any_type(app)  # no Accept header means any type, here and on API Gateway


def built_once(build: Callable[[], T]) -> Callable[[], T]:
    """Build on first use, then reuse while the process is warm; concurrent first calls
    (a burst against a cold local server) wait for one build: each costs an S3 client."""
    lock, cached = threading.Lock(), functools.cache(build)

    @functools.wraps(build)
    def get() -> T:
        with lock:
            return cached()

    get.cache_clear = cached.cache_clear  # type: ignore[attr-defined]
    return get


@built_once
def settings() -> config.Config:
    return config.load()


@built_once
def reports() -> store.ReportStore:
    return store.ReportStore.from_config(settings())


@built_once
def crashes() -> crash_store.CrashStore:
    return crash_store.CrashStore.from_config(settings())


@built_once
def symbols() -> SymbolStore:
    return SymbolStore.from_config(settings())


# Told each stored report id after the answer is decided; the local run's processing
# pool listens here (on AWS the bucket's object-created event starts processing).
report_stored: list[Callable[[str], None]] = []


def submission_limits() -> submission.Limits:
    cfg = settings()
    return submission.Limits(
        cfg.max_submission_bytes, cfg.max_annotations, cfg.max_annotation_bytes
    )


@app.route("/submit", methods=["POST"], content_types=["*/*"])
@web.translate_errors
def submit():
    request = app.current_request
    with submission.parse_submission(
        web.body(request), web.headers(request), web.query(request), submission_limits()
    ) as sent:
        report_id = reports().put(sent)  # 200 only once the bucket holds it
    tell(report_stored, report_id)  # queues and returns: processing never delays the answer
    return web.text(report_id)


def tell(listeners: list[Callable[..., None]], *args: str) -> None:
    """Call each listener; one that fails is logged, never felt by the request."""
    for listener in listeners:
        try:
            listener(*args)
        except Exception:
            log.exception("stored %s, but a listener failed", "/".join(args))


# -- crash processing: off the ingest path, in a function of its own on AWS -----------


@app.on_s3_event(
    bucket=settings().bucket, events=["s3:ObjectCreated:*"],
    prefix=settings().prefix + store.REPORTS, suffix=".json",
)
def process_crash(event):
    """A report committed: process its dump (the local run's worker pool does the same)."""
    stored = reports().parse_report_key({"Key": event.key, "Size": 0})
    if stored is not None:
        process_report(stored)


def process_report(stored: store.ReportSummary) -> None:
    # Imported here: the stack walker and siggen would lengthen every cold start of the
    # API function, /submit's included.
    from chalicelib.processing import processor

    cfg = settings()
    processor.process_report(
        reports(), crashes(), stored, symbols(),
        seconds=cfg.processing_seconds, megabytes=cfg.processing_memory_mb,
    )


# -- symbols: Breakpad's symupload (v1, sym-upload-v2) and zips, on the public port ---


# Told (debug_file, debug_id) of each newly stored symbol file; the local run's pool
# reprocesses the reports that lacked it (on AWS the bucket event does).
symbols_stored: list[Callable[[str, str], None]] = []


def uploader() -> str:
    """The upload key's name (HTTP Basic NAME:KEY or ?key=NAME:KEY); raises auth errors."""
    request = app.current_request
    return auth.require_uploader(
        request.headers.get("authorization"), web.query(request).get("key"),
        settings().symbol_upload_keys,
    )


def tell_symbols_stored(accepted: list) -> None:
    for item in accepted:
        if item.stored:
            tell(symbols_stored, item.debug_file, item.debug_id)


@app.route("/symbols/upload", methods=["POST"], content_types=["*/*"])
@web.translate_errors
def upload_symbols():
    """symupload v1's form, or a zip of <debug_file>/<debug_id>/<name>.sym files."""
    name, request = uploader(), app.current_request
    with upload_slot():
        accepted = accept_upload(symbols(), web.body(request), web.headers(request), name,
                                 settings().max_symbol_bytes)
    tell_symbols_stored(accepted)
    return web.text("".join(
        f"{'stored' if a.stored else 'unchanged'} {a.debug_file}/{a.debug_id}\n"
        for a in accepted
    ))


@app.route("/symbols/v1/symbols/{debug_file}/{check}", methods=["GET"])
@web.translate_errors
def symbols_check_status(debug_file, check):
    """sym-upload-v2: `<debug_id>:checkStatus`, FOUND or MISSING."""
    uploader()
    debug_id, _, verb = check.partition(":")
    if verb != "checkStatus" or not valid_module_id(debug_file, debug_id):
        raise store.ReportNotFound(check)
    found = symbols().stored_sha256(debug_file, debug_id) is not None
    return web.json_text({"status": "FOUND" if found else "MISSING"})


@app.route("/symbols/v1/{action}", methods=["POST"], content_types=["*/*"])
@web.translate_errors
def symbols_create_upload(action):
    """sym-upload-v2: `uploads:create` answers a presigned PUT URL into the bucket."""
    uploader()
    if action != "uploads:create":
        raise store.ReportNotFound(action)
    upload_key, url = symbols().upload_url()
    return web.json_text({"uploadUrl": url, "uploadKey": upload_key})


@app.route("/symbols/v1/uploads/{action}", methods=["POST"], content_types=["*/*"])
@web.translate_errors
def symbols_complete_upload(action):
    """sym-upload-v2: `<upload key>:complete` checks and stores the PUT file."""
    name, request = uploader(), app.current_request
    upload_key, _, verb = action.partition(":")
    if verb != "complete":
        raise store.ReportNotFound(action)
    with upload_slot():
        accepted = complete_v2(symbols(), upload_key, web.body(request).read(65536), name,
                               settings().max_symbol_bytes)
    tell_symbols_stored([accepted])
    return web.json_text({"result": "OK" if accepted.stored else "DUPLICATE_DATA"})


@app.on_s3_event(
    bucket=settings().bucket, events=["s3:ObjectCreated:*"],
    prefix=settings().prefix + SYMBOLS, suffix=".sym",
)
def reprocess_for_symbols(event):
    """A symbol file stored: process again the reports that were processed without it.

    Each report's note goes only once it is processed with the symbols, so what one run
    leaves (out of time, a storage error) stays noted for the next (docs/symbols.md).
    """
    found = symbols().module_of_key(event.key)
    if found is None:
        return
    context = getattr(event, "context", None)
    margin_ms = (settings().processing_seconds + 30) * 1000
    for number, report_id in enumerate(symbols().missing_reports(*found)):
        # Each report may take its whole budget: start one only with time left for it.
        if number and context is not None and \
                context.get_remaining_time_in_millis() < margin_ms:
            log.warning("out of time: reports still noted for %s/%s", *found)
            return
        try:
            stored = reports().find(report_id)
            if stored is None:  # pruned since
                symbols().clear_missing(report_id, [found])
                continue
            process_report(stored)
        except (store.StoreError, store.ReportNotFound) as error:
            log.warning("reprocessing %s failed, it stays noted: %s", report_id, error)


# -- the viewer: private, every route logs in first ----------------------------------


def login() -> viewer.Urls:
    """Check the viewer login (raises auth errors); returns the links for this request."""
    request = app.current_request
    auth.require_viewer(request.headers.get("authorization"), settings().viewer_users)
    return pages.urls_for(request)


@app.route("/")
@pages.html_errors
def crashes_page():
    urls = login()
    page = viewer.crashes_page(crashes(), web.query(app.current_request), urls)
    return pages.html("crashes.html", page, urls)


@app.route("/signatures/{sig}")
@pages.html_errors
def signature_page(sig):
    urls = login()
    page = viewer.signature_page(crashes(), sig, web.query(app.current_request), urls)
    return pages.html("signature.html", page, urls)


@app.route("/reports")
@pages.html_errors
def index():
    urls, query = login(), viewer.Query.parse(web.query(app.current_request))
    return pages.html("index.html", viewer.index_page(reports(), query, urls, crashes()), urls)


@app.route("/reports/{report_id}")
@pages.html_errors
def report_page(report_id):
    urls = login()
    page = viewer.report_page(reports(), report_id, urls, crashes())
    return pages.html("report.html", page, urls)


@app.route("/reports/{report_id}/crash.json")
@web.translate_errors
def report_crash(report_id):
    """The processed crash as a file; 404 until the report is processed."""
    login()
    name = f"{report_id}.crash.json"
    entries = list(crashes().iter_report_crashes(report_id))
    if entries and too_big_to_send(entries[0].size):
        return pages.redirect(crashes().download_url(entries[0], name))
    crash = crashes().read_first(entries)
    if crash is None:
        raise store.ReportNotFound(f"{report_id} is not processed yet")
    return pages.download_json(crash, name)


def too_big_to_send(size: int) -> bool:
    """Over DOWNLOAD_REDIRECT_MB: redirect to S3, or refuse what cannot be redirected."""
    limit = settings().download_redirect_bytes
    return 0 < limit < size


@app.route("/reports/{report_id}/dump")
@web.translate_errors
def report_dump(report_id):
    login()
    stored, name = reports().get(report_id), f"{report_id}.dmp"
    if too_big_to_send(stored.meta["dump"]["size"]):
        return pages.redirect(reports().download_url(stored, None, name))
    return pages.download_stream(*reports().open_sized(stored, None), name)


@app.route("/reports/{report_id}/attachments/{index}")
@web.translate_errors
def report_attachment(report_id, index):
    login()
    stored, number = reports().get(report_id), viewer.attachment_index(index)
    name = viewer.attachment_filename(stored, number)
    size = viewer.attachment_meta(stored, number)["size"]
    if too_big_to_send(size):
        return pages.redirect(reports().download_url(stored, number, name))
    return pages.download_stream(*reports().open_sized(stored, number), name)


@app.route("/reports/{report_id}/bundle")
@web.translate_errors
def report_bundle(report_id):
    login()
    stored = reports().get(report_id)
    if too_big_to_send(report.total_size(stored.meta)):
        raise web.TooLargeToSend("bundle too large to send here: download its parts one by one")
    archive = bundle.build(reports(), stored)
    return pages.download_stream(archive, None, bundle.name_for(stored.meta), "application/zip")


@app.route("/api/crashes")
@pages.json_errors
def api_crashes():
    urls = login().as_api()
    return pages.json(viewer.crashes_page(crashes(), web.query(app.current_request), urls))


@app.route("/api/signatures/{sig}")
@pages.json_errors
def api_signature(sig):
    urls = login().as_api()
    return pages.json(viewer.signature_page(crashes(), sig, web.query(app.current_request), urls))


@app.route("/api/reports")
@pages.json_errors
def api_reports():
    urls, query = login().as_api(), viewer.Query.parse(web.query(app.current_request))
    return pages.json(viewer.index_page(reports(), query, urls, crashes()))


@app.route("/api/reports/{report_id}")
@pages.json_errors
def api_report(report_id):
    urls = login().as_api()
    return pages.json(viewer.report_page(reports(), report_id, urls, crashes()))


@app.route("/symbols")
@pages.html_errors
def symbols_page():
    urls = login()
    page = viewer.symbols_page(symbols(), crashes(), web.query(app.current_request), urls)
    return pages.html("symbols.html", page, urls)


@app.route("/api/symbols")
@pages.json_errors
def api_symbols():
    urls = login().as_api()
    return pages.json(viewer.symbols_page(symbols(), crashes(), web.query(app.current_request),
                                          urls))


@app.route("/symbols/{debug_file}/{debug_id}/{name}")
@web.translate_errors
def symbol_file(debug_file, debug_id, name):
    """The .sym file, where `minidump-stackwalk --symbols-url <viewer>/symbols` looks."""
    login()
    if not valid_module_id(debug_file, debug_id) or name != sym_name(debug_file):
        raise store.ReportNotFound(name)
    body, size = symbols().open_sym(debug_file, debug_id)
    if too_big_to_send(size):
        body.close()
        return pages.redirect(symbols().sym_url(debug_file, debug_id))
    return pages.download_stream(body, size, name)


@app.schedule(Rate(settings().prune_rate_minutes, unit=Rate.MINUTES))
def prune(event):
    """Keep the reports under MAX_REPORTS_SIZE_MB; the local run calls this too and
    queues the unprocessed reports the answer names (the newest 1,000)."""
    cfg = settings()
    # A store of its own, so the run's logged S3 request counts are its requests alone.
    result = pruning.prune_to_limit(
        store.ReportStore.from_config(cfg), cfg.max_reports_bytes, cfg.orphan_grace_seconds
    )
    return {"unprocessed_ids": result.unprocessed_ids[-1000:],
            "reprocess_ids": result.reprocess_ids[-1000:]}
