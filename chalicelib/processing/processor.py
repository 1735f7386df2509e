"""Run the stages on one dump: read, name the crash, walk every thread, sign.

process_dump is pure (a file in, the processed crash out, in the JSON schema of
rust-minidump's `minidump-stackwalk --json`); process_report adds the bucket around
it: the dump is copied to a temporary file (never held whole in memory), processed
within its budget, and the result stored by the crash store.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from typing import Any, BinaryIO

from chalicelib.crash_store import CrashEntry, CrashStore
from chalicelib.processing import budget
from chalicelib.processing.context import POINTER_SIZE
from chalicelib.processing.minidump import Minidump, MinidumpError, Module, read_minidump
from chalicelib.processing.reasons import crash_reason
from chalicelib.processing.signature import crash_signature
from chalicelib.processing.symbols import NoSymbols, SymbolProvider
from chalicelib.processing.unwind import MAX_FRAMES, Frame, frame_json, walk_stack
from chalicelib.store import ReportStore, ReportSummary, StoredReport
from chalicelib.symbol_store import S3RangeReader, SymbolNotFound, SymbolStore, valid_module_id
from chalicelib.symfile.provider import IndexedSymbols

log = logging.getLogger("processing")
PROCESSOR_NAME = "crash-collector"
# Bump when processing output changes: `--reprocess` finds reports made by older ones.
PROCESSOR_VERSION = 1
COPY_CHUNK = 1024 * 1024
# Frames walked in all threads of one dump, the crashing thread's first.
FRAME_BUDGET = 10_000
# Modules of the crashing thread noted as missing symbols, at most, per report.
MISSING_MODULES_NOTED = 16


def process_dump(file: BinaryIO, symbols: SymbolProvider | None = None) -> dict[str, Any]:
    """The processed crash of the dump in `file`; an unreadable dump gives its error."""
    started = time.monotonic()
    symbols = symbols or NoSymbols()
    dump = None
    try:
        dump = read_minidump(file)
        crash = _describe(dump, symbols)
    except MinidumpError as error:
        crash = error_crash(error.kind, str(error))
    except (MemoryError, budget.BudgetExceeded):
        raise
    except Exception as error:  # a processor bug must not stop the queue: mark the dump
        log.exception("processing failed")
        crash = error_crash("PROCESSOR", f"{type(error).__name__}: {error}")
    crash["processor"] = processor_facts(started, dump.warnings if dump is not None else [])
    return crash


def processor_facts(started: float, warnings: list[str]) -> dict[str, Any]:
    """The `processor` object: who processed the dump, how long it took, what it noted."""
    return {
        "name": PROCESSOR_NAME,
        "version": PROCESSOR_VERSION,
        "duration_ms": round((time.monotonic() - started) * 1000, 1),
        "warnings": list(warnings),
    }


def error_crash(kind: str, message: str) -> dict[str, Any]:
    """What is stored for a dump that cannot be processed: status ERROR_<KIND>."""
    return {"status": f"ERROR_{kind}", "error": message, "signature": None}


def process_report(
    reports: ReportStore,
    crashes: CrashStore,
    stored: ReportSummary,
    symbols: SymbolStore | None = None,
    seconds: float = 0,
    megabytes: float = 0,
) -> CrashEntry:
    """Process one committed report's dump and store the result (replacing any earlier).

    With a symbol store, frames are symbolicated and unwound by CFI from its indexes,
    and the crashing thread's modules that had no symbols are noted, so the report is
    processed again when they arrive.
    """
    provider = symbols_from(symbols) if symbols is not None else None
    with tempfile.TemporaryFile() as copy:
        with reports.open_dump(StoredReport(stored.id, {}, stored.claim)) as body:
            shutil.copyfileobj(body, copy, COPY_CHUNK)
        copy.seek(0)
        started = time.monotonic()
        try:
            with budget.limited(seconds, megabytes):
                crash = process_dump(copy, provider)
        except budget.BudgetExceeded as error:
            crash = error_crash(error.kind, str(error))
            crash["processor"] = processor_facts(started, [])
    entry = crashes.put_crash(stored, crash)
    if symbols is not None:
        symbols.mark_missing(stored.id, iter(crashing_modules(crash, missing=True)))
        symbols.clear_missing(stored.id, crashing_modules(crash, missing=False))
    return entry


def symbols_from(store: SymbolStore) -> IndexedSymbols:
    """The symbol provider over a symbol store's indexes (one per crash: it caches)."""
    def open_index(module: Module) -> S3RangeReader | None:
        if not module.debug_file or not module.debug_id:
            return None
        if not valid_module_id(module.debug_file, module.debug_id):
            return None
        return store.index_reader(module.debug_file, module.debug_id)

    return IndexedSymbols(open_index, absent=(SymbolNotFound,))


