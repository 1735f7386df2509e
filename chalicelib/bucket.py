"""One S3 bucket under a key prefix: retried calls, listings, batched deletes, JSON objects.

The report store (store.py) and the crash store (crash_store.py) each own a part of
the key layout; this is the S3 plumbing they share. Every call retries transient
failures (timeouts, refused connections, S3 5xx and throttling) with backoff, and no
attempt starts past the caller's deadline, so a request's storage ends within its retry
budget plus one attempt's connect and read timeouts; then StoreUnavailable. A missing
key raises NotFound. A refusal retrying cannot fix (AccessDenied, NoSuchBucket, no
credentials, a malformed request) raises StoreRefused at once, naming S3's error code.

IAM: s3:PutObject, s3:GetObject, s3:ListBucket, s3:DeleteObject on the bucket.
"""

from __future__ import annotations

import datetime
import json
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import boto3
import botocore.session
import botocore.utils
from botocore.config import Config as BotoConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
    IncompleteReadError,
)
from botocore.exceptions import ConnectionError as S3ConnectionError

from chalicelib import config

log = logging.getLogger("store")

DELETE_BATCH = 1000
LIST_PAGE = 1000
# 409: a conditional PUT raced another write of the same key (S3 asks to retry it).
_RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504}
# S3 sends these with a 400 or 503: the request may succeed when sent again.
_RETRYABLE_CODES = {"SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable"}
# Network trouble and a metadata service that did not answer pass; any other botocore
# error (no credentials, an invalid parameter, no region) happens again every time.
_TRANSIENT_BOTO = (
    S3ConnectionError, HTTPClientError, IncompleteReadError, CredentialRetrievalError
)
T = TypeVar("T")


class StoreError(Exception):
    """Storage failed; the subclasses say whether waiting can help."""


class StoreUnavailable(StoreError):
    """The bucket kept failing for the whole retry budget: it may work later."""


class StoreRefused(StoreError):
    """S3 refused for a reason retrying will not fix (the deployment needs fixing).

    The message names S3's error code and the operation, never S3's own text: that
    can name the account and role, and the public /submit answer carries it.
    """


class PreconditionFailed(StoreError):
    """A conditional write found the key already there."""


class NotFound(StoreError):
    """The key (or the bucket) does not exist."""


def parse_timestamp(value: str) -> datetime.datetime:
    """S3 timestamps, the ISO 8601 ones of listings parsed fast.

    botocore's general parser costs about 70 us a key: most of a listing page's time.
    """
    try:
        return datetime.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return botocore.utils.parse_timestamp(value)


def s3_client(**kwargs: Any) -> Any:
    """A boto3 S3 client whose listings parse timestamps with parse_timestamp."""
    session = botocore.session.get_session()
    session.get_component("response_parser_factory").set_parser_defaults(
        timestamp_parser=parse_timestamp
    )
    return boto3.Session(botocore_session=session).client("s3", **kwargs)


