"""The embedded S3's ownership checks (chalicelib.seaweed), without starting weed."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from chalicelib import seaweed


def test_a_listening_port_is_refused_naming_it() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(seaweed.PortTaken) as caught:
            seaweed.check_port_free(port)
    assert f"S3 port {port} on 127.0.0.1 is taken" in str(caught.value)
    assert "LOCAL_S3_PORT" in str(caught.value)
    seaweed.check_port_free(port)  # free again once closed


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_listener_is_found_in_its_owner_only() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        try:
            assert seaweed.holds_listener(os.getpid(), port) is True
            assert seaweed.holds_listener(other.pid, port) is False
        finally:
            other.kill()
            other.wait()
    assert seaweed.holds_listener(os.getpid(), port) is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_a_child_started_with_die_with_parent_goes_when_its_parent_is_killed(tmp_path) -> None:
    """A parent starts a sleeping child bound to it, prints the child's pid, and is
    SIGKILLed: the child receives SIGTERM from the kernel."""
    script = (
        "import subprocess, sys, time\n"
        "from chalicelib.seaweed import die_with_parent\n"
        "child = subprocess.Popen(['sleep', '60'], preexec_fn=die_with_parent(),"
        " start_new_session=True)\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child)


def alive(pid: int) -> bool:
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")
