"""Parsers for the streams crash reporters add to minidumps: Breakpad's info and
assertion streams, Crashpad's info (annotations), the Linux /proc copies and the
macOS crash info and boot arguments.
"""

from __future__ import annotations

from collections.abc import Callable

from chalicelib.processing import minidump as md
from chalicelib.processing.dumpfile import DumpFile, StreamError, cstring

BREAKPAD_INFO = "III"
ASSERTION = "256s256s256sII"
CRASHPAD_INFO = "I16s16sIIII"
MODULE_CRASHPAD_INFO = "IIIIIII"
ANNOTATION_STRING = 1
MAC_CRASH_INFO_MAX = 20
MAC_CRASH_STRING_MAX = 8192
MAC_CRASH_STRINGS = ("module", "message", "signature_string", "backtrace", "message2")
MAX_ANNOTATIONS = 10_000


def parse_breakpad_info(df: DumpFile, data: bytes) -> tuple[int | None, int | None]:
    """(dump thread id, requesting thread id), each None unless flagged valid."""
    validity, dump_tid, requesting_tid = df.unpack(BREAKPAD_INFO, data)
    return (dump_tid if validity & 1 else None), (requesting_tid if validity & 2 else None)


def _utf16_field(raw: bytes, endian: str) -> str:
    text = raw.decode("utf-16-le" if endian == "<" else "utf-16-be", errors="replace")
    return text.split("\0", 1)[0]


def parse_assertion(df: DumpFile, data: bytes) -> str:
    """The assertion as one line, in the words Breakpad's processor uses."""
    expression, function, file, line, kind = df.unpack(ASSERTION, data)
    if kind == 1:
        text = "Invalid parameter passed to library function"
    elif kind == 2:
        text = "Pure virtual function called"
    else:
        text = f"Unknown assertion type 0x{kind:08x}"
    expression, function, file = (_utf16_field(f, df.endian) for f in (expression, function, file))
    if expression:
        text += f" {expression}"
    if function:
        text += f" in function {function}"
    if file:
        text += f", in file {file}"
    if line:
        text += f" at line {line}"
    return text


def guid_text(df: DumpFile, raw: bytes) -> str | None:
    """A GUID in its usual dashed lower-case form, None when all zero."""
    if not any(raw):
        return None
    d1, d2, d3 = df.unpack("IHH", raw)
    tail = raw[8:16].hex()
    return f"{d1:08x}-{d2:04x}-{d3:04x}-{tail[:4]}-{tail[4:]}"


def _counted(df: DumpFile, size: int, rva: int, entry: int, what: str) -> tuple[bytes, int]:
    """A location holding a u32 count then `entry`-byte records: (bytes, count)."""
    data = df.location(size, rva, what, limit=4 + MAX_ANNOTATIONS * entry)
    if not data:
        return data, 0
    (count,) = df.unpack("I", data)
    if 4 + count * entry > len(data):
        raise StreamError(f"{what} claims {count} entries, more than its {len(data)} bytes hold")
    return data, count


def simple_dictionary(df: DumpFile, size: int, rva: int, what: str) -> dict[str, str]:
    data, count = _counted(df, size, rva, 8, what)
    out = {}
    for i in range(count):
        key_rva, value_rva = df.unpack("II", data, 4 + i * 8)
        out[df.utf8_string(key_rva, f"{what} key")] = df.utf8_string(value_rva, f"{what} value")
    return out


def string_list(df: DumpFile, size: int, rva: int, what: str) -> list[str]:
    data, count = _counted(df, size, rva, 4, what)
    return [df.utf8_string(df.unpack("I", data, 4 + i * 4)[0], what) for i in range(count)]


def annotation_objects(df: DumpFile, size: int, rva: int, what: str) -> dict[str, str]:
    """The string-typed annotation objects; other types are left out."""
    data, count = _counted(df, size, rva, 12, what)
    out = {}
    for i in range(count):
        name_rva, kind, _reserved, value_rva = df.unpack("IHHI", data, 4 + i * 12)
        if kind == ANNOTATION_STRING:
            name = df.utf8_string(name_rva, f"{what} name")
            out[name] = df.utf8_string(value_rva, f"{what} value", terminated=False)
    return out