def default_client(cfg: config.Config | None = None) -> Any:
    """The client the app uses: our own retries, path-style addressing, and the
    S3_CONNECT_TIMEOUT_SECONDS and S3_READ_TIMEOUT_SECONDS of cfg (default: the
    environment's), which bound each attempt (see Config.storage_seconds)."""
    cfg = cfg or config.load()
    return s3_client(
        config=BotoConfig(
            connect_timeout=cfg.s3_connect_timeout,
            read_timeout=cfg.s3_read_timeout,
            max_pool_connections=32,
            retries={"total_max_attempts": 1, "mode": "standard"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            s3={"addressing_style": "path"},
        ),
    )


class Bucket:
    def __init__(
        self, s3_client: Any, bucket: str, prefix: str = "", retry_seconds: float = 20.0
    ) -> None:
        """Use a ready S3 client and bucket; subclasses' from_config build both."""
        self.s3 = s3_client
        self.bucket = bucket
        self.prefix = prefix
        self.retry_seconds = retry_seconds
        self.requests: Counter[str] = Counter()
        s3_client.meta.events.register("before-call.s3", self._count_request)

    def _count_request(self, model: Any, **_: Any) -> None:
        self.requests[model.name] += 1

    def deadline(self) -> float:
        return time.monotonic() + self.retry_seconds

    def check_bucket(self) -> None:
        """Raise StoreError with a clear reason when the bucket cannot be reached."""
        try:
            self.retrying(self.deadline(), self.s3.head_bucket, Bucket=self.bucket)
        except NotFound:
            raise StoreError(f"bucket {self.bucket!r} does not exist") from None

    def get_object(self, key: str, deadline: float | None = None, **extra: Any) -> Any:
        """GetObject of a full key (prefix included), retried; raises NotFound."""
        return self.retrying(
            deadline or self.deadline(), self.s3.get_object, Bucket=self.bucket, Key=key,
            **extra,
        )

    def get_json(self, key: str) -> Any | None:
        """The JSON object at key (under the prefix), or None when there is none."""
        try:
            body = self.get_object(self.prefix + key)["Body"].read()
        except NotFound:
            return None
        return json.loads(body)

    def put_json(self, key: str, value: Any) -> None:
        self.put_bytes(key, json.dumps(value, sort_keys=True).encode(), "application/json")

    def put_bytes(self, key: str, body: bytes, content_type: str) -> None:
        self.retrying(
            self.deadline(), self.s3.put_object, Bucket=self.bucket, Key=self.prefix + key,
            Body=body, ContentType=content_type,
        )

    def list_items(
        self, prefix: str, start_after: str | None = None, page_size: int = LIST_PAGE
    ) -> Iterator[dict[str, Any]]:
        """Listing entries of every key starting with prefix (a full key, prefix included),
        lazily, one request of page_size keys at a time."""
        token = None
        while True:
            args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": page_size}
            if token:
                args["ContinuationToken"] = token
            elif start_after:
                args["StartAfter"] = start_after
            page = self.retrying(self.deadline(), self.s3.list_objects_v2, **args)
            yield from page.get("Contents", [])
            if not page.get("IsTruncated"):
                return
            token = page.get("NextContinuationToken")

    def delete_keys(self, keys: Sequence[str]) -> int:
        """Delete keys in batches of DELETE_BATCH (one request each); returns how many."""
        deleted = 0
        for start in range(0, len(keys), DELETE_BATCH):
            batch = keys[start : start + DELETE_BATCH]
            answer = self.retrying(
                self.deadline(),
                self.s3.delete_objects,
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
            )
            errors = answer.get("Errors", [])
            if errors:
                raise StoreError(f"could not delete {len(errors)} keys, first: {errors[0]}")
            deleted += len(batch)
        return deleted

    def retrying(self, deadline: float, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one S3 call, retrying transient failures with backoff.

        No attempt starts at or after deadline (a caller's later calls share it), so
        the call ends by deadline plus one attempt's timeouts. Raises StoreUnavailable
        when the time runs out, StoreRefused, NotFound or PreconditionFailed at once.
        """
        attempt = 0
        failure: Exception | None = None
        while True:
            if time.monotonic() >= deadline:
                raise _unavailable(failure, attempt)
            try:
                return call(*args, **kwargs)
            except ClientError as error:
                failure = _transient(error, getattr(call, "__name__", "S3 call"))
            except BotoCoreError as error:
                if not isinstance(error, _TRANSIENT_BOTO):
                    log.error("S3 call failed for good: %s", error)
                    raise StoreRefused(
                        f"storage refused: {type(error).__name__} (see the server log)"
                    ) from error
                failure = error
            attempt += 1
            # The last pause is cut short: one more attempt just before the deadline.
            left = deadline - time.monotonic() - 0.01
            pause = min(2.0, 0.05 * 2**attempt) * (0.5 + random.random() / 2)
            if left <= 0:
                raise _unavailable(failure, attempt)
            log.warning("S3 call failed (attempt %d), retrying: %s", attempt, failure)
            time.sleep(min(pause, left))


def _unavailable(failure: Exception | None, attempts: int) -> StoreUnavailable:
    """The error for a budget spent: what failed, in words safe for a public answer
    (S3's code or botocore's error type; the full text goes to the log)."""
    if failure is None:
        return StoreUnavailable("storage unavailable: the retry budget ran out")
    log.error("S3 kept failing (%d attempts): %s", attempts, failure)
    if isinstance(failure, ClientError):
        code = failure.response.get("Error", {}).get("Code", "")
        status = failure.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        what = f"S3 {code or 'error'} ({status})"
    else:
        what = type(failure).__name__
    error = StoreUnavailable(f"storage unavailable: {what} after {attempts} attempts")
    error.__cause__ = failure
    return error


def _transient(error: ClientError, operation: str) -> ClientError:
    """The error itself if retrying may help; raises what it means otherwise."""
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    code = error.response.get("Error", {}).get("Code", "")
    operation = error.operation_name or operation
    if status == 412 or code == "PreconditionFailed":
        raise PreconditionFailed(f"S3 precondition failed: {error}") from None
    if code == "NoSuchBucket":
        log.error("S3 refused %s for good: %s", operation, error)
        raise StoreRefused(f"storage refused: S3 NoSuchBucket on {operation}, the bucket"
                           " was not found") from None
    if status == 404 or code in ("NoSuchKey", "404", "NotFound"):
        raise NotFound(f"S3 object or bucket not found: {error}") from None
    if status in _RETRYABLE_STATUS or code in _RETRYABLE_CODES:
        return error
    log.error("S3 refused %s for good: %s", operation, error)
    raise StoreRefused(
        f"storage refused: S3 {code or 'error'} ({status}) on {operation} (see the server log)"
    ) from error
