"""`python -m chalicelib.localrun` as a real process: graceful stop, rolling restart, an
embedded S3 that belongs to its run, and the environment it gives the app."""

from __future__ import annotations

import hashlib
import http.server
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from chalicelib import localrun
from chalicelib.seaweed import SeaweedServer, free_port
from chalicelib.serving import DrainingServer, listening_sockets
from tests.conftest import BUCKET, Backend
from tests.test_ingest_live import dump_of, stored_reports
from tests.testlib import forms

ROOT = Path(__file__).resolve().parents[1]


def alive(pid: int) -> bool:
    """Running: present and not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


class LocalRun:
    """One `python -m chalicelib.localrun` process; its output kept in `lines`."""

    def __init__(self, env: dict[str, str], args: list[str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "chalicelib.localrun", *args], cwd=ROOT, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,  # its own process group, as under a terminal or make
        )
        self.lines: list[str] = []
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("Ctrl-C stops"):
                self.ready.set()

    def wait_ready(self, timeout: float = 60) -> LocalRun:
        deadline = time.monotonic() + timeout
        while not self.ready.wait(0.1):
            assert self.process.poll() is None, self.output()
            assert time.monotonic() < deadline, self.output()
        return self

    def weed_pid(self) -> int:
        return int(re.search(r"weed pid (\d+)", self.output()).group(1))

    def output(self) -> str:
        return "\n".join(self.lines)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def localrun_env():
    """localrun_env(**settings) -> the environment of a run, on this test's free ports."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    ports = {"SUBMIT_SERVER_PORT": str(free_port()), "REPORTS_SERVER_PORT": str(free_port()),
             "LOCAL_S3_PORT": str(free_port())}

    def make(**settings: str) -> dict[str, str]:
        return {**base, **ports, "REPORTS_BUCKET": BUCKET, "PROCESSING_WORKERS": "0",
                "STORAGE_RETRY_SECONDS": "5", **settings}

    return make


@pytest.fixture
def run_localrun(localrun_env):
    """run_localrun(args, **settings) -> LocalRun; runs and their weed killed after."""
    runs: list[LocalRun] = []

    def start(args: list[str], **settings: str) -> LocalRun:
        run = LocalRun(localrun_env(**settings), args)
        runs.append(run)
        return run

    yield start
    for run in runs:
        weed = run.weed_pid() if "weed pid" in run.output() else None
        run.stop()
        if weed is not None and not wait_gone(weed, 5):
            os.kill(weed, signal.SIGKILL)


def upload(url: str, dump: bytes, pause: float, on_first_chunk=None) -> requests.Response:
    """A Crashpad-like gzip form sent chunked, `pause` seconds between 64 KB chunks."""
    body, headers, query = forms.crashpad_form({"prod": "Jami", "ver": "1"}, dump=dump)

    def chunks():
        for n, chunk in enumerate(forms.chunked(body)):
            yield chunk
            if n == 0 and on_first_chunk is not None:
                on_first_chunk()
            time.sleep(pause)

    return requests.post(url, data=chunks(), headers=headers, params=query, timeout=90)


def read_back(data_dir: Path) -> Backend:
    """The run's bucket, read through a fresh SeaweedFS on the run's data directory."""
    server = SeaweedServer(data_dir, BUCKET).start()
    backend = Backend("seaweedfs", server.client(), BUCKET, server.endpoint)
    backend.prefix = ""
    backend.server = server
    return backend


@pytest.mark.seaweedfs
@pytest.mark.slow
def test_sigterm_during_a_burst_answers_and_stores_every_upload(
    run_localrun, localrun_env, tmp_path
) -> None:
    run = run_localrun(["--data", str(tmp_path / "data")]).wait_ready()
    weed = run.weed_pid()
    url = f"http://127.0.0.1:{localrun_env()['SUBMIT_SERVER_PORT']}/submit"
    dumps = [forms.fake_dump(2 * 1024 * 1024, seed=n) for n in range(16)]
    sending = threading.Semaphore(0)
    results: list[tuple[int, requests.Response | Exception]] = []

    def client(n: int) -> None:
        try:
            results.append((n, upload(url, dumps[n], 0.05, sending.release)))
        except Exception as error:
            results.append((n, error))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for _ in range(16):
        assert sending.acquire(timeout=30)
    os.killpg(run.process.pid, signal.SIGTERM)  # what systemd or a terminal sends the group
    run.process.send_signal(signal.SIGTERM)  # and make passes on to its child
    signalled = time.monotonic()
    for thread in threads:
        thread.join(90)
    assert run.process.wait(60) == 0, run.output()
    assert time.monotonic() - signalled > 1.0  # the uploads really were under way
    assert not alive(weed)
    answers = {n: r for n, r in results}
    assert sorted(answers) == list(range(16))
    assert {n: getattr(r, "status_code", repr(r)) for n, r in answers.items()} == {
        n: 200 for n in range(16)
    }
    backend = read_back(tmp_path / "data" / "s3")
    try:
        reports = stored_reports(backend)
        assert sorted(reports) == sorted(r.text for r in answers.values())
        for n, response in answers.items():
            assert dump_of(backend, reports[response.text]) == dumps[n]
    finally:
        backend.server.stop()
    assert "drained in" in run.output() and "embedded S3 stopped" in run.output()


