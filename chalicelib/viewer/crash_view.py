"""What the report page shows of a processed crash: reason, system, frames, modules.

The processed JSON is kept whole under the report's `crash` key (the API's view);
`describe_crash` picks what the page displays from it, tolerating missing or odd
fields, since the processor's output grows between versions. Crashpad annotations
are the application's own values; the page folds them away rather than leaving them
out. The processed JSON holds no process environment or command line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalicelib.crash_store import signature_id
from chalicelib.viewer.urls import Urls

MAX_THREADS_SHOWN = 200
MAX_FRAMES_SHOWN = 200


def describe_crash(crash: Any, report_id: str, urls: Urls) -> dict[str, Any]:
    """The page's view of a processed crash; `state` is pending, error or ok."""
    if not isinstance(crash, Mapping):
        return {"state": "pending"}
    status = str(crash.get("status") or "")
    if status != "OK":
        return {"state": "error", "status": status or "ERROR",
                "error": str(crash.get("error") or ""), "json_url": urls.crash_json(report_id)}
    info = _mapping(crash.get("crash_info"))
    system = _mapping(crash.get("system_info"))
    signature = crash.get("signature")
    signature = signature if isinstance(signature, str) and signature else None
    crashing = _mapping(crash.get("crashing_thread"))
    crashing_index = crashing.get("threads_index")
    threads = []
    for index, thread in enumerate(_list(crash.get("threads"))[:MAX_THREADS_SHOWN]):
        if index == crashing_index or not isinstance(thread, Mapping):
            continue
        threads.append(_thread(thread, index))
    annotations = _mapping(crash.get("crashpad_annotations"))
    return {
        "state": "ok",
        "reason": str(info.get("type") or ""),
        "address": str(info.get("address") or ""),
        "assertion": str(info.get("assertion") or ""),
        "os": " ".join(str(system.get(k)) for k in ("os", "os_ver") if system.get(k)),
        "cpu": " ".join(str(system.get(k)) for k in ("cpu_arch", "cpu_info") if system.get(k)),
        "cpu_count": system.get("cpu_count"),
        "signature": signature,
        "signature_url": urls.signature(signature_id(signature)) if signature else None,
        "crashing_thread": _thread(crashing, crashing_index) if crashing else None,
        "threads": threads,
        "thread_count": len(_list(crash.get("threads"))),
        "modules": [_module(m) for m in _list(crash.get("modules")) if isinstance(m, Mapping)],
        "annotations": {
            "process": {str(k): str(v) for k, v in _mapping(annotations.get("process")).items()},
            "modules": {str(module): {str(k): str(v) for k, v in _mapping(values).items()}
                        for module, values in _mapping(annotations.get("modules")).items()},
        },
        "processor": _mapping(crash.get("processor")),
        "json_url": urls.crash_json(report_id),
    }


def _thread(thread: Mapping[str, Any], index: Any) -> dict[str, Any]:
    frames = [f for f in _list(thread.get("frames")) if isinstance(f, Mapping)]
    return {
        "index": index,
        "name": str(thread.get("thread_name") or ""),
        "thread_id": thread.get("thread_id"),
        "frames": [_frame(frame) for frame in frames[:MAX_FRAMES_SHOWN]],
        "frames_cut": max(0, len(frames) - MAX_FRAMES_SHOWN),
    }


def _frame(frame: Mapping[str, Any]) -> dict[str, Any]:
    """One frame: where it is, as precisely as the symbols allow."""
    module, function = frame.get("module"), frame.get("function")
    if function:
        where = str(function)
        if frame.get("function_offset"):
            where += f" + {frame['function_offset']}"
    elif module:
        where = f"{module} + {frame.get('module_offset') or '?'}"
    else:
        where = str(frame.get("offset") or "")
    source = ""
    if frame.get("file"):
        source = str(frame["file"]) + (f":{frame['line']}" if frame.get("line") else "")
    return {
        "frame": frame.get("frame"),
        "where": where,
        "module": str(module or ""),
        "module_offset": str(frame.get("module_offset") or ""),
        "offset": str(frame.get("offset") or ""),
        "source": source,
        "trust": str(frame.get("trust") or ""),
    }


def _module(module: Mapping[str, Any]) -> dict[str, Any]:
    return {key: module.get(key) for key in (
        "filename", "version", "base_addr", "end_addr", "debug_file", "debug_id", "code_id",
        "missing_symbols", "loaded_symbols")}


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
