"""bench.symbols' S3 parts: the upload routes on a local server, and one crash processed
with its symbols read from the bucket. Run through `python -m bench.symbols`.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.symbols import (
    BUILD_ID,
    DEBUG_FILE,
    DEBUG_ID,
    MODULE_BASE,
    _child,
    address_of,
    crash_picks,
    name_of,
    status_mb,
)

BUCKET = "bench-symbols"
UPLOADER, KEY = "bench", "bench-key"
STACK_TOP = 0x7FFD00000000  # rbp of frame 0
ROOT = Path(__file__).resolve().parents[1]


# -- upload: the HTTP routes on a local server -----------------------------------------


def serve_main() -> None:
    """The local-run servers; on SIGTERM, the symbol store's S3 requests and peak RSS."""
    import app as application
    from chalicelib import config, localrun

    servers = localrun.serve(application.app, config.load())
    application.symbols()  # its client is made before the idle RSS is read
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    print("ready", flush=True)
    done.wait()
    for server in servers:
        server.close()
    print(json.dumps({"s3_requests": dict(application.symbols().requests),
                      "peak_rss_mb": status_mb("VmHWM")}), flush=True)
    os._exit(0)


def server_env(endpoint: str, prefix: str = "") -> dict[str, str]:
    from chalicelib.auth import hash_password
    from chalicelib.seaweed import free_port

    return {**os.environ, "AWS_ENDPOINT_URL_S3": endpoint, "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": "us-east-1",
            "REPORTS_BUCKET": BUCKET, "REPORTS_PREFIX": prefix,
            "SUBMIT_SERVER_PORT": str(free_port()), "REPORTS_SERVER_PORT": str(free_port()),
            "SYMBOL_UPLOAD_KEYS": f"{UPLOADER}:{hash_password(KEY, iterations=1000)}"}


def with_server(env: dict[str, str], upload: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    """Run `upload(base_url)` against a fresh server child; its figures and the server's."""
    process = subprocess.Popen([sys.executable, "-m", "bench.symbols", "_serve"], env=env,
                               stdout=subprocess.PIPE, text=True,
                               cwd=ROOT)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        idle = status_mb("VmRSS", process.pid)
        figures = upload(f"http://127.0.0.1:{env['SUBMIT_SERVER_PORT']}")
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=60)
    served = json.loads(out.strip().splitlines()[-1])
    return {**figures, "server_idle_rss_mb": idle, "server_peak_rss_mb": served["peak_rss_mb"],
            "s3_requests": served["s3_requests"]}


def v1_body(sym: Path, boundary: str) -> Iterator[bytes]:
    """symupload v1's form, the file streamed from disk."""
    fields = {"os": "Linux", "cpu": "x86_64", "debug_file": DEBUG_FILE,
              "code_file": DEBUG_FILE, "debug_identifier": DEBUG_ID}
    for name, value in fields.items():
        yield (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
               f"{value}\r\n").encode()
    yield (f'--{boundary}\r\nContent-Disposition: form-data; name="symbol_file"; '
           f'filename="{DEBUG_FILE}.sym"\r\nContent-Type: application/octet-stream\r\n\r\n'
           ).encode()
    with open(sym, "rb") as file:
        while chunk := file.read(1 << 20):
            yield chunk
    yield f"\r\n--{boundary}--\r\n".encode()