@pytest.mark.seaweedfs
@pytest.mark.slow
def test_rolling_restart_refuses_and_cuts_nothing(run_localrun, localrun_env, tmp_path) -> None:
    s3 = SeaweedServer(tmp_path / "s3", BUCKET).start()
    stop = threading.Event()
    try:
        settings = {"AWS_ENDPOINT_URL_S3": s3.endpoint, "AWS_ACCESS_KEY_ID": "local",
                    "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": "us-east-1"}
        url = f"http://127.0.0.1:{localrun_env()['SUBMIT_SERVER_PORT']}/submit"
        old = run_localrun(["--external-s3"], **settings).wait_ready()
        results: list[tuple[str, str, str, float, float]] = []  # status, id, sha, start, end

        def client(n: int) -> None:
            time.sleep(n * 0.3)  # staggered: some upload is always under way
            i = 0
            while not stop.is_set():
                dump = forms.fake_dump(300_000, seed=n * 10_000 + i)
                started = time.monotonic()
                try:
                    response = upload(url, dump, 0.5)  # about 2.5 s an upload
                    outcome, text = str(response.status_code), response.text
                except Exception as error:
                    outcome, text = repr(error), ""
                results.append((outcome, text, hashlib.sha256(dump).hexdigest(), started,
                                time.monotonic()))
                i += 1

        threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(8)]
        for thread in threads:
            thread.start()
        time.sleep(3.0)
        new = run_localrun(["--external-s3"], **settings).wait_ready()
        new_ready = time.monotonic()
        old.process.send_signal(signal.SIGTERM)
        assert old.process.wait(60) == 0, old.output()
        old_gone = time.monotonic()
        receiving, running = map(int, re.search(
            r"draining: (\d+) being received, (\d+) being answered", old.output()).groups())
        assert receiving + running >= 1  # the old run had uploads under way at its SIGTERM
        time.sleep(3.0)
        stop.set()
        for thread in threads:
            thread.join(60)
        new.process.send_signal(signal.SIGTERM)
        assert new.process.wait(60) == 0, new.output()
        assert {outcome for outcome, *_ in results} == {"200"}, [
            r for r in results if r[0] != "200"
        ][:3]
        assert any(end < new_ready for *_, end in results)  # served by the old run alone
        assert any(start > old_gone for *_, start, _ in results)  # by the new one alone
        backend = Backend("seaweedfs", s3.client(), BUCKET, s3.endpoint)
        backend.prefix = ""
        reports = stored_reports(backend)
        assert {reports[i]["dump"]["sha256"] for _, i, *_ in results} == {
            digest for _, _, digest, *_ in results
        }
        assert len(reports) == len(results)
    finally:
        stop.set()
        s3.stop()