def crashing_modules(crash: dict[str, Any], missing: bool) -> list[tuple[str, str]]:
    """(debug_file, debug_id) of the crashing thread's modules that had no symbols
    (missing), or that had them (not missing)."""
    thread = crash.get("crashing_thread") or next(iter(crash.get("threads") or []), None)
    if not thread:
        return []
    in_frames = {frame.get("module") for frame in thread.get("frames") or []}
    found = []
    for module in crash.get("modules") or []:
        flag = module.get("missing_symbols") if missing else module.get("loaded_symbols")
        if module.get("filename") in in_frames and flag \
                and module.get("debug_file") and module.get("debug_id"):
            found.append((module["debug_file"], module["debug_id"]))
    return found[:MISSING_MODULES_NOTED]


# -- the JSON, field by field ---------------------------------------------------------


THREAD_LIST_STREAM, SYSTEM_INFO_STREAM = 3, 7


def _describe(dump: Minidump, symbols: SymbolProvider) -> dict[str, Any]:
    # As minidump-stackwalk: without these two there is nothing to say about a crash.
    present = {stream_type for stream_type, _, _ in dump.streams}
    if dump.system_info is None:
        raise MinidumpError("MISSING_SYSTEM_INFO", _missing("SystemInfo", dump, present,
                                                              SYSTEM_INFO_STREAM))
    if not dump.threads and THREAD_LIST_STREAM not in present:
        raise MinidumpError("MISSING_THREAD_LIST", "the dump has no thread list")
    info = dump.system_info
    cpu = info.cpu_arch if info else "unknown"
    width = POINTER_SIZE.get(cpu, 8) * 2

    def hexed(value: int | None) -> str | None:
        return None if value is None else f"0x{value:0{width}x}"

    crash_index = _crashing_thread_index(dump)
    walked = _walk_threads(dump, symbols, crash_index)
    threads_json, crashing_json = [], None
    looked_up: set[int] = set()
    for index, thread in enumerate(dump.threads):
        frames = walked.get(index, [])
        looked_up.update(id(f.module) for f in frames if f.module is not None)
        entry = {
            "thread_id": thread.id,
            "thread_name": thread.name,
            "last_error_value": None,
            "frame_count": len(frames),
            "frames": [frame_json(frame, n, False) for n, frame in enumerate(frames)],
        }
        threads_json.append(entry)
        if index == crash_index:
            crashing_json = dict(entry, threads_index=index)
            crashing_json["frames"] = [
                frame_json(frame, n, n == 0) for n, frame in enumerate(frames)
            ]
    crash_type, crash_address = None, None
    if dump.exception is not None:
        record = dump.exception
        crash_type, crash_address = crash_reason(
            info.os if info else "", cpu, record.code, record.flags, record.address,
            record.parameters,
        )
    crash: dict[str, Any] = {
        "status": "OK",
        "pid": dump.pid,
        "process_uptime": _uptime(dump),
        "crash_info": {
            "type": crash_type,
            "address": hexed(crash_address),
            "crashing_thread": crash_index,
            "assertion": dump.assertion,
        },
        "system_info": _system_info(dump),
        "thread_count": len(threads_json),
        "threads": threads_json,
        "crashing_thread": crashing_json,
        "main_module": 0 if len(dump.modules) else None,
        "modules": [
            {
                "base_addr": hexed(module.base),
                "end_addr": hexed(module.end),
                "filename": module.filename,
                "code_id": module.code_id,
                "debug_file": module.debug_file,
                "debug_id": module.debug_id,
                "version": module.version,
                # Only modules in some stack are looked up: asking about the others
                # would cost a symbol-store request each.
                "missing_symbols": id(module) in looked_up and not symbols.has_symbols(module),
                "loaded_symbols": id(module) in looked_up and symbols.has_symbols(module),
                "corrupt_symbols": False,
                "symbol_url": None,
            }
            for module in dump.modules.ordered
        ],
        "unloaded_modules": [
            {
                "base_addr": hexed(module.base),
                "end_addr": hexed(module.base + module.size),
                "filename": module.code_file.replace("\\", "/").rsplit("/", 1)[-1],
                "code_id": module.code_id,
            }
            for module in dump.unloaded_modules
        ],
        "lsb_release": dump.lsb_release,
        "mac_crash_info": _mac_crash_info(dump, hexed),
        "crashpad_annotations": _annotations(dump),
    }
    crash["signature"] = crash_signature(crash)
    return crash


