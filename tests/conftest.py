"""Shared fixtures: S3 backends (moto and a real SeaweedFS), stores, servers."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from chalicelib import config
from chalicelib.seaweed import SeaweedServer, free_port
from chalicelib.store import ReportStore

BUCKET = "crash-reports"


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    """One real SeaweedFS for the session; tests isolate themselves by key prefix."""
    server = SeaweedServer(tmp_path_factory.mktemp("seaweed"), BUCKET).start()
    yield server
    server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


class Backend:
    """An S3 endpoint with a bucket ready to use, and a fresh key prefix per test."""

    def __init__(self, name: str, client: object, bucket: str, endpoint: str | None) -> None:
        self.name = name
        self.client = client
        self.bucket = bucket
        self.endpoint = endpoint
        self.prefix = f"t-{uuid.uuid4().hex[:12]}/"

    def store(self, retry_seconds: float = 2.0, prefix: str | None = None) -> ReportStore:
        return ReportStore(
            self.client, self.bucket, self.prefix if prefix is None else prefix, retry_seconds
        )

    def keys(self, prefix: str | None = None) -> list[str]:
        prefix = self.prefix if prefix is None else prefix
        paginator = self.client.get_paginator("list_objects_v2")
        return [
            item["Key"]
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix)
            for item in page.get("Contents", [])
        ]

    def read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def env(self) -> dict[str, str]:
        """Settings that make app.py use this backend."""
        env = {"REPORTS_BUCKET": self.bucket, "REPORTS_PREFIX": self.prefix,
               "STORAGE_RETRY_SECONDS": "2"}
        if self.endpoint:
            env["AWS_ENDPOINT_URL_S3"] = self.endpoint
        return env


@pytest.fixture(params=["moto", "seaweedfs"])
def backend(request: pytest.FixtureRequest, aws_env: None) -> Iterator[Backend]:
    """Each storage test runs twice: AWS semantics (moto) and a real SeaweedFS."""
    if request.param == "moto":
        with mock_aws():
            client = boto3.client("s3", region_name="us-east-1")
            client.create_bucket(Bucket=BUCKET)
            yield Backend("moto", client, BUCKET, None)
    else:
        server = request.getfixturevalue("seaweed")
        yield Backend("seaweedfs", server.client(), BUCKET, server.endpoint)


@pytest.fixture
def moto_backend(aws_env: None) -> Iterator[Backend]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield Backend("moto", client, BUCKET, None)


@pytest.fixture
def seaweed_backend(seaweed: SeaweedServer, aws_env: None) -> Backend:
    return Backend("seaweedfs", seaweed.client(), BUCKET, seaweed.endpoint)


@pytest.fixture
def app_env(monkeypatch: pytest.MonkeyPatch):
    """Point app.py at a backend: app_env(backend, **extra_settings); caches reset."""
    import app as application

    def configure(backend: Backend, **extra: str) -> object:
        for name, value in {**backend.env(), **extra}.items():
            monkeypatch.setenv(name, value)
        application.settings.cache_clear()
        application.reports.cache_clear()
        application.crashes.cache_clear()
        application.symbols.cache_clear()
        # Read now: chalice.test.Client later overlays .chalice/config.json on os.environ.
        application.settings()
        return application

    yield configure
    application.settings.cache_clear()
    application.reports.cache_clear()
    application.crashes.cache_clear()
    application.symbols.cache_clear()
    application.report_stored.clear()
    application.symbols_stored.clear()


class LiveServers:
    """app.py behind the real local-run HTTP servers, on free loopback ports."""

    def __init__(self, application: object, cfg: config.Config) -> None:
        from chalicelib import localrun

        self.cfg = cfg
        self.servers = localrun.serve(application.app, cfg)
        self.submit_url = f"http://127.0.0.1:{cfg.submit_port}/submit"
        self.viewer_url = f"http://127.0.0.1:{cfg.reports_port}"

    def close(self) -> None:
        for server in self.servers:
            server.close()


@pytest.fixture
def live_servers(app_env, monkeypatch: pytest.MonkeyPatch):
    """live_servers(backend, **settings) -> LiveServers; stopped after the test."""
    started: list[LiveServers] = []

    def start(backend: Backend, **extra: str) -> LiveServers:
        ports = {"SUBMIT_SERVER_PORT": str(free_port()), "REPORTS_SERVER_PORT": str(free_port())}
        application = app_env(backend, **ports, **extra)
        servers = LiveServers(application, application.settings())
        started.append(servers)
        return servers

    yield start
    for servers in started:
        servers.close()


def fixtures_dir() -> Path:
    return Path(__file__).resolve().parent / "fixtures" / "minidumps"


