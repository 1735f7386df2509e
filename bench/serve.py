"""The local-run servers in their own process, for benchmarks: `python -m bench.serve`.

Uses the S3 endpoint from AWS_ENDPOINT_URL_S3 and the usual settings. On SIGTERM it
prints one JSON line: the S3 requests the store made, by operation, and peak RSS.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path

from chalicelib import config, localrun


def peak_rss_mb() -> float:
    """VmHWM of this process; unlike ru_maxrss it does not inherit the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    import app as application

    cfg = config.load()
    servers = localrun.serve(application.app, cfg)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    print("ready", flush=True)
    done.wait()
    for server in servers:
        server.close()
    print(json.dumps({
        "s3_requests": dict(application.reports().requests),
        "peak_rss_mb": peak_rss_mb(),
    }), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
