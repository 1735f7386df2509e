"""Parsers for the standard minidump streams: system info, exception, threads,
modules (with their CodeView records), memory lists and misc info.

Each parser gets the DumpFile and the stream's own bytes (already checked against
the file) and returns plain values; anything malformed raises StreamError.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator

from chalicelib.processing import minidump as md
from chalicelib.processing.dumpfile import DumpFile, StreamError, list_count, list_start

OS_NAMES = {
    1: "Windows NT",  # Win32s, Win9x and NT all report as Windows
    2: "Windows NT",
    3: "Windows NT",
    0x8101: "Mac OS X",
    0x8102: "iOS",
    0x8201: "Linux",
    0x8202: "Solaris",
    0x8203: "Android",
    0x8204: "PS3",
    0x8205: "NaCl",
}
CPU_NAMES = {
    0: "x86",
    10: "x86",  # IA32 on Win64
    9: "amd64",
    3: "ppc",
    0x8002: "ppc64",
    0x8001: "sparc",
    5: "arm",
    12: "arm64",
    0x8003: "arm64",  # Breakpad's ARM64 id from before Windows defined one
    1: "mips",
    0x8004: "mips64",
}
# Platforms whose writers leave the version fields zero and put `uname -srvmo` in
# the CSD string; the kernel version is then taken from there.
KERNEL_IN_CSD = {0x8201}
APPLE = ("Mac OS X", "iOS")

ARM_VENDORS = {0x41: "ARM", 0x51: "Qualcomm", 0x56: "Marvell", 0x69: "Intel/Marvell"}
ARM_PARTS = {
    0x4100C050: "Cortex-A5", 0x4100C080: "Cortex-A8", 0x4100C090: "Cortex-A9",
    0x4100C0F0: "Cortex-A15", 0x4100C140: "Cortex-R4", 0x4100C150: "Cortex-R5",
    0x4100B360: "ARM1136", 0x4100B560: "ARM1156", 0x4100B760: "ARM1176",
    0x4100B020: "ARM11-MPCore", 0x41009260: "ARM926", 0x41009460: "ARM946",
    0x41009660: "ARM966", 0x510006F0: "Krait", 0x510000F0: "Scorpion",
}
ARM_HWCAPS = (
    "swp", "half", "thumb", "26bit", "fastmult", "fpa", "vfpv2", "edsp", "java", "iwmmxt",
    "crunch", "thumbee", "neon", "vfpv3", "vfpv3d16", "tls", "vfpv4", "idiva", "idivt",
)

SYSTEM_INFO = "HHHBBIIIIIHH24s"
EXCEPTION = "IIIIQQII15QII"
THREAD = "IIIIQQIIII"
MODULE = "QIIII13IIIII4I"
MEMORY = "QII"
VS_FFI_SIGNATURE = 0xFEEF04BD
CV_PDB70, CV_PDB20, CV_ELF = 0x53445352, 0x3031424E, 0x4270454C  # "RSDS", "NB10", "BpEL"
MAX_CODEVIEW = 64 * 1024
MAX_MEMORY_RANGES = 1 << 20


def parse_system_info(df: DumpFile, data: bytes) -> md.SystemInfo:
    (arch, level, revision, cpus, _product, major, minor, build, platform, csd_rva,
     _suite, _reserved, cpu_data) = df.unpack(SYSTEM_INFO, data)
    os_name = OS_NAMES.get(platform, f"0x{platform:08x}")
    cpu_arch = CPU_NAMES.get(arch, "unknown")
    csd = ""
    if csd_rva:
        try:
            csd = df.utf16_string(csd_rva, "CSD version string")
        except StreamError:
            csd = ""
    csd = csd.rstrip("\0")

    vendor = None
    if cpu_arch in ("x86", "amd64"):
        words = struct.unpack(df.endian + "3I", cpu_data[:12])
        text = struct.pack("<3I", *words).rstrip(b"\0")
        if text and all(32 <= b < 127 for b in text):
            vendor = text.decode("ascii")
    return md.SystemInfo(
        processor_architecture=arch,
        cpu_arch=cpu_arch,
        cpu_level=level,
        cpu_revision=revision,
        cpu_count=cpus,
        platform_id=platform,
        os=os_name,
        os_ver=os_version(platform, major, minor, build, csd),
        csd_version=csd,
        cpu_info=cpu_description(df, cpu_arch, level, revision, cpu_data, vendor),
        cpu_vendor=vendor,
    )


def os_version(platform: int, major: int, minor: int, build: int, csd: str) -> str:
    """"major.minor.build csd", or for Linux writers that leave the numbers zero, the
    kernel version and build from the CSD string ("Linux 4.9.60 #1 SMP ... x86_64")."""
    version = f"{major}.{minor}.{build}"
    extra = csd.strip()
    if platform in KERNEL_IN_CSD and version == "0.0.0":
        parts = extra.split(" ")
        if len(parts) > 1 and parts[1] != "0.0.0":
            rest = parts[2:]
            if rest and rest[-1] == "Linux/GNU":
                rest = rest[:-1]
            rest = rest[:-1]  # the machine (x86_64, aarch64...)
            version, extra = parts[1], " ".join(rest)
    return f"{version} {extra}" if extra else version


def cpu_description(
    df: DumpFile, cpu: str, level: int, revision: int, cpu_data: bytes, vendor: str | None
) -> str | None:
    if cpu in ("x86", "amd64"):
        text = f"family {level} model {(revision >> 8) & 0xFF} stepping {revision & 0xFF}"
        # The processing tools name the vendor for 32-bit x86 only.
        return f"{vendor} {text}" if cpu == "x86" and vendor else text
    if cpu != "arm":
        return None
    cpuid, hwcaps = struct.unpack(df.endian + "2I", cpu_data[:8])
    text = f"ARMv{level}"
    if cpuid:
        vendor_id, part = (cpuid >> 24) & 0xFF, cpuid & 0xFF00FFF0
        text += f" {ARM_VENDORS.get(vendor_id, f'vendor(0x{vendor_id:x})')}"
        text += f" {ARM_PARTS.get(part, f'part(0x{part:x})')}"
    features = [name for bit, name in enumerate(ARM_HWCAPS) if hwcaps & (1 << bit)]
    if features:
        text += " features: " + ",".join(features)
    return text


def parse_exception(df: DumpFile, data: bytes) -> tuple[md.ExceptionRecord, tuple[int, int]]:
    """The record (context left None) and the (size, rva) of its context."""
    fields = df.unpack(EXCEPTION, data)
    thread_id, _align, code, flags, record, address, count, _align2 = fields[:8]
    params = fields[8:23]
    ctx_size, ctx_rva = fields[23:25]
    exc = md.ExceptionRecord(
        thread_id=thread_id,
        code=code,
        flags=flags,
        record=record,
        address=address,
        parameters=tuple(params[: min(count, 15)]),
        context=None,
    )
    return exc, (ctx_size, ctx_rva)


def parse_threads(
    df: DumpFile, data: bytes
) -> list[tuple[md.Thread, tuple[int, int], tuple[int, int, int]]]:
    """Threads (context None), each with its context location (size, rva) and its
    stack memory (base, size, rva)."""
    size = struct.calcsize("<" + THREAD)
    count = list_count(df, data, size, "thread list")
    start = list_start(data, count, size)
    out = []
    for i in range(count):
        (tid, suspend, _pclass, priority, teb, stack_base, stack_size, stack_rva,
         ctx_size, ctx_rva) = df.unpack(THREAD, data, start + i * size)
        thread = md.Thread(
            id=tid, context=None, stack_base=stack_base, stack_size=stack_size,
            suspend_count=suspend, priority=priority, teb=teb,
        )
        out.append((thread, (ctx_size, ctx_rva), (stack_base, stack_size, stack_rva)))
    return out


def parse_thread_names(df: DumpFile, data: bytes, warn: Callable[[str], None]) -> dict[int, str]:
    count = list_count(df, data, 12, "thread name list")
    start = list_start(data, count, 12)
    names = {}
    for i in range(count):
        tid, rva = df.unpack("IQ", data, start + i * 12)
        try:
            names[tid] = df.utf16_string(rva, f"name of thread {tid}")
        except StreamError as exc:
            warn(f"ThreadNames: {exc}")
    return names


def parse_modules(
    df: DumpFile, data: bytes, os_name: str, warn: Callable[[str], None]
) -> list[md.Module]:
    size = struct.calcsize("<" + MODULE)
    count = list_count(df, data, size, "module list")
    start = list_start(data, count, size)
    modules = []
    for i in range(count):
        fields = df.unpack(MODULE, data, start + i * size)
        base, image_size, checksum, timestamp, name_rva = fields[:5]
        ffi = fields[5:18]
        cv_size, cv_rva = fields[18:20]
        try:
            name = df.utf16_string(name_rva, f"name of module {i}")
        except StreamError as exc:
            warn(f"ModuleList: {exc}")
            name = ""
        code_id = f"{timestamp:08X}{image_size:x}" if os_name == "Windows NT" else None
        debug_file = debug_id = None
        if cv_size:
            try:
                cv = df.location(cv_size, cv_rva, f"CodeView record of {name or i}", MAX_CODEVIEW)
                code_id, debug_file, debug_id = codeview_ids(
                    df, cv, name, os_name, timestamp, image_size
                )
            except StreamError as exc:
                warn(f"ModuleList: {exc}")
        modules.append(md.Module(
            base=base, size=image_size, code_file=name, code_id=code_id,
            debug_file=debug_file, debug_id=debug_id,
            version=file_version(ffi, os_name), timestamp=timestamp, checksum=checksum,
        ))
    return modules


def guid_hex(df: DumpFile, raw: bytes) -> str:
    """A GUID (u32, u16, u16, 8 bytes in the dump's byte order) as 32 upper-case hex."""
    d1, d2, d3 = struct.unpack(df.endian + "IHH", raw[:8])
    return f"{d1:08X}{d2:04X}{d3:04X}" + raw[8:16].hex().upper()


def codeview_ids(
    df: DumpFile, cv: bytes, name: str, os_name: str, timestamp: int, image_size: int
) -> tuple[str | None, str | None, str | None]:
    """(code_id, debug_file, debug_id) from a CodeView record, as Breakpad's tools name them."""
    (sig,) = df.unpack("I", cv)
    pe_code_id = f"{timestamp:08X}{image_size:x}"
    if sig == CV_PDB70 and len(cv) >= 24:
        guid = cv[4:20]
        (age,) = df.unpack("I", cv, 20)
        pdb = _pdb_name(cv[24:])
        debug_id = f"{guid_hex(df, guid)}{age:x}" if any(guid) else None
        code_id = guid_hex(df, guid) if os_name in APPLE else pe_code_id
        return code_id, pdb, debug_id
    if sig == CV_PDB20 and len(cv) >= 16:
        signature, age = df.unpack("II", cv, 8)
        pdb = _pdb_name(cv[16:])
        return pe_code_id, pdb, f"{signature:08X}{age:x}"
    if sig == CV_ELF:
        build_id = cv[4:]
        basename = _basename(name)
        if not any(build_id):
            return None, basename, None
        padded = build_id[:16].ljust(16, b"\0")
        return build_id.hex(), basename, guid_hex(df, padded) + "0"
    return (pe_code_id if os_name == "Windows NT" else None), None, None


def _basename(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1]


def _pdb_name(raw: bytes) -> str | None:
    """The base name of the PDB path in a CodeView record (the symbol file's name)."""
    return _basename(raw.split(b"\0", 1)[0].decode("utf-8", errors="replace")) or None


def file_version(ffi: tuple[int, ...], os_name: str) -> str | None:
    signature, struct_version, file_hi, file_lo, prod_hi, prod_lo = ffi[:6]
    if signature != VS_FFI_SIGNATURE or struct_version != 0x10000:
        return None
    if os_name in APPLE or os_name == "Windows NT":
        parts = (file_hi >> 16, file_hi & 0xFFFF, file_lo >> 16, file_lo & 0xFFFF)
    else:
        parts = (file_hi, file_lo, prod_hi, prod_lo)
    if not any(parts):
        return None
    return ".".join(str(p) for p in parts)


def parse_unloaded_modules(
    df: DumpFile, data: bytes, warn: Callable[[str], None]
) -> list[md.UnloadedModule]:
    header_size, entry_size, count = df.unpack("III", data)
    if entry_size < 24 or header_size < 12 or header_size + count * entry_size > len(data):
        raise StreamError(
            f"unloaded module list header ({header_size}, {entry_size}, {count}) does not "
            f"fit its {len(data)} bytes"
        )
    out = []
    for i in range(count):
        base, size, checksum, timestamp, name_rva = df.unpack(
            "QIIII", data, header_size + i * entry_size
        )
        try:
            name = df.utf16_string(name_rva, f"name of unloaded module {i}")
        except StreamError as exc:
            warn(f"UnloadedModuleList: {exc}")
            name = ""
        out.append(md.UnloadedModule(
            base=base, size=size, code_file=name, code_id=f"{timestamp:08X}{size:x}",
            timestamp=timestamp, checksum=checksum,
        ))
    return out


def parse_memory_list(df: DumpFile, data: bytes) -> Iterator[tuple[int, int, int]]:
    """(base, size, file offset) of each range, unchecked against the file. Lazy, as a
    full-memory dump may list very many ranges."""
    count = list_count(df, data, 16, "memory list", limit=MAX_MEMORY_RANGES)
    start = list_start(data, count, 16)
    return struct.iter_unpack(df.endian + MEMORY, data[start : start + 16 * count])


def parse_memory64_list(df: DumpFile, data: bytes) -> Iterator[tuple[int, int, int]]:
    """As parse_memory_list; the ranges' bytes follow each other from one base offset."""
    count, rva = df.unpack("QQ", data)
    if count > MAX_MEMORY_RANGES or 16 + count * 16 > len(data):
        raise StreamError(f"memory64 list claims {count} ranges, more than its bytes hold")

    def ranges(offset: int) -> Iterator[tuple[int, int, int]]:
        for base, size in struct.iter_unpack(df.endian + "QQ", data[16 : 16 + 16 * count]):
            yield base, size, offset
            offset += size

    return ranges(rva)


def parse_misc_info(df: DumpFile, data: bytes) -> tuple[int | None, int | None]:
    """(process id, process create time), each None unless its flag says it is valid."""
    _size, flags, pid, create_time = df.unpack("IIII", data)
    return (pid if flags & 1 else None), (create_time if flags & 2 else None)
