"""Viewer logins: HTTP Basic checked against salted PBKDF2 hashes from VIEWER_USERS.

VIEWER_USERS holds `user:hash` pairs separated by commas; each hash reads
`pbkdf2_sha256$<iterations>$<salt base64>$<hash base64>`. Make one with
`python -m chalicelib.auth hash` (prompts) or `... hash --password-stdin`.

The viewer is private by default: with no logins configured it refuses to serve
(ViewerNotConfigured) rather than serving openly. Crash reports hold memory of the
crashed process, so they are never public; /submit stays open for Crashpad.

Each check runs PBKDF2 (about 0.3 s of CPU by default), so wrong logins are bounded
(docs/limits.md): a header that just failed fails again from a cache, without hashing,
and each kind of login (viewer, symbol upload key) hashes one check at a time, a
request waiting at most HASH_WAIT_SECONDS for its turn.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import getpass
import hashlib
import hmac
import logging
import secrets
import sys
import threading
import time
from collections import OrderedDict

ALGORITHM = "pbkdf2_sha256"
DEFAULT_ITERATIONS = 600_000
CHALLENGE = 'Basic realm="crash reports", charset="UTF-8"'
_CACHE_SIZE = 256
FAILURE_CACHE_SIZE = 4096
FAILURE_SECONDS = 60  # a header that failed fails from the cache this long
HASH_SLOTS = 1  # PBKDF2 checks at once, per kind of login
HASH_WAIT_SECONDS = 5.0
_CACHE_SECRET = secrets.token_bytes(32)  # cache keys are useless outside this process


class Unauthorized(Exception):
    """No credentials, or wrong ones: the client should ask the user to log in."""

    headers = {"WWW-Authenticate": CHALLENGE}


class ViewerNotConfigured(Exception):
    """No usable login is configured, so the viewer refuses to serve at all."""


class LoginsBusy(Exception):
    """Too many logins are being checked at once: retry shortly."""

    headers = {"Retry-After": "5"}


def hash_password(
    password: str, iterations: int = DEFAULT_ITERATIONS, salt: bytes | None = None
) -> str:
    """A VIEWER_USERS hash of `password` with a fresh random salt."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return "$".join(
        [ALGORITHM, str(iterations), base64.b64encode(salt).decode(),
         base64.b64encode(digest).decode()]
    )


def _parse_hash(encoded: str) -> tuple[int, bytes, bytes]:
    parts = encoded.split("$")
    if len(parts) != 4:
        raise ValueError(f"not a {ALGORITHM}$iterations$salt$hash value")
    algorithm, iterations, salt, digest = parts
    if algorithm != ALGORITHM:
        raise ValueError(f"unknown algorithm {algorithm!r}, expected {ALGORITHM}")
    if not iterations.isdigit() or int(iterations) < 1:
        raise ValueError("iterations must be a positive number")
    try:
        return int(iterations), base64.b64decode(salt, validate=True), base64.b64decode(
            digest, validate=True
        )
    except binascii.Error:
        raise ValueError("salt and hash must be base64") from None


def verify_password(password: str, encoded: str) -> bool:
    """True when `password` matches the hash; the final comparison is constant time."""
    iterations, salt, expected = _parse_hash(encoded)
    actual = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return hmac.compare_digest(actual, expected)


log = logging.getLogger(__name__)
_HOW = "set VIEWER_USERS to user:hash, the hash from `python -m chalicelib.auth hash`"


def parse_users(spec: str) -> dict[str, str]:
    """`user:hash,user:hash` to {user: hash}; raises ViewerNotConfigured when unusable."""
    users: dict[str, str] = {}
    for entry in spec.split(","):
        entry = entry.strip()
        if not entry:
            continue
        user, sep, encoded = entry.partition(":")
        if not sep or not user:
            raise ViewerNotConfigured(f"viewer login misconfigured: {_HOW}")
        try:
            _parse_hash(encoded)
        except ValueError as error:
            log.error("VIEWER_USERS entry for %r: %s", user, error)  # names stay in the log
            raise ViewerNotConfigured(f"viewer login misconfigured ({error}): {_HOW}") from None
        users[user] = encoded
    if not users:
        raise ViewerNotConfigured(f"viewer login not configured: {_HOW}")
    return users


def _cache_key(spec: str, header: str) -> bytes:
    """A keyed hash of (configuration, header): a changed configuration or password
    misses, and no password is kept in memory in the clear."""
    return hmac.new(_CACHE_SECRET, f"{spec}\0{header}".encode(), hashlib.sha256).digest()


