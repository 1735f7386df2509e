"""Viewer logins: hashes, the Basic check, its cache, and that no viewer route is public."""

from __future__ import annotations

import base64
import concurrent.futures
import hashlib
import json
import re
import subprocess
import sys
import threading
import time

import pytest
import requests
from bs4 import BeautifulSoup
from chalice.test import Client

from chalicelib import auth

PASSWORD = "correct horse"
FAKE_ID = "0123456789abcdef"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def users(**passwords: str) -> str:
    return ",".join(f"{u}:{auth.hash_password(p, 1000)}" for u, p in passwords.items())


@pytest.fixture(autouse=True)
def empty_cache():
    auth.verified.clear()
    auth.failed.clear()
    yield
    auth.verified.clear()
    auth.failed.clear()


def test_hash_round_trip_and_format() -> None:
    encoded = auth.hash_password(PASSWORD, 1000)
    algorithm, iterations, salt, digest = encoded.split("$")
    assert (algorithm, iterations) == ("pbkdf2_sha256", "1000")
    assert len(base64.b64decode(salt)) == 16
    expected = hashlib.pbkdf2_hmac("sha256", PASSWORD.encode(), base64.b64decode(salt), 1000)
    assert base64.b64decode(digest) == expected
    assert auth.verify_password(PASSWORD, encoded)
    assert not auth.verify_password(PASSWORD + "!", encoded)
    assert encoded != auth.hash_password(PASSWORD, 1000), "each hash gets a fresh salt"


def test_the_default_is_a_slow_hash() -> None:
    assert auth.DEFAULT_ITERATIONS >= 600_000


@pytest.mark.parametrize("spec, reason", [
    ("", "not configured"),
    ("   ,  ", "not configured"),
    ("admin", "misconfigured"),
    (":pbkdf2_sha256$1$AA==$AA==", "misconfigured"),
    ("admin:plaintext", "not a pbkdf2_sha256$iterations$salt$hash"),
    ("admin:md5$1$AA==$AA==", "unknown algorithm"),
    ("admin:pbkdf2_sha256$x$AA==$AA==", "positive number"),
    ("admin:pbkdf2_sha256$0$AA==$AA==", "positive number"),
    ("admin:pbkdf2_sha256$10$!!$AA==", "base64"),
])
def test_unusable_configuration_refuses_to_serve(spec: str, reason: str) -> None:
    with pytest.raises(auth.ViewerNotConfigured, match=re.escape(reason)) as raised:
        auth.require_viewer(basic("admin", PASSWORD), spec)
    assert "set VIEWER_USERS" in str(raised.value)
    assert "admin" not in str(raised.value)  # shown before any login: no user names


def test_several_users_each_with_their_own_password() -> None:
    spec = users(alice="a-pass", bob="b-pass")
    assert auth.require_viewer(basic("alice", "a-pass"), spec) == "alice"
    assert auth.require_viewer(basic("bob", "b-pass"), spec) == "bob"
    with pytest.raises(auth.Unauthorized):
        auth.require_viewer(basic("alice", "b-pass"), spec)


@pytest.mark.parametrize("header", [
    None,
    "",
    basic("admin", "wrong"),
    basic("nobody", PASSWORD),
    basic("admin", PASSWORD).replace("Basic", "Bearer"),
    "Basic !!!not-base64!!!",
    "Basic " + base64.b64encode(b"no-colon").decode(),
    "Basic " + base64.b64encode(b"admin:\xff\xfe").decode(),
])
def test_missing_or_wrong_credentials_are_unauthorized(header: str | None) -> None:
    with pytest.raises(auth.Unauthorized) as raised:
        auth.require_viewer(header, users(admin=PASSWORD))
    assert raised.value.headers == {
        "WWW-Authenticate": 'Basic realm="crash reports", charset="UTF-8"'}


def test_passwords_may_hold_colons_and_non_ascii() -> None:
    password = "a:b:ç€"
    assert auth.require_viewer(basic("admin", password), users(admin=password)) == "admin"


