"""The crash signature: one line that is equal for reports of the same crash.

With function names on the crashing thread's frames, Socorro's signature generation
(PyPI `siggen`) makes it, as it does for Firefox. Without them (no symbols uploaded)
the fallback joins the crash reason and the first FALLBACK_FRAMES frames as
`module@0xoffset`; docs/signatures.md states the rules and their limits.
"""

from __future__ import annotations

from typing import Any

from siggen.generator import SignatureGenerator

FALLBACK_FRAMES = 3
UNKNOWN_MODULE = "<unknown>"
_generator: SignatureGenerator | None = None


def crash_signature(crash: dict[str, Any]) -> str | None:
    """The signature of a processed crash (minidump-stackwalk JSON), None for an error."""
    if crash.get("status") != "OK":
        return None
    thread_index, frames = _signature_thread(crash)
    if any(frame.get("function") for frame in frames):
        signature = _socorro_signature(crash, thread_index)
        if signature:
            return signature
    return fallback_signature(crash)


def fallback_signature(crash: dict[str, Any]) -> str:
    """`<reason> | <frame> | ...`: the crash reason, then the first frames as module@offset.

    The reason keeps a null read and a null write at the same place apart; the module
    offsets keep two crashes in one module apart. A frame outside every module reads
    `<unknown>`, since its absolute address moves with address-space randomisation.
    """
    reason = (crash.get("crash_info") or {}).get("type") or "No crash"
    _, frames = _signature_thread(crash)
    parts = [reason]
    for frame in frames[:FALLBACK_FRAMES]:
        module, offset = frame.get("module"), frame.get("module_offset")
        parts.append(f"{module}@{_short_hex(offset)}" if module and offset else UNKNOWN_MODULE)
    return " | ".join(parts)


def _signature_thread(crash: dict[str, Any]) -> tuple[int | None, list[dict[str, Any]]]:
    """The crashing thread (or the first thread of a dump taken without a crash)."""
    crashing = crash.get("crashing_thread")
    if crashing and crashing.get("frames") is not None:
        return crashing.get("threads_index"), list(crashing["frames"])
    threads = crash.get("threads") or []
    if threads:
        return 0, list(threads[0].get("frames") or [])
    return None, []


def _socorro_signature(crash: dict[str, Any], thread_index: int | None) -> str:
    global _generator
    if _generator is None:
        _generator = SignatureGenerator()
    threads = crash.get("threads") or []
    data = {
        "os": (crash.get("system_info") or {}).get("os"),
        "reason": (crash.get("crash_info") or {}).get("type"),
        "crashing_thread": thread_index if thread_index is not None else 0,
        "threads": [
            {"frames": [_frame_for_siggen(f) for f in thread.get("frames") or []]}
            for thread in threads
        ],
    }
    assertion = (crash.get("crash_info") or {}).get("assertion")
    if assertion:
        data["abort_message"] = assertion
    return _generator.generate(data).signature


def _frame_for_siggen(frame: dict[str, Any]) -> dict[str, Any]:
    return {
        key: frame.get(key)
        for key in ("frame", "function", "module", "module_offset", "offset", "file", "line")
        if frame.get(key) is not None
    }


def _short_hex(value: str) -> str:
    """`0x0000000000001d72` as `0x1d72`, so the fallback reads like siggen's frames."""
    try:
        return hex(int(value, 16))
    except (TypeError, ValueError):
        return str(value)