def upload_v1(endpoint: str, sym: Path) -> dict[str, Any]:
    import requests

    def upload(url: str) -> dict[str, Any]:
        boundary = "bench" + secrets.token_hex(8)
        started = time.perf_counter()
        answer = requests.post(
            f"{url}/symbols/upload", params={"key": f"{UPLOADER}:{KEY}"},
            data=v1_body(sym, boundary), timeout=1800,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        seconds = time.perf_counter() - started
        answer.raise_for_status()
        return {"seconds": round(seconds, 1), "answer": answer.text.strip()}

    return with_server(server_env(endpoint), upload)


def upload_v2(endpoint: str, sym: Path) -> dict[str, Any]:
    import requests

    def upload(url: str) -> dict[str, Any]:
        key = {"key": f"{UPLOADER}:{KEY}"}
        started = time.perf_counter()
        created = requests.post(f"{url}/symbols/v1/uploads:create", params=key, timeout=60)
        created.raise_for_status()
        with open(sym, "rb") as file:
            requests.put(created.json()["uploadUrl"], data=file,
                         timeout=1800).raise_for_status()
        put = time.perf_counter()
        body = (f'{{ symbol_id: {{ debug_file: "{DEBUG_FILE}", debug_id: "{DEBUG_ID}" }}, '
                f'symbol_upload_type: "BREAKPAD" }}')
        done = requests.post(
            f"{url}/symbols/v1/uploads/{created.json()['uploadKey']}:complete",
            params=key, data=body, timeout=1800)
        done.raise_for_status()
        end = time.perf_counter()
        return {"seconds": round(end - started, 1), "put_seconds": round(put - started, 1),
                "complete_seconds": round(end - put, 1), "answer": done.json()["result"]}

    return with_server(server_env(endpoint, prefix="v2/"), upload)


# -- crash: one dump whose frames land in the file -------------------------------------


def write_dump(path: Path, funcs: int, picks: list[int]) -> None:
    """An amd64 Linux minidump: one module (the .sym's), one thread crashed at
    0x25 into picks[0], its rbp chain returning 0x25 into each later pick in turn."""
    from tests.processing.dumpbuilder import DumpBuilder

    dump = DumpBuilder()
    dump.system_info(arch=9, platform=0x8201)
    cv = struct.pack("<I", 0x4270454C) + BUILD_ID  # CodeView "BpEL": an ELF build id
    module = dump.module(MODULE_BASE, address_of(funcs), f"/usr/lib/{DEBUG_FILE}", cv=cv)
    dump.stream(4, struct.pack("<I", 1) + module)
    rsp = STACK_TOP - 0x40
    stack = bytearray(STACK_TOP - rsp)
    for n, i in enumerate(picks[1:], start=1):  # [caller's rbp][return address] per frame
        stack += struct.pack("<QQ", STACK_TOP + 16 * n, MODULE_BASE + address_of(i) + 0x25)
    stack += bytes(16)  # a zero rbp and return address end the walk
    registers = dict.fromkeys(("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",  # as stored
                               *(f"r{n}" for n in range(8, 16)), "rip"), 0)
    registers.update(rsp=rsp, rbp=STACK_TOP, rip=MODULE_BASE + address_of(picks[0]) + 0x25)
    context = bytearray(1232)
    struct.pack_into("<I", context, 48, 0x0010000B)  # amd64: control, integer, float
    struct.pack_into("<17Q", context, 120, *registers.values())
    context_rva = dump.add(bytes(context))
    stack_rva = dump.add(bytes(stack))
    dump.stream(3, struct.pack("<I", 1) + struct.pack(
        "<IIIIQQIIII", 7, 0, 0, 0, 0, rsp, len(stack), stack_rva, len(context), context_rva))
    dump.stream(5, struct.pack("<IQII", 1, rsp, len(stack), stack_rva))
    dump.stream(6, struct.pack("<IIIIQQII15QII", 7, 0, 11, 0, 0, registers["rip"], 0, 0,
                               *[0] * 15, len(context), context_rva))
    path.write_bytes(dump.build())


def crash_main(dump: Path, funcs: int, frames: int, seed: int, block: int) -> dict[str, Any]:
    """In a fresh child: process the dump twice with symbols from the store (the first
    as a new process would, the second with the S3 connection warm), each with a new
    provider; checks every frame's function. `block`: S3RangeReader's block size for
    this run (0: as shipped)."""
    from chalicelib import config
    from chalicelib.processing.processor import process_dump, symbols_from
    from chalicelib.symbol_store import S3RangeReader, SymbolStore

    if block:
        S3RangeReader.BLOCK = block
    store = SymbolStore.from_config(config.load())
    readers: list[S3RangeReader] = []
    opened = store.index_reader
    waited = [0.0]

    def index_reader(debug_file: str, debug_id: str) -> S3RangeReader:
        reader = opened(debug_file, debug_id)
        get = reader._get

        def timed_get(start: int, end: int) -> bytes:
            started = time.perf_counter()
            try:
                return get(start, end)
            finally:
                waited[0] += time.perf_counter() - started

        reader._get = timed_get  # type: ignore[method-assign]
        readers.append(reader)
        return reader

    store.index_reader = index_reader  # type: ignore[method-assign]
    expected = [name_of(i) for i in crash_picks(funcs, frames, seed)]
    before = status_mb("VmRSS")
    runs = []
    for _ in range(2):
        readers.clear()
        store.requests.clear()
        waited[0] = 0.0
        started = time.perf_counter()
        with open(dump, "rb") as file:
            crash = process_dump(file, symbols_from(store))
        seconds = time.perf_counter() - started
        thread = crash["crashing_thread"]["frames"]
        ours = [f for f in thread if f["module"] == DEBUG_FILE]
        assert [f["function"] for f in ours] == expected, crash.get("error")
        runs.append({
            "seconds": round(seconds, 3), "frames": len(thread),
            "named": sum(f["function"] is not None for f in ours),
            "cfi": sum(f["trust"] == "cfi" for f in thread),
            "s3_seconds": round(waited[0], 3),
            "range_gets": sum(r.reads for r in readers),
            "bytes_read": sum(r.bytes_read for r in readers),
            "s3_requests": dict(store.requests),
        })
    return {"block": S3RangeReader.BLOCK, "first": runs[0], "second": runs[1],
            "rss_before_mb": before, "peak_rss_mb": status_mb("VmHWM")}


def crash_part(endpoint: str, tmp: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    """One fresh child per block size asked for (--blocks; the shipped one by default)."""
    dump = tmp / "synthetic.dmp"
    write_dump(dump, args.funcs, crash_picks(args.funcs, args.frames, args.seed))
    return [
        _child(["_crash", str(dump), str(args.funcs), str(args.frames), str(args.seed),
                str(block)], env=server_env(endpoint))
        for block in args.blocks or [0]
    ]


def s3_parts(sym: Path, tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    from chalicelib.seaweed import SeaweedServer

    result: dict[str, Any] = {}
    with SeaweedServer(tmp / "weed", BUCKET) as s3:
        if "upload" in args.parts or "crash" in args.parts:
            result["upload"] = upload_v1(s3.endpoint, sym)
        if "v2" in args.parts:
            result["v2"] = upload_v2(s3.endpoint, sym)
        if "crash" in args.parts:
            result["crash"] = crash_part(s3.endpoint, tmp, args)
    return result