def test_verified_headers_are_cached_so_pbkdf2_runs_once(monkeypatch) -> None:
    spec, rotated = users(admin=PASSWORD), users(admin="rotated")
    now_right = users(admin="nope")
    calls = []
    real = hashlib.pbkdf2_hmac
    monkeypatch.setattr(auth.hashlib, "pbkdf2_hmac",
                        lambda *args: calls.append(args[0]) or real(*args))
    header = basic("admin", PASSWORD)
    for _ in range(5):
        assert auth.require_viewer(header, spec) == "admin"
    assert len(calls) == 1
    # A repeated wrong header fails from the cache; another wrong password pays the hash.
    for _ in range(3):
        with pytest.raises(auth.Unauthorized, match="wrong user name or password"):
            auth.require_viewer(basic("admin", "nope"), spec)
    assert len(calls) == 2
    with pytest.raises(auth.Unauthorized):
        auth.require_viewer(basic("admin", "nope2"), spec)
    assert len(calls) == 3
    # Another configuration (a changed password) misses both caches.
    with pytest.raises(auth.Unauthorized):
        auth.require_viewer(header, rotated)
    assert len(calls) == 4
    assert auth.require_viewer(basic("admin", "nope"), now_right) == "admin"
    assert len(calls) == 5
    # No password is kept in the clear.
    assert all(PASSWORD.encode() not in key for key in auth.verified.entries)
    assert all(b"nope" not in key for key in auth.failed.until)


def test_the_cache_is_bounded() -> None:
    spec = users(admin=PASSWORD)
    for number in range(auth._CACHE_SIZE + 40):
        auth.verified.add(auth.verified.key(spec, f"header {number}"), "admin")
    assert len(auth.verified.entries) == auth._CACHE_SIZE


def test_failures_are_cached_briefly_and_boundedly(monkeypatch) -> None:
    spec, now = users(admin=PASSWORD), [1000.0]
    monkeypatch.setattr(auth.time, "monotonic", lambda: now[0])
    calls = []
    real = hashlib.pbkdf2_hmac
    monkeypatch.setattr(auth.hashlib, "pbkdf2_hmac",
                        lambda *args: calls.append(1) or real(*args))
    for _ in range(2):
        with pytest.raises(auth.Unauthorized):
            auth.require_viewer(basic("admin", "wrong"), spec)
    assert len(calls) == 1
    now[0] += auth.FAILURE_SECONDS + 1
    with pytest.raises(auth.Unauthorized):
        auth.require_viewer(basic("admin", "wrong"), spec)
    assert len(calls) == 2
    for number in range(auth.FAILURE_CACHE_SIZE + 10):
        auth.failed.add(auth.verified.key(spec, f"header {number}"))
    assert len(auth.failed.until) == auth.FAILURE_CACHE_SIZE
    assert auth.verified.key(spec, "header 9") not in auth.failed
    assert auth.verified.key(spec, "header 10") in auth.failed


def slow_hashing(monkeypatch, seconds: float) -> dict[str, int]:
    """pbkdf2_hmac made slow, counting how many run at once (and the most ever)."""
    seen = {"now": 0, "most": 0, "calls": 0}
    lock = threading.Lock()
    real = hashlib.pbkdf2_hmac

    def counting(*args):
        with lock:
            seen["now"] += 1
            seen["calls"] += 1
            seen["most"] = max(seen["most"], seen["now"])
        time.sleep(seconds)
        with lock:
            seen["now"] -= 1
        return real(*args)

    monkeypatch.setattr(auth.hashlib, "pbkdf2_hmac", counting)
    return seen


def test_concurrent_checks_hash_one_at_a_time_and_duplicates_wait_for_the_first(
    monkeypatch,
) -> None:
    spec = users(admin=PASSWORD)
    seen = slow_hashing(monkeypatch, 0.05)
    headers = [basic("admin", f"wrong {n % 4}") for n in range(16)]

    def check(header: str) -> str:
        try:
            return auth.require_viewer(header, spec)
        except auth.Unauthorized as error:
            return str(error)

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(check, headers))
    assert answers == ["wrong user name or password"] * 16
    assert seen["most"] == 1 and seen["calls"] == 4


