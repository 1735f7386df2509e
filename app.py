"""Routes and schedules; the logic lives in chalicelib."""

import functools

from chalice import Chalice, Rate

from chalicelib import config, pruning, store, submission, web

app = Chalice(app_name="crash-collector")
app.api.binary_types.extend(["multipart/form-data", "application/zip"])


@functools.cache
def settings() -> config.Config:
    return config.load()


@functools.cache
def reports() -> store.ReportStore:
    """Built on first use, then reused while the process is warm."""
    return store.ReportStore.from_config(settings())


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
    ) as report:
        return web.text(reports().put(report))  # 200 only once the bucket holds it


@app.schedule(Rate(settings().prune_rate_minutes, unit=Rate.MINUTES))
def prune(event):
    """Keep the reports under MAX_REPORTS_SIZE_MB; the local run calls this too."""
    cfg = settings()
    # A store of its own, so the run's logged S3 request counts are its requests alone.
    pruning.prune_to_limit(
        store.ReportStore.from_config(cfg), cfg.max_reports_bytes, cfg.orphan_grace_seconds
    )