class _VerifiedCache:
    """Recently verified Authorization headers, so one page's requests pay PBKDF2 once."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.entries: OrderedDict[bytes, str] = OrderedDict()
        self.lock = threading.Lock()

    key = staticmethod(_cache_key)

    def get(self, key: bytes) -> str | None:
        with self.lock:
            user = self.entries.get(key)
            if user is not None:
                self.entries.move_to_end(key)
            return user

    def add(self, key: bytes, user: str) -> None:
        with self.lock:
            self.entries[key] = user
            self.entries.move_to_end(key)
            while len(self.entries) > self.size:
                self.entries.popitem(last=False)

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()


class _FailureCache:
    """Headers that failed within the last `seconds`, at most `size` (oldest go first)."""

    def __init__(self, size: int, seconds: float) -> None:
        self.size = size
        self.seconds = seconds
        self.until: OrderedDict[bytes, float] = OrderedDict()
        self.lock = threading.Lock()

    def __contains__(self, key: bytes) -> bool:
        with self.lock:
            until = self.until.get(key)
            if until is not None and until < time.monotonic():
                del self.until[key]
                until = None
            return until is not None

    def add(self, key: bytes) -> None:
        with self.lock:
            self.until[key] = time.monotonic() + self.seconds
            self.until.move_to_end(key)
            while len(self.until) > self.size:
                self.until.popitem(last=False)

    def clear(self) -> None:
        with self.lock:
            self.until.clear()


verified = _VerifiedCache(_CACHE_SIZE)
failed = _FailureCache(FAILURE_CACHE_SIZE, FAILURE_SECONDS)
_hashing = {"viewer": threading.BoundedSemaphore(HASH_SLOTS),
            "uploads": threading.BoundedSemaphore(HASH_SLOTS)}


def require_viewer(authorization: str | None, users_spec: str, kind: str = "viewer") -> str:
    """The logged-in user's name.

    Raises ViewerNotConfigured when VIEWER_USERS is empty or malformed, Unauthorized
    when the Authorization header is missing, malformed or wrong, and LoginsBusy when
    no check could start within HASH_WAIT_SECONDS.
    """
    users = parse_users(users_spec)
    if not authorization:
        raise Unauthorized("login required")
    cache_key = _cache_key(users_spec, authorization)
    known = verified.get(cache_key)
    if known is not None:
        return known
    if cache_key in failed:
        raise Unauthorized("wrong user name or password")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        raise Unauthorized("login required (HTTP Basic)")
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthorized("malformed credentials") from None
    user, sep, password = decoded.partition(":")
    if not sep:
        raise Unauthorized("malformed credentials")
    encoded = users.get(user)
    slot = _hashing[kind]
    if not slot.acquire(timeout=HASH_WAIT_SECONDS):
        raise LoginsBusy("too many logins being checked at once: retry in a few seconds")
    try:
        # The same header may have been checked while this one waited.
        known = verified.get(cache_key)
        if known is not None:
            return known
        if cache_key in failed:
            raise Unauthorized("wrong user name or password")
        # An unknown name is still checked against some hash: it takes as long as a known one.
        matches = verify_password(password, encoded or next(iter(users.values())))
    finally:
        slot.release()
    if encoded is None or not matches:
        failed.add(cache_key)
        raise Unauthorized("wrong user name or password")
    verified.add(cache_key, user)
    return user


class UploadsNotConfigured(Exception):
    """No upload key is configured, so symbol uploads are refused."""


def require_uploader(authorization: str | None, key: str | None, keys_spec: str) -> str:
    """The name of the symbol upload key the client sent, as HTTP Basic `NAME:KEY` or
    as the `key` query parameter `NAME:KEY` (how symupload's -k sends it).

    SYMBOL_UPLOAD_KEYS has VIEWER_USERS' format. Raises UploadsNotConfigured or
    Unauthorized.
    """
    if not keys_spec.strip():
        raise UploadsNotConfigured(
            "symbol uploads are off: set SYMBOL_UPLOAD_KEYS to name:hash, the hash from "
            "`python -m chalicelib.auth hash`"
        )
    if key and not authorization:
        authorization = "Basic " + base64.b64encode(key.encode()).decode()
    try:
        return require_viewer(authorization, keys_spec, "uploads")
    except ViewerNotConfigured:
        raise UploadsNotConfigured(
            "SYMBOL_UPLOAD_KEYS is malformed: name:hash pairs separated by commas"
        ) from None
    except Unauthorized as error:
        raise Unauthorized(str(error).replace("user name or password", "upload key")) from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m chalicelib.auth", description="Viewer login helpers."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("hash", help="print a VIEWER_USERS hash of a password")
    make.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin"
    )
    make.add_argument("--iterations", type=int, default=DEFAULT_ITERATIONS)
    args = parser.parse_args(argv)
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise SystemExit("passwords differ")
    if not password:
        raise SystemExit("empty password")
    print(hash_password(password, args.iterations))


if __name__ == "__main__":
    main()