def test_waiting_for_a_check_is_bounded(monkeypatch, app_env, moto_backend) -> None:
    spec = users(admin=PASSWORD)
    monkeypatch.setattr(auth, "HASH_WAIT_SECONDS", 0.05)
    assert auth._hashing["viewer"].acquire()
    try:
        started = time.monotonic()
        with pytest.raises(auth.LoginsBusy, match="retry in a few seconds"):
            auth.require_viewer(basic("admin", PASSWORD), spec)
        assert time.monotonic() - started < 1
        # Upload keys hash in their own slot: a flood of wrong viewer logins does not stop them.
        assert auth.require_uploader(basic("ci", "key"), None, users(ci="key")) == "ci"
        application = app_env(moto_backend, VIEWER_USERS=spec)
        with Client(application.app) as client:
            response = client.http.get("/reports", headers={"Authorization": basic("admin", "x")})
        assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    finally:
        auth._hashing["viewer"].release()
    assert auth._hashing["uploads"].acquire()
    try:
        with pytest.raises(auth.LoginsBusy):
            auth.require_uploader(basic("ci", "other"), None, users(ci="key"))
    finally:
        auth._hashing["uploads"].release()


def test_command_line_prints_a_hash_that_verifies() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "chalicelib.auth", "hash", "--password-stdin",
         "--iterations", "2000"],
        input=PASSWORD + "\n", capture_output=True, text=True, check=True, timeout=60,
    )
    encoded = done.stdout.strip()
    assert encoded.startswith("pbkdf2_sha256$2000$")
    assert auth.verify_password(PASSWORD, encoded)
    assert PASSWORD not in done.stdout


# -- every viewer route is private ------------------------------------------------------


def viewer_paths() -> list[str]:
    """Every route but the public port's, path parameters filled in: new routes join
    automatically."""
    import app as application
    from chalicelib.localrun import is_public

    paths = []
    for path in sorted(application.app.routes):
        if is_public(path):
            continue
        assert set(application.app.routes[path]) == {"GET"}, path
        paths.append(re.sub(r"\{(\w+)\}",
                            lambda m: FAKE_ID if m[1] == "report_id" else "0", path))
    return paths


def test_the_viewer_routes_are_the_expected_ones() -> None:
    assert viewer_paths() == [
        "/", "/api/crashes", "/api/reports", f"/api/reports/{FAKE_ID}", "/api/signatures/0",
        "/api/symbols", "/reports", f"/reports/{FAKE_ID}", f"/reports/{FAKE_ID}/attachments/0",
        f"/reports/{FAKE_ID}/bundle", f"/reports/{FAKE_ID}/crash.json",
        f"/reports/{FAKE_ID}/dump", "/signatures/0", "/symbols", "/symbols/0/0/0",
    ]


def upload_routes() -> list[tuple[str, str]]:
    import app as application
    from chalicelib.localrun import is_public

    return [(method, re.sub(r"\{(\w+)\}", "x", path))
            for path in sorted(application.app.routes) if is_public(path) and path != "/submit"
            for method in application.app.routes[path]]


def test_the_public_symbol_routes_are_the_expected_ones() -> None:
    assert upload_routes() == [
        ("POST", "/symbols/upload"), ("GET", "/symbols/v1/symbols/x/x"),
        ("POST", "/symbols/v1/uploads/x"), ("POST", "/symbols/v1/x"),
    ]


