"""The local-run servers in a subprocess (`python -m bench.serve`), for what must be
measured on the server alone: its memory (VmRSS, VmHWM from /proc), or its answers to
raw sockets. Used by the memory and conformance tests and by bench/hostile_parts.py.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import hashlib
import os
import random
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import requests

from chalicelib.seaweed import free_port
from chalicelib.store import ReportStore
from chalicelib.submission import FilePart, Submission
from tests.testlib import forms

ROOT = Path(__file__).resolve().parents[2]


class ServedApp:
    """app.py's submit and viewer servers in a child process, on free loopback ports."""

    def __init__(self, endpoint: str, bucket: str, prefix: str, **settings: str) -> None:
        self.submit_port, self.viewer_port = free_port(), free_port()
        self.log = tempfile.TemporaryFile("w+")
        env = {
            **os.environ, "AWS_ENDPOINT_URL_S3": endpoint, "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": "us-east-1",
            "REPORTS_BUCKET": bucket, "REPORTS_PREFIX": prefix,
            "SUBMIT_SERVER_PORT": str(self.submit_port),
            "REPORTS_SERVER_PORT": str(self.viewer_port), "PROCESSING_WORKERS": "0",
            **settings,
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.serve"], env=env, cwd=ROOT,
            stdout=subprocess.PIPE, stderr=self.log, text=True,
        )
        line = self.process.stdout.readline().strip()
        if line != "ready":
            self.process.kill()
            raise RuntimeError(f"server did not start: {line} {self.output()}")
        self.submit_url = f"http://127.0.0.1:{self.submit_port}/submit"
        self.viewer_url = f"http://127.0.0.1:{self.viewer_port}"

    def memory_mib(self, field: str) -> float:
        """A /proc/<pid>/status figure of the server in MiB: VmRSS now, VmHWM its peak."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        raise KeyError(field)

    def output(self) -> str:
        """What the server wrote to stderr (its log), for failure messages."""
        self.log.seek(0)
        return self.log.read()[-4000:]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.communicate()
        self.log.close()

    def __enter__(self) -> ServedApp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


MIB = 1024 * 1024


def hostile_form(parts: int = 60, part_bytes: int = MIB) -> tuple[bytes, dict, dict]:
    """A gzip upload of `parts` file parts of `part_bytes` zeros each (the dump among
    them): about 70 KB on the wire for 60 MiB of parts."""
    dump = b"MDMP" + bytes(part_bytes - 4)
    attachments = {f"part{n:03d}.bin": bytes(part_bytes) for n in range(parts - 1)}
    return forms.crashpad_form({"platform": "linux"}, dump=dump, attachments=attachments)


def post_all(url: str, uploads: list[tuple[bytes, dict, dict]]) -> list[tuple[int, str]]:
    """POST every upload at once, chunked as Crashpad sends; (status, body) of each."""

    def post(form: tuple[bytes, dict, dict]) -> tuple[int, str]:
        body, headers, query = form
        reply = requests.post(url, data=forms.chunked(body), headers=headers, params=query,
                              timeout=300)
        return reply.status_code, reply.text

    with concurrent.futures.ThreadPoolExecutor(len(uploads)) as pool:
        return list(pool.map(post, uploads))


def store_big_dump(store: ReportStore, size: int) -> tuple[str, str]:
    """A report whose dump is `size` seeded random bytes, stored without the server;
    (report id, sha256)."""
    rng, digest = random.Random(7), hashlib.sha256()
    content = tempfile.TemporaryFile()
    written = 0
    while written < size:
        block = (b"MDMP" if not written else b"") + rng.randbytes(min(8 * MIB, size - written))
        block = block[: size - written]
        content.write(block)
        digest.update(block)
        written += len(block)
    content.seek(0)
    guid = str(uuid.uuid4())
    dump = FilePart("upload_file_minidump", "big.dmp", content, size, digest.hexdigest())
    sent = Submission(annotations={"platform": "linux", "guid": guid}, dump=dump,
                      attachments=[], received_at=datetime.datetime.now(datetime.timezone.utc),
                      crashpad_uuid=str(uuid.uuid4()), client_guid=guid)
    with sent:
        return store.put(sent), digest.hexdigest()