class AnswerEverything(http.server.BaseHTTPRequestHandler):
    def _ok(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _ok

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.seaweedfs
def test_a_taken_s3_port_is_refused_naming_it(run_localrun, tmp_path) -> None:
    impostor = http.server.ThreadingHTTPServer(("127.0.0.1", 0), AnswerEverything)
    threading.Thread(target=impostor.serve_forever, daemon=True).start()
    port = impostor.server_address[1]
    try:
        assert requests.head(f"http://127.0.0.1:{port}/crash-reports", timeout=5).ok
        run = run_localrun(["--data", str(tmp_path / "data")], LOCAL_S3_PORT=str(port))
        assert run.process.wait(60) != 0
        time.sleep(0.2)
        assert f"S3 port {port} on 127.0.0.1 is taken" in run.output()
        assert "LOCAL_S3_PORT" in run.output()
        assert not (tmp_path / "data" / "s3" / "weed.log").exists()  # weed never started
    finally:
        impostor.shutdown()
        impostor.server_close()


@pytest.mark.seaweedfs
def test_sigkill_of_the_run_takes_its_weed_along(run_localrun, tmp_path) -> None:
    run = run_localrun(["--data", str(tmp_path / "data")]).wait_ready()
    weed = run.weed_pid()
    assert alive(weed)
    run.process.kill()
    run.process.wait(10)
    assert wait_gone(weed, 15)


@pytest.mark.seaweedfs
@pytest.mark.slow
def test_a_second_signal_cuts_the_drain_and_still_stops_the_s3(
    run_localrun, localrun_env, tmp_path
) -> None:
    run = run_localrun(["--data", str(tmp_path / "data")]).wait_ready()
    weed = run.weed_pid()
    url = f"http://127.0.0.1:{localrun_env()['SUBMIT_SERVER_PORT']}/submit"
    sending = threading.Event()
    outcome: list[object] = []

    def client() -> None:
        try:
            outcome.append(upload(url, forms.fake_dump(2_000_000), 1.0, sending.set))
        except Exception as error:
            outcome.append(error)

    thread = threading.Thread(target=client)
    thread.start()
    assert sending.wait(30)
    run.process.send_signal(signal.SIGTERM)
    run.process.send_signal(signal.SIGTERM)  # the same request delivered twice (make)
    time.sleep(1.5)
    assert run.process.poll() is None  # still draining the upload
    run.process.send_signal(signal.SIGINT)
    second = time.monotonic()
    assert run.process.wait(20) == 0
    assert time.monotonic() - second < 15  # not the 40 s drain bound
    assert not alive(weed)
    assert "stopping now: cutting 1 upload(s) being received" in run.output()
    thread.join(60)
    assert isinstance(outcome[0], requests.ConnectionError)


def test_external_s3_keeps_the_credential_chain() -> None:
    for environ in (
        {"AWS_PROFILE": "prod"},
        {"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/x"},
        {},
        {"AWS_ACCESS_KEY_ID": "AKIAREAL", "AWS_SECRET_ACCESS_KEY": "real",
         "AWS_SESSION_TOKEN": "token", "AWS_ENDPOINT_URL_S3": "https://s3.example"},
    ):
        prepared = dict(environ)
        localrun.prepare_environment(prepared, None)
        assert prepared == environ


def test_embedded_s3_gets_the_dummy_pair_and_its_endpoint() -> None:
    prepared = {"AWS_PROFILE": "prod", "AWS_ACCESS_KEY_ID": "AKIAREAL",
                "AWS_SESSION_TOKEN": "token", "AWS_DEFAULT_REGION": "eu-west-3", "HOME": "/h"}
    localrun.prepare_environment(prepared, "http://127.0.0.1:8333")
    assert prepared == {
        "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:8333", "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": "eu-west-3", "HOME": "/h",
    }


def test_stop_requests_tell_a_repeat_from_a_second_request() -> None:
    stops = localrun.StopRequests()
    stops.times = [100.0, 100.2]  # SIGTERM to the group: make passes it on
    assert not stops.again()
    stops.times.append(101.5)
    assert stops.again()


def test_service_manager_is_told_ready_on_its_socket(tmp_path) -> None:
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as manager:
        manager.bind(path)
        manager.settimeout(5)
        assert localrun.notify_service_manager("READY=1", {"NOTIFY_SOCKET": path})
        assert manager.recv(100) == b"READY=1"
    assert not localrun.notify_service_manager("READY=1", {})


def test_drain_waits_without_spinning_while_one_server_is_still_busy() -> None:
    """The first server is done at once; the second answers a request for 2 s more."""

    def quick(environ, start_response):
        start_response("200 OK", [("Content-Length", "5")])
        return [b"quick"]

    def slow(environ, start_response):
        time.sleep(2)
        start_response("200 OK", [("Content-Length", "4")])
        return [b"slow"]

    servers = [DrainingServer(app, listening_sockets("127.0.0.1", 0), threads=2).start()
               for app in (quick, slow)]
    try:
        with socket.create_connection(("127.0.0.1", servers[1].port), timeout=10) as client:
            client.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            time.sleep(0.3)
            cpu, started = time.process_time(), time.monotonic()
            assert localrun.drain(servers, 10)
            cpu, wall = time.process_time() - cpu, time.monotonic() - started
            answer = client.recv(1000)
        assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"\r\n\r\nslow")
        assert 1.2 < wall < 5
        assert cpu < 0.5, f"{cpu:.2f} s of CPU in a {wall:.2f} s drain"
    finally:
        for server in servers:
            server.close()


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-5", "0", "-0.0", "soon", "1e999"])
def test_drain_seconds_must_be_finite_and_above_zero(value, capsys) -> None:
    with pytest.raises(SystemExit) as caught:
        localrun.parse_args([f"--drain-seconds={value}"])
    assert caught.value.code == 2
    error = capsys.readouterr().err.splitlines()[-1]
    assert "error: argument --drain-seconds: " in error and repr(value) in error


@pytest.mark.parametrize("value, seconds", [("0.5", 0.5), ("40", 40.0), ("1e3", 1000.0)])
def test_drain_seconds_accepts_a_positive_duration(value, seconds) -> None:
    assert localrun.parse_args(["--drain-seconds", value]).drain_seconds == seconds
    assert localrun.parse_args([]).drain_seconds is None