@pytest.mark.parametrize("method, path", upload_routes())
def test_every_symbol_upload_route_needs_a_key(app_env, moto_backend, method, path) -> None:
    keys = users(ci="right-key")
    application = app_env(moto_backend, SYMBOL_UPLOAD_KEYS=keys)
    with Client(application.app) as client:
        for query, headers in [
            ("", {}), ("?key=ci:wrong", {}), ("?key=other:right-key", {}),
            ("", {"Authorization": basic("ci", "wrong")}),
        ]:
            response = client.http.request(method, path + query, headers=headers, body=b"")
            assert response.status_code == 401, (path, query, response.body)
            assert response.body.decode().strip() in (
                "login required", "wrong upload key", "malformed credentials")
    application = app_env(moto_backend, SYMBOL_UPLOAD_KEYS="")
    with Client(application.app) as client:
        response = client.http.request(method, path + "?key=ci:right-key", body=b"")
        assert response.status_code == 503 and b"SYMBOL_UPLOAD_KEYS" in response.body


@pytest.fixture
def private_client(app_env, moto_backend):
    application = app_env(moto_backend, VIEWER_USERS=users(admin=PASSWORD))
    with Client(application.app) as client:
        yield client


@pytest.mark.parametrize("path", viewer_paths())
@pytest.mark.parametrize("credentials", [
    None, basic("admin", "wrong"), basic("intruder", PASSWORD), "Bearer abc"])
def test_every_viewer_route_needs_a_login(private_client, path: str, credentials) -> None:
    headers = {"Accept": "*/*"}
    if credentials:
        headers["Authorization"] = credentials
    response = private_client.http.get(path + "?before=zz", headers=headers)
    assert response.status_code == 401, (path, response.body[:200])
    assert response.headers["WWW-Authenticate"] == 'Basic realm="crash reports", charset="UTF-8"'
    assert FAKE_ID.encode() not in response.body


@pytest.mark.parametrize("path", viewer_paths())
def test_with_the_login_the_route_answers(private_client, path: str) -> None:
    response = private_client.http.get(
        path, headers={"Accept": "*/*", "Authorization": basic("admin", PASSWORD)})
    # Nothing is stored: the lists answer, everything about one report is not found.
    lists = ("/", "/api/crashes", "/reports", "/api/reports", "/symbols", "/api/symbols")
    assert response.status_code == (200 if path in lists else 404), path
    assert "WWW-Authenticate" not in response.headers


def one_line_reason(response) -> str:
    """The error's reason, whichever form the route answers in (page, JSON or text)."""
    kind = response.headers["Content-Type"]
    if kind.startswith("text/html"):
        reason = BeautifulSoup(response.body, "html.parser").select_one("p.message").text
    elif kind.startswith("application/json"):
        reason = json.loads(response.body)["error"]
    else:
        reason = response.body.decode()
    assert "\n" not in reason.strip()
    return reason


@pytest.mark.parametrize("spec", ["", "admin:not-a-hash"])
def test_without_logins_configured_every_viewer_route_refuses(
    app_env, moto_backend, spec: str
) -> None:
    application = app_env(moto_backend, VIEWER_USERS=spec)
    with Client(application.app) as client:
        for path in viewer_paths():
            response = client.http.get(
                path, headers={"Accept": "*/*", "Authorization": basic("admin", PASSWORD)})
            assert response.status_code == 503, path
            assert "set VIEWER_USERS" in one_line_reason(response)
        # Crashpad can still submit.
        from tests.testlib import forms

        body, headers, _ = forms.crashpad_form()
        assert client.http.post("/submit", body=body, headers=headers).status_code == 200


@pytest.mark.seaweedfs
def test_over_real_http_the_browser_gets_the_login_challenge(live_servers, seaweed_backend):
    servers = live_servers(seaweed_backend, VIEWER_USERS=users(admin=PASSWORD))
    for path in viewer_paths():
        response = requests.get(servers.viewer_url + path, timeout=10)
        assert response.status_code == 401, path
        assert response.headers["WWW-Authenticate"].startswith('Basic realm="crash reports"')
    ok = requests.get(servers.viewer_url + "/reports", auth=("admin", PASSWORD), timeout=10)
    assert ok.status_code == 200 and "No crash reports yet" in ok.text
