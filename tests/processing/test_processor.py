"""The processed crash of every real fixture: the facts SOURCES.md lists, in the JSON
schema of minidump-stackwalk, and what a schema reader (Socorro's siggen) makes of it."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from siggen.generator import SignatureGenerator

from chalicelib.processing.processor import process_dump

DUMPS = Path(__file__).resolve().parents[1] / "fixtures" / "minidumps"

# file: os, cpu, reason, address, crashing thread id, frame 0 (module, offset), modules, threads
EXPECTED = {
    "linux-x86_64-crashpad-chromeos-chrome-sigsegv.dmp": (
        "Linux", "amd64", "SIGSEGV / SEGV_MAPERR", 0x0, 8090, ("chrome", 0x3637DA0), 43, 18),
    "linux-x86_64-breakpad-sigsegv.dmp": (
        "Linux", "amd64", "SIGSEGV", 0x45, 1304, ("crash", 0x1D72), 8, 1),
    "windows-x86-breakpad-access-violation.dmp": (
        "Windows NT", "x86", "EXCEPTION_ACCESS_VIOLATION_WRITE", 0x45, 3060,
        ("test_app.exe", 0x429E), 13, 2),
    "windows-x86_64-sentry-native-access-violation.dmp": (
        "Windows NT", "amd64", "EXCEPTION_ACCESS_VIOLATION_WRITE", 0x20, 12996,
        ("VCRUNTIME140D.dll", 0x20476), 34, 5),
    "windows-x86_64-fastfail-0xc0000409.dmp": (
        "Windows NT", "amd64", "EXCEPTION_STACK_BUFFER_OVERRUN / FAST_FAIL_FATAL_APP_EXIT",
        0x7FF75355AF42, 24440, ("tiny.exe", 0x1AF42), 21, 4),
    "macos-x86_64-crashpad-electron-bad-instruction.dmp": (
        "Mac OS X", "amd64", "EXC_BAD_INSTRUCTION / EXC_I386_INVOP", 0x10CE0A4E4, 6722809,
        ("Electron Framework", 0xF34E4), 217, 17),
    "android-arm64-firefox-sigsegv.dmp": (
        "Android", "arm64", "SIGSEGV / SEGV_MAPERR", 0x0, 20397, ("libxul.so", 0x2D4DA90),
        739, 164),
    "ios-x86_64-simulator-crashpad-nsexception.dmp": (
        "iOS", "amd64", "Uncaught NSException", 0x1030E9C34, 4779401,
        ("ios_crash_xcuitests", 0x6BC34), 354, 7),
}


def processed(name: str) -> dict:
    with open(DUMPS / name, "rb") as dump:
        return process_dump(dump)


@pytest.fixture(scope="module")
def crashes() -> dict[str, dict]:
    return {name: processed(name) for name in [*EXPECTED, "windows-x86_64-no-exception-stream.dmp"]}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_fixture_gives_its_known_facts(crashes, name) -> None:
    os_name, cpu, reason, address, thread_id, (module, offset), modules, threads = EXPECTED[name]
    crash = crashes[name]
    assert crash["status"] == "OK"
    assert (crash["system_info"]["os"], crash["system_info"]["cpu_arch"]) == (os_name, cpu)
    assert crash["crash_info"]["type"] == reason
    assert int(crash["crash_info"]["address"], 16) == address
    assert len(crash["modules"]) == modules and crash["thread_count"] == len(crash["threads"])
    assert len(crash["threads"]) == threads
    crashing = crash["crashing_thread"]
    assert crash["threads"][crashing["threads_index"]]["thread_id"] == thread_id
    assert crash["crash_info"]["crashing_thread"] == crashing["threads_index"]
    frame0 = crashing["frames"][0]
    assert (frame0["module"], int(frame0["module_offset"], 16)) == (module, offset)
    assert frame0["trust"] == "context" and frame0["frame"] == 0
    # Frame 0 comes from the Exception stream's context, and carries the registers.
    pc = {"amd64": "rip", "x86": "eip", "arm64": "pc"}[cpu]
    assert int(frame0["registers"][pc], 16) == int(frame0["offset"], 16)
    assert all("registers" not in f for f in crashing["frames"][1:])
    assert crash["signature"].startswith(reason + " | " + f"{module}@{hex(offset)}")


def test_a_dump_without_a_crash_has_no_crashing_thread(crashes) -> None:
    crash = crashes["windows-x86_64-no-exception-stream.dmp"]
    assert crash["status"] == "OK" and crash["crash_info"]["type"] is None
    assert crash["crashing_thread"] is None
    top = crash["threads"][0]["frames"][0]
    assert (top["module"], top["module_offset"]) == ("ntdll.dll", "0x00000000000a39e4")
    assert crash["signature"].startswith("No crash | ntdll.dll@0xa39e4")


def test_the_output_has_minidump_stackwalks_fields(crashes) -> None:
    crash = json.loads(json.dumps(crashes["windows-x86-breakpad-access-violation.dmp"]))
    assert {"status", "pid", "crash_info", "system_info", "crashing_thread", "threads",
            "modules", "unloaded_modules", "lsb_release", "mac_crash_info", "signature",
            "processor"} <= set(crash)
    assert crash["system_info"]["os_ver"] == "5.1.2600 Service Pack 2"
    module = next(m for m in crash["modules"] if m["filename"] == "test_app.exe")
    assert module["debug_file"] == "test_app.pdb"
    assert module["debug_id"] == "5A9832E5287241C1838ED98914E9B7FF1"
    assert module["base_addr"] == "0x00400000"
    assert module["missing_symbols"] is True and module["loaded_symbols"] is False
    for frame in crash["crashing_thread"]["frames"]:
        assert {"frame", "trust", "offset", "module", "module_offset", "function",
                "function_offset", "file", "line", "missing_symbols"} <= set(frame)
        assert frame["function"] is None and frame["missing_symbols"] is True
    assert crash["processor"]["name"] == "crash-collector" and crash["processor"]["version"]


def test_linux_facts_and_no_secrets(crashes) -> None:
    linux = crashes["linux-x86_64-breakpad-sigsegv.dmp"]
    assert linux["pid"] and linux["lsb_release"]["id"]
    crash = crashes["android-arm64-firefox-sigsegv.dmp"]
    assert crash["pid"] == 20397
    text = json.dumps(crash)
    # The dump holds the process environment and command line: never in the output.
    assert "environ" not in text and "LD_LIBRARY_PATH" not in text and "cmdline" not in text


def test_socorros_signature_generation_reads_our_output_unchanged(crashes) -> None:
    crash = crashes["linux-x86_64-breakpad-sigsegv.dmp"]
    result = SignatureGenerator().generate({
        "os": crash["system_info"]["os"],
        "crashing_thread": crash["crashing_thread"]["threads_index"],
        "threads": crash["threads"],
        "reason": crash["crash_info"]["type"],
    })
    # Without function names siggen says only the module: every crash in `crash` would
    # share one group, which is why our fallback signature keeps the offsets.
    assert result.signature == "crash"
    assert crash["signature"] == (
        "SIGSEGV | crash@0x1d72 | libc-2.23.so@0xf302d | libc-2.23.so@0x877ff")


def test_with_function_names_the_signature_comes_from_siggen() -> None:
    from chalicelib.processing.signature import crash_signature

    crash = processed("linux-x86_64-breakpad-sigsegv.dmp")
    for thread in [crash["crashing_thread"], *crash["threads"]]:
        for number, frame in enumerate(thread["frames"]):
            frame["function"] = f"Parser::load{number}(const Config&)"
    assert crash_signature(crash) == "Parser::load0"


def test_same_crash_same_signature_other_crash_in_the_same_module_apart() -> None:
    first = processed("linux-x86_64-breakpad-sigsegv.dmp")
    again = processed("linux-x86_64-breakpad-sigsegv.dmp")
    assert first["signature"] == again["signature"]
    from chalicelib.processing.signature import fallback_signature

    other = json.loads(json.dumps(first))
    other["crashing_thread"]["frames"][0]["module_offset"] = "0x0000000000001d90"
    assert fallback_signature(other) != first["signature"]
    assert fallback_signature(other).split(" | ")[1] == "crash@0x1d90"
    null_read = json.loads(json.dumps(first))
    null_read["crash_info"]["type"] = "SIGBUS"
    assert fallback_signature(null_read) != first["signature"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_real_dumps_never_raise_and_give_a_status(data) -> None:
    original = (DUMPS / "windows-x86-breakpad-access-violation.dmp").read_bytes()
    dump = bytearray(original)
    for _ in range(data.draw(st.integers(1, 30))):
        position = data.draw(st.integers(0, len(dump) - 1))
        dump[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(dump)))
    crash = process_dump(io.BytesIO(bytes(dump[:cut])))
    assert crash["status"] == "OK" or crash["status"].startswith("ERROR_")
    assert crash["status"] != "ERROR_PROCESSOR", crash.get("error")
    json.dumps(crash)


def test_frames_are_walked_within_a_budget_crashing_thread_first(monkeypatch) -> None:
    from chalicelib.processing import processor

    full = processed("android-arm64-firefox-sigsegv.dmp")
    monkeypatch.setattr(processor, "FRAME_BUDGET", 100)
    crash = processed("android-arm64-firefox-sigsegv.dmp")
    assert len(crash["threads"]) == len(full["threads"]) == 164  # every thread listed
    assert crash["crashing_thread"]["frames"] == full["crashing_thread"]["frames"]
    frames = sum(len(thread["frames"]) for thread in crash["threads"])
    assert 100 <= frames < 100 + 1024  # the thread that crosses the budget finishes
    assert frames < sum(len(thread["frames"]) for thread in full["threads"])
    assert any("frame budget (100) spent" in w for w in crash["processor"]["warnings"])
    assert crash["signature"] == full["signature"]