def parse_crashpad_info(
    df: DumpFile, data: bytes, modules: list[md.Module], warn: Callable[[str], None]
) -> md.CrashpadInfo:
    version, report, client, ann_size, ann_rva, list_size, list_rva = df.unpack(
        CRASHPAD_INFO, data
    )
    if version == 0:
        raise StreamError("CrashpadInfo has version 0")
    info = md.CrashpadInfo(
        report_id=guid_text(df, report),
        client_id=guid_text(df, client),
        annotations=simple_dictionary(df, ann_size, ann_rva, "process annotations"),
        module_annotations={},
    )
    links, count = _counted(df, list_size, list_rva, 12, "module annotation list")
    for i in range(count):
        index, size, rva = df.unpack("III", links, 4 + i * 12)
        if index >= len(modules):
            warn(f"CrashpadInfo: annotations for module {index}, which is not listed")
            continue
        name = modules[index].filename
        try:
            raw = df.location(size, rva, f"annotation header of {name}", 4096)
            # Older writers stop before the annotation objects: missing fields are empty.
            fields = df.unpack(MODULE_CRASHPAD_INFO, raw.ljust(28, b"\0"))
            list_ann, simple_ann, objects = fields[1:3], fields[3:5], fields[5:7]
            annotations = simple_dictionary(df, *simple_ann, f"annotations of {name}")
            annotations.update(annotation_objects(df, *objects, f"annotation objects of {name}"))
            texts = string_list(df, *list_ann, f"list annotations of {name}")
        except StreamError as exc:
            warn(f"CrashpadInfo: {exc}")
            continue
        if annotations:
            info.module_annotations.setdefault(name, {}).update(annotations)
        if texts:
            info.module_list_annotations.setdefault(name, []).extend(texts)
    return info


def key_values(text: str, separator: str) -> dict[str, str]:
    """`key<sep>value` lines, both sides trimmed and unquoted; the first key wins."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(separator)
        if not sep:
            continue
        key, value = (_unquote(s) for s in (key, value))
        out.setdefault(key, value)
    return out


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    return text


LSB_KEYS = {
    "id": ("DISTRIB_ID", "ID"),
    "release": ("DISTRIB_RELEASE", "VERSION_ID"),
    "codename": ("DISTRIB_CODENAME", "VERSION_CODENAME"),
    "description": ("DISTRIB_DESCRIPTION", "PRETTY_NAME"),
}


def parse_lsb_release(data: bytes) -> dict[str, str]:
    """id, release, codename, description from lsb-release or os-release text."""
    pairs = key_values(data.decode("utf-8", errors="replace"), "=")
    out = {}
    for field, keys in LSB_KEYS.items():
        out[field] = next((pairs[k] for k in keys if k in pairs), "")
    return out


def proc_status_pid(text: str) -> int | None:
    value = key_values(text, ":").get("Pid", "")
    return int(value) if value.isdigit() and len(value) < 12 else None


def cpu_microcode(text: str) -> int | None:
    value = key_values(text, ":").get("microcode", "")
    try:
        return int(value, 16) if value.startswith("0x") and len(value) < 20 else None
    except ValueError:
        return None


def parse_mac_crash_info(df: DumpFile, data: bytes) -> list[md.MacCrashInfoRecord]:
    header = df.unpack("III" + "II" * MAC_CRASH_INFO_MAX, data)
    _stream_type, count, strings_at = header[:3]
    locations = header[3:]
    records = []
    version_seen = None
    for i in range(min(count, MAC_CRASH_INFO_MAX)):
        size, rva = locations[2 * i], locations[2 * i + 1]
        raw = df.location(size, rva, f"mac crash info record {i}", limit=64 * 1024)
        _type, version = df.unpack("QQ", raw)
        if version_seen is not None and version != version_seen:
            raise StreamError("mac crash info records of different versions")
        version_seen = version
        thread = dialog_mode = abort_cause = 0
        strings: dict[str, str | None] = dict.fromkeys(MAC_CRASH_STRINGS)
        if version >= 4:
            fixed = "QQQQQ" if version >= 5 else "QQQQ"
            values = df.unpack(fixed, raw)
            if strings_at < 8 * len(values):
                raise StreamError("mac crash info strings overlap its fixed fields")
            thread, dialog_mode = values[2], values[3]
            abort_cause = values[4] if version >= 5 else 0
            offset = strings_at
            for key in MAC_CRASH_STRINGS:
                text, offset = cstring(raw, offset, MAC_CRASH_STRING_MAX)
                strings[key] = text or None
        records.append(md.MacCrashInfoRecord(
            thread=thread, dialog_mode=dialog_mode, abort_cause=abort_cause, **strings
        ))
    return records


def parse_mac_boot_args(df: DumpFile, data: bytes) -> str:
    _stream_type, rva = df.unpack("IQ", data)
    return df.utf16_string(rva, "boot args")