def _missing(name: str, dump: Minidump, present: set[int], stream_type: int) -> str:
    if stream_type in present:
        return f"the {name} stream cannot be read: " + "; ".join(dump.warnings[:3])
    return f"the dump has no {name} stream"


def _walk_threads(
    dump: Minidump, symbols: SymbolProvider, crash_index: int | None
) -> dict[int, list[Frame]]:
    """Each thread's frames, the crashing thread first, within FRAME_BUDGET frames in
    all: a dump of thousands of threads must not make the crash JSON (or the time)
    grow without bound. Threads past the budget are listed without frames."""
    info = dump.system_info
    order = list(range(len(dump.threads)))
    if crash_index is not None:
        order.remove(crash_index)
        order.insert(0, crash_index)
    walked: dict[int, list[Frame]] = {}
    left = FRAME_BUDGET
    for index in order:
        thread = dump.threads[index]
        context = thread.context
        if index == crash_index and dump.exception is not None and dump.exception.context:
            context = dump.exception.context  # the thread list is written by the handler
        if context is None or context.cpu not in POINTER_SIZE:
            continue
        if left <= 0:
            dump.warnings.append(
                f"frame budget ({FRAME_BUDGET}) spent: {len(order) - len(walked)} "
                "threads listed without frames"
            )
            break
        stack = (thread.stack_base, thread.stack_base + thread.stack_size) \
            if thread.stack_size else None
        walked[index] = walk_stack(
            context, dump.memory, dump.modules, symbols, stack, min(MAX_FRAMES, left),
            os=info.os if info else "", unloaded_modules=dump.unloaded_modules,
        )
        left -= len(walked[index])
    return walked


def _crashing_thread_index(dump: Minidump) -> int | None:
    """The thread the exception names, else the one that asked for a dump (Breakpad)."""
    wanted = dump.exception.thread_id if dump.exception is not None else dump.requesting_thread_id
    if wanted is None:
        return None
    for index, thread in enumerate(dump.threads):
        if thread.id == wanted:
            return index
    return None


def _system_info(dump: Minidump) -> dict[str, Any] | None:
    info = dump.system_info
    if info is None:
        return None
    microcode = info.cpu_microcode_version
    return {
        "os": info.os,
        "os_ver": info.os_ver,
        "cpu_arch": info.cpu_arch,
        "cpu_info": info.cpu_info,
        "cpu_count": info.cpu_count,
        "cpu_microcode_version": None if microcode is None else f"0x{microcode:x}",
    }


def _uptime(dump: Minidump) -> int | None:
    created = dump.process_create_time
    if not created or not dump.timestamp or dump.timestamp < created:
        return None
    return dump.timestamp - created


def _mac_crash_info(dump: Minidump, hexed: Any) -> dict[str, Any] | None:
    records = dump.mac_crash_info
    if not records:
        return None
    return {
        "num_records": len(records),
        "records": [
            {
                "thread": hexed(record.thread),
                "dialog_mode": hexed(record.dialog_mode),
                "abort_cause": hexed(record.abort_cause),
                "module": record.module,
                "message": record.message,
                "signature_string": record.signature_string,
                "backtrace": record.backtrace,
                "message2": record.message2,
            }
            for record in records
        ],
    }


def _annotations(dump: Minidump) -> dict[str, Any] | None:
    """Crashpad's annotations in the dump (process and per module), not in the schema
    but where Crashpad clients put crash facts (an addition the schema allows)."""
    info = dump.crashpad_info
    if info is None:
        return None
    return {"process": dict(info.annotations), "modules": dict(info.module_annotations)}
