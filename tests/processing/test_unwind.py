"""The stack walker on synthetic stacks: a fake memory of words at addresses, fake
modules, and symbol providers that know nothing or hand back CFI results."""

from __future__ import annotations

import dataclasses

import pytest

from chalicelib.processing.context import Context
from chalicelib.processing.minidump import Module, UnloadedModule
from chalicelib.processing.symbols import NoSymbols
from chalicelib.processing.unwind import MAX_FRAMES, Frame, frame_json, walk_stack


class FakeMemory:
    """Captured ranges as (base, bytearray); reads answer None outside them."""

    def __init__(self, *ranges: tuple[int, int]) -> None:
        self.ranges = [(base, bytearray(size)) for base, size in ranges]

    def put(self, address: int, value: int, size: int) -> None:
        for base, data in self.ranges:
            if base <= address and address + size <= base + len(data):
                data[address - base : address - base + size] = value.to_bytes(size, "little")
                return
        raise AssertionError(f"no range holds {address:#x}")

    def read(self, address: int, size: int) -> bytes | None:
        for base, data in self.ranges:
            if base <= address and address + size <= base + len(data):
                return bytes(data[address - base : address - base + size])
        return None

    def read_u32(self, address: int) -> int | None:
        return self.read_pointer(address, 4)

    def read_u64(self, address: int) -> int | None:
        return self.read_pointer(address, 8)

    def read_pointer(self, address: int, size: int) -> int | None:
        data = self.read(address, size)
        return None if data is None else int.from_bytes(data, "little")

    def range_at(self, address: int) -> tuple[int, int] | None:
        for base, data in self.ranges:
            if base <= address < base + len(data):
                return base, len(data)
        return None


class FakeModules:
    def __init__(self, *modules: Module) -> None:
        self.ordered = list(modules)

    def module_at(self, address: int) -> Module | None:
        for module in self.ordered:
            if module.base <= address < module.end:
                return module
        return None

    def __iter__(self):
        return iter(self.ordered)

    def __len__(self) -> int:
        return len(self.ordered)


def module(name: str, base: int, size: int) -> Module:
    return Module(
        base=base, size=size, code_file=f"/usr/lib/{name}", code_id=None,
        debug_file=name, debug_id=None, version=None,
    )


@dataclasses.dataclass
class FakeSymbols:
    """Functions by address range in one module, and CFI answers by lookup address."""

    functions: dict[tuple[int, int], str] = dataclasses.field(default_factory=dict)
    cfi: dict[int, dict[str, int]] = dataclasses.field(default_factory=dict)
    symbolized: tuple[str, ...] = ("app",)
    seen: list[int] = dataclasses.field(default_factory=list)

    def fill_symbol(self, module: Module, frame: Frame) -> None:
        for (start, end), name in self.functions.items():
            if start <= frame.lookup_address < end:
                frame.function = name
                frame.function_base = start
                frame.function_offset = frame.lookup_address - start
                frame.file = f"src/{name}.c"
                frame.line = 10

    def walk_frame(self, module: Module, frame: Frame, memory) -> dict[str, int] | None:
        self.seen.append(frame.lookup_address)
        return self.cfi.get(frame.lookup_address)

    def has_symbols(self, module: Module) -> bool:
        return module.debug_file in self.symbolized


APP = module("app", 0x400000, 0x10000)
LIBC = module("libc.so.6", 0x7F00_0000_0000, 0x100000)
STACK = 0x7FFD_0000
STACK_SIZE = 0x1000
MODULES = FakeModules(APP, LIBC)


def amd64(rip: int, rsp: int, rbp: int | None = None, **extra: int) -> Context:
    registers = {"rip": rip, "rsp": rsp, "rax": 0x45, "rbx": 0x1111, "r12": 0x1212, **extra}
    if rbp is not None:
        registers["rbp"] = rbp
    return Context("amd64", registers)


def stack64(**words: int) -> FakeMemory:
    """The stack with a word at STACK + offset for each `o<hex offset>=value`."""
    memory = FakeMemory((STACK, STACK_SIZE))
    for key, value in words.items():
        memory.put(STACK + int(key[1:], 16), value, 8)
    return memory


def walk(context: Context, memory, symbols=None, **kwargs) -> list[Frame]:
    return walk_stack(
        context, memory, kwargs.pop("modules", MODULES), symbols or NoSymbols(),
        stack_range=kwargs.pop("stack_range", (STACK, STACK + STACK_SIZE)), **kwargs,
    )


def summary(frames: list[Frame]) -> list[tuple[int, str]]:
    return [(frame.pc, frame.trust) for frame in frames]


# amd64


def test_amd64_rbp_chain_through_modules_until_the_chain_ends():
    memory = stack64(
        o20=STACK + 0x60, o28=0x402345,              # frame 0's record
        o60=STACK + 0xA0, o68=0x7F00_0000_1234,      # frame 1's record
        oA0=0, oA8=0,                                # the chain ends
    )
    frames = walk(amd64(0x401000, STACK, STACK + 0x20), memory)
    assert summary(frames) == [
        (0x401000, "context"), (0x402345, "frame_pointer"), (0x7F00_0000_1234, "frame_pointer"),
    ]
    assert frames[1].context.registers == {
        "rip": 0x402345, "rsp": STACK + 0x30, "rbp": STACK + 0x60,
    }
    assert [f.module for f in frames] == [APP, APP, LIBC]
    assert frames[1].lookup_address == 0x402344


def test_amd64_scan_skips_words_outside_modules():
    memory = stack64(o0=0x12345, o8=STACK + 0x40, o10=0x3FFFFF, o18=0x403000)
    frames = walk(amd64(0x401000, STACK), memory)
    assert summary(frames) == [(0x401000, "context"), (0x403000, "scan")]
    assert frames[1].context.sp == STACK + 0x20
    assert frames[1].context.valid == frozenset({"rip", "rsp"})


def test_amd64_scan_recovers_rbp_pushed_below_the_return_address():
    # The callee pushed rbp at STACK+0x20 just below its return address.
    memory = stack64(o20=STACK + 0x100, o28=0x403000)
    frames = walk(amd64(0x401000, STACK, STACK + 0x20), memory, os="Windows NT")
    assert frames[1].context.registers == {
        "rip": 0x403000, "rsp": STACK + 0x30, "rbp": STACK + 0x100,
    }


def test_scan_looks_further_from_the_context_frame_than_from_a_scanned_one():
    # 100 words up is within the first scan's reach (160), not a later one's (40).
    memory = stack64(o0=0x403000, **{f"o{8 + 100 * 8:x}": 0x404000})
    frames = walk(amd64(0x401000, STACK), memory)
    assert summary(frames) == [(0x401000, "context"), (0x403000, "scan")]

    memory = stack64(**{f"o{100 * 8:x}": 0x404000})
    frames = walk(amd64(0x401000, STACK), memory)
    assert summary(frames) == [(0x401000, "context"), (0x404000, "scan")]


def test_scan_finds_a_return_address_at_the_40th_word_not_the_41st():
    memory = stack64(o0=0x403000, **{f"o{8 + 39 * 8:x}": 0x404000})
    assert walk(amd64(0x401000, STACK), memory)[2].pc == 0x404000
    memory = stack64(o0=0x403000, **{f"o{8 + 40 * 8:x}": 0x404000})
    assert len(walk(amd64(0x401000, STACK), memory)) == 2


def test_amd64_no_rbp_chain_on_windows():
    memory = stack64(o20=STACK + 0x60, o28=0x402345, o30=0x403000)
    frames = walk(amd64(0x401000, STACK, STACK + 0x20), memory, os="Windows NT")
    assert summary(frames)[1] == (0x402345, "scan")   # found by scanning, not the chain
    frames = walk(amd64(0x401000, STACK, STACK + 0x20), memory, os="Linux")
    assert summary(frames)[1] == (0x402345, "frame_pointer")


def test_amd64_rbp_chain_pointing_down_the_stack_is_not_followed():
    # [rbp] points below rbp: the chain would loop, so scanning takes over.
    memory = stack64(o40=STACK + 0x20, o48=0x402345, o20=STACK + 0x40, o28=0x402222)
    frames = walk(amd64(0x401000, STACK + 0x10, STACK + 0x40), memory)
    assert [trust for _, trust in summary(frames)[1:]] == ["scan"] * (len(frames) - 1)
    assert [frame.pc for frame in frames[1:]] == [0x402222, 0x402345]


def test_amd64_non_canonical_return_address_is_not_a_frame():
    memory = stack64(o20=STACK + 0x60, o28=0x0000_8000_0000_0000, o30=0x403000)
    frames = walk(amd64(0x401000, STACK, STACK + 0x20), memory)
    assert summary(frames)[1] == (0x403000, "scan")


def test_max_frames_cuts_a_long_chain():
    records = {}
    for index in range(10):
        at = 0x20 + index * 0x40
        records[f"o{at:x}"] = STACK + at + 0x40
        records[f"o{at + 8:x}"] = 0x402000 + index
    frames = walk(amd64(0x401000, STACK, STACK + 0x20), stack64(**records), max_frames=4)
    assert [frame.pc for frame in frames] == [0x401000, 0x402000, 0x402001, 0x402002]
    assert MAX_FRAMES == 1024


def test_unreadable_memory_ends_the_walk_at_frame_0():
    context = amd64(0x401000, STACK, STACK + 0x20)
    assert summary(walk(context, None)) == [(0x401000, "context")]
    assert summary(walk(context, FakeMemory())) == [(0x401000, "context")]
    # Registers at the top of the address space: no read wraps around.
    top = amd64(0x401000, 2**64 - 8, 2**64 - 8)
    assert summary(walk(top, stack64(), stack_range=None)) == [(0x401000, "context")]


def test_reads_stay_inside_the_stack_range():
    memory = FakeMemory((STACK, STACK_SIZE), (0x10_0000, 0x1000))
    memory.put(0x10_0000, 0x403000, 8)   # a code address outside the stack
    context = amd64(0x401000, 0x10_0000)
    assert len(walk(context, memory)) == 1
    assert summary(walk(context, memory, stack_range=None))[1] == (0x403000, "scan")


def test_caller_stack_pointer_outside_the_stack_ends_the_walk():
    symbols = FakeSymbols(cfi={0x401000: {"rip": 0x402000, "rsp": STACK + STACK_SIZE + 8}})
    assert len(walk(amd64(0x401000, STACK), stack64(), symbols)) == 1


def test_null_pc_ends_the_walk():
    memory = stack64(o20=STACK + 0x60, o28=0x10, o60=STACK + 0xA0)
    assert len(walk(amd64(0x401000, STACK, STACK + 0x20), memory)) == 1


# CFI


def test_cfi_caller_keeps_recovered_and_callee_saved_registers():
    symbols = FakeSymbols(
        functions={(0x401000, 0x401100): "crash", (0x402000, 0x402100): "main"},
        cfi={0x401010: {"rip": 0x402050, "rsp": STACK + 0x40, "rbx": 0xB0B}},
    )
    frames = walk(amd64(0x401010, STACK, STACK + 0x20, r13=0x1313), stack64(), symbols)
    assert summary(frames) == [(0x401010, "context"), (0x402050, "cfi")]
    caller = frames[1].context
    assert caller.registers == {
        "rip": 0x402050, "rsp": STACK + 0x40, "rbx": 0xB0B,
        "rbp": STACK + 0x20, "r12": 0x1212, "r13": 0x1313,
    }
    assert caller.as_json() == {
        "rbx": "0x0000000000000b0b", "rbp": "0x000000007ffd0020",
        "rsp": "0x000000007ffd0040", "r12": "0x0000000000001212",
        "r13": "0x0000000000001313", "rip": "0x0000000000402050",
    }
    assert symbols.seen == [0x401010, 0x40204F]
    assert [(f.function, f.function_offset) for f in frames] == [("crash", 0x10), ("main", 0x4F)]


def test_cfi_is_asked_before_frame_pointers_and_scanning():
    memory = stack64(o20=STACK + 0x60, o28=0x402345)
    symbols = FakeSymbols(cfi={0x401000: {"rip": 0x7F00_0000_5000, "rsp": STACK + 0x8}})
    frames = walk(amd64(0x401000, STACK, STACK + 0x20), memory, symbols)
    assert summary(frames)[1] == (0x7F00_0000_5000, "cfi")


def test_cfi_without_pc_or_sp_falls_back_to_frame_pointers():
    memory = stack64(o20=STACK + 0x60, o28=0x402345)
    symbols = FakeSymbols(cfi={0x401000: {"rbx": 1}})
    assert summary(walk(amd64(0x401000, STACK, STACK + 0x20), memory, symbols))[1] == (
        0x402345, "frame_pointer",
    )


def test_cfi_named_by_rule_names_cfa_and_ra():
    symbols = FakeSymbols(cfi={0x401000: {".cfa": STACK + 0x10, ".ra": 0x402000}})
    frames = walk(amd64(0x401000, STACK), stack64(), symbols)
    assert frames[1].context.registers == {
        "rip": 0x402000, "rsp": STACK + 0x10, "rbx": 0x1111, "r12": 0x1212,
    }


def test_stack_pointer_must_grow():
    # CFI claiming a caller lower on the stack, or at the same place twice.
    down = FakeSymbols(cfi={0x401000: {"rip": 0x402000, "rsp": STACK}})
    assert len(walk(amd64(0x401000, STACK + 0x10), stack64(), down)) == 1
    same = FakeSymbols(cfi={
        0x401000: {"rip": 0x402000, "rsp": STACK + 0x10},    # first step: may stay
        0x401FFF: {"rip": 0x403000, "rsp": STACK + 0x10},    # later: must grow
    })
    frames = walk(amd64(0x401000, STACK + 0x10), stack64(), same)
    assert summary(frames) == [(0x401000, "context"), (0x402000, "cfi")]


def test_first_step_must_change_pc_when_the_stack_pointer_stays():
    symbols = FakeSymbols(cfi={0x401000: {"rip": 0x401000, "rsp": STACK}})
    assert len(walk(amd64(0x401000, STACK), stack64(), symbols)) == 1


def test_scan_with_symbols_accepts_only_addresses_inside_functions():
    symbols = FakeSymbols(functions={(0x402000, 0x402100): "main"})
    memory = stack64(o0=0x403000, o8=0x402010)
    frames = walk(amd64(0x401000, STACK), memory, symbols)
    assert summary(frames) == [(0x401000, "context"), (0x402010, "scan")]
    assert frames[1].function == "main"


# x86


def x86(eip: int, esp: int, ebp: int) -> Context:
    return Context("x86", {"eip": eip, "esp": esp, "ebp": ebp, "ebx": 7, "eax": 0x45})


def stack32(**words: int) -> FakeMemory:
    memory = FakeMemory((STACK, STACK_SIZE))
    for key, value in words.items():
        memory.put(STACK + int(key[1:], 16), value, 4)
    return memory


def test_x86_ebp_chain_with_four_byte_words():
    memory = stack32(o10=STACK + 0x30, o14=0x402000, o30=STACK + 0x50, o34=0x7C81_6FD7)
    kernel32 = module("kernel32.dll", 0x7C80_0000, 0xF4000)
    frames = walk(x86(0x40429E, STACK, STACK + 0x10), memory,
                  modules=FakeModules(APP, kernel32), os="Windows NT")
    assert summary(frames)[:3] == [
        (0x40429E, "context"), (0x402000, "frame_pointer"), (0x7C81_6FD7, "frame_pointer"),
    ]
    assert frames[1].context.registers == {
        "eip": 0x402000, "esp": STACK + 0x18, "ebp": STACK + 0x30,
    }
    assert frame_json(frames[2], 2, include_registers=False) == {
        "file": None, "frame": 2, "function": None, "function_offset": None,
        "inlines": None, "line": None, "missing_symbols": True,
        "module": "kernel32.dll", "module_offset": "0x00016fd6", "offset": "0x7c816fd6",
        "trust": "frame_pointer", "unloaded_modules": None,
    }


def test_x86_ebp_loop_stops():
    memory = stack32(o10=STACK + 0x10, o14=0x402000)
    frames = walk(x86(0x401000, STACK, STACK + 0x10), memory)
    assert summary(frames) == [(0x401000, "context"), (0x402000, "frame_pointer")]


def test_x86_scan_when_ebp_is_unreadable_recovers_the_pushed_ebp():
    memory = stack32(o0=0x99, o4=STACK + 0x40, o8=0x403000)
    frames = walk(x86(0x401000, STACK, 0x10), memory)
    assert frames[1].trust == "scan"
    assert frames[1].context.registers == {"eip": 0x403000, "esp": STACK + 0xC, "ebp": STACK + 0x40}


# arm64

LIBXUL = module("libxul.so", 0x7000_0000_0000, 0x100_0000)


def arm64(pc: int, sp: int, fp: int, lr: int) -> Context:
    return Context("arm64", {"pc": pc, "sp": sp, "fp": fp, "lr": lr, "x19": 19, "x0": 1})


def walk64(context: Context, memory: FakeMemory, **kwargs) -> list[Frame]:
    return walk(context, memory, modules=FakeModules(LIBXUL, APP), os="Android", **kwargs)


def test_arm64_leaf_frame_0_returns_through_lr():
    # fp is the caller's record: its saved lr is the grand-caller, not lr.
    memory = stack64(o40=STACK + 0x80, o48=0x7000_0000_3000, o80=0, o88=0)
    frames = walk64(arm64(0x7000_0000_1000, STACK + 0x10, STACK + 0x40, 0x7000_0000_2004), memory)
    assert summary(frames) == [
        (0x7000_0000_1000, "context"),
        (0x7000_0000_2004, "frame_pointer"),
        (0x7000_0000_3000, "frame_pointer"),
    ]
    assert frames[1].context.sp == STACK + 0x10          # a leaf leaves sp alone
    assert frames[1].lookup_address == 0x7000_0000_2000


def test_arm64_frame_with_its_own_record_skips_lr():
    memory = stack64(o40=STACK + 0x80, o48=0x7000_0000_2004, o80=0, o88=0x7000_0000_3000)
    frames = walk64(arm64(0x7000_0000_1000, STACK + 0x10, STACK + 0x40, 0x7000_0000_2004), memory)
    assert [frame.pc for frame in frames] == [0x7000_0000_1000, 0x7000_0000_2004, 0x7000_0000_3000]
    assert frames[1].context.registers == {
        "pc": 0x7000_0000_2004, "sp": STACK + 0x50, "fp": STACK + 0x80, "lr": 0x7000_0000_3000,
    }


def test_arm64_strips_pointer_authentication_bits():
    signed = 0x002D_7000_0000_2004
    memory = stack64(o40=0, o48=signed)
    frames = walk64(arm64(0x7000_0000_1000, STACK + 0x10, STACK + 0x40, 0), memory)
    assert summary(frames)[1] == (0x7000_0000_2004, "frame_pointer")


def test_arm64_chain_ends_at_a_zero_frame_pointer():
    memory = stack64(o40=0, o48=0x7000_0000_2004, o58=0x7000_0000_5000)
    frames = walk64(arm64(0x7000_0000_1000, STACK + 0x10, STACK + 0x40, 0), memory)
    assert summary(frames) == [(0x7000_0000_1000, "context"), (0x7000_0000_2004, "frame_pointer")]


def test_arm64_chain_ends_at_a_record_without_return_address():
    memory = stack64(o40=STACK + 0x60, o48=0x7000_0000_2004, o60=0, o68=0, o78=0x7000_0000_5000)
    frames = walk64(arm64(0x7000_0000_1000, STACK + 0x10, STACK + 0x40, 0), memory)
    assert [frame.pc for frame in frames] == [0x7000_0000_1000, 0x7000_0000_2004]


def test_arm64_saved_fp_off_the_stack_keeps_the_frame_then_scans_above_it():
    # x29 in the caller holds no stack address (code using it for something else):
    # the return address stands, the caller's fp is unknown, scanning goes on.
    memory = stack64(o40=0x6F51_1338, o48=0x7000_0000_2004, o50=0x99, o58=0x7000_0000_5000)
    frames = walk64(arm64(0x7000_0000_1000, STACK + 0x10, STACK + 0x40, 0), memory)
    assert summary(frames) == [
        (0x7000_0000_1000, "context"),
        (0x7000_0000_2004, "frame_pointer"),
        (0x7000_0000_5000, "scan"),
    ]
    assert frames[1].context.registers == {"pc": 0x7000_0000_2004, "sp": STACK + 0x50}


def test_arm64_frame_0_with_fp_off_the_stack_does_not_trust_lr():
    memory = stack64(o18=0x7000_0000_3000)
    frames = walk64(arm64(0x7000_0000_1000, STACK + 0x10, 0x1234_5670, 0x7000_0000_2004), memory)
    assert summary(frames) == [(0x7000_0000_1000, "context"), (0x7000_0000_3000, "scan")]


def test_arm64_cfi_registers_by_rule_names():
    symbols = FakeSymbols(
        symbolized=("libxul.so",),
        cfi={0x7000_0000_1000: {
            ".cfa": STACK + 0x20, ".ra": 0x7000_0000_2004, "x29": STACK + 0x90,
        }},
    )
    frames = walk64(arm64(0x7000_0000_1000, STACK + 0x10, STACK + 0x40, 0), stack64(),
                    symbols=symbols)
    assert frames[1].trust == "cfi"
    assert frames[1].context.registers == {
        "pc": 0x7000_0000_2004, "sp": STACK + 0x20, "fp": STACK + 0x90, "x19": 19,
    }


def test_arm64_frame_json_pads_to_64_bits():
    memory = stack64(o40=0, o48=0x7000_0000_2004)
    frames = walk64(arm64(0x7000_0000_1000, STACK + 0x10, STACK + 0x40, 0), memory)
    data = frame_json(frames[1], 1, include_registers=True)
    assert data["offset"] == "0x0000700000002000"
    assert data["module_offset"] == "0x0000000000002000"
    assert data["registers"]["pc"] == "0x0000700000002004"
    assert list(data) == [
        "file", "frame", "function", "function_offset", "inlines", "line",
        "missing_symbols", "module", "module_offset", "offset", "registers", "trust",
        "unloaded_modules",
    ]


# arm


def arm(pc: int, sp: int, lr: int, **registers: int) -> Context:
    return Context("arm", {"pc": pc, "sp": sp, "lr": lr, **registers})


def test_arm_ios_r7_chain():
    memory = stack32(o20=STACK + 0x40, o24=0x402001, o40=0, o44=0x403001)
    context = arm(0x401000, STACK, lr=0x402001, r7=STACK + 0x20)   # not a leaf: lr saved
    frames = walk(context, memory, os="iOS")
    assert summary(frames) == [
        (0x401000, "context"), (0x402001, "frame_pointer"), (0x403001, "frame_pointer"),
    ]
    assert frames[1].lookup_address == 0x401FFF
    assert frames[1].context.registers == {
        "pc": 0x402001, "sp": STACK + 0x28, "r7": STACK + 0x40, "lr": 0x403001,
    }


def test_arm_r11_chain_elsewhere_must_land_in_a_module():
    memory = stack32(o20=STACK + 0x40, o24=0x402001, o40=STACK + 0x60, o44=0x12345, o60=0)
    context = arm(0x401000, STACK, lr=0, fp=STACK + 0x20)
    frames = walk(context, memory, os="Android")
    # Frame 2's return address lies in no module: the chain stops being trusted and
    # scanning finds nothing else.
    assert summary(frames) == [(0x401000, "context"), (0x402001, "frame_pointer")]


def test_arm_leaf_frame_0_then_scan():
    memory = stack32(o8=0x403001)
    frames = walk(arm(0x401000, STACK, lr=0x402001), memory, os="Android")
    assert summary(frames) == [
        (0x401000, "context"), (0x402001, "frame_pointer"), (0x403001, "scan"),
    ]


# frames and JSON


def test_unloaded_modules_name_a_pc_no_loaded_module_holds():
    gone = [
        UnloadedModule(base=0x500000, size=0x1000, code_file="plugin.dll", code_id=None),
        UnloadedModule(base=0x500800, size=0x1000, code_file="old.dll", code_id=None),
    ]
    frames = walk(amd64(0x500810, STACK), stack64(), unloaded_modules=gone)
    assert frames[0].module is None
    data = frame_json(frames[0], 0, include_registers=False)
    assert data["module"] is None and data["module_offset"] is None
    assert data["unloaded_modules"] == [
        {"module": "old.dll", "offsets": ["0x0000000000000010"]},
        {"module": "plugin.dll", "offsets": ["0x0000000000000810"]},
    ]


def test_frame_json_with_symbols_and_inlines():
    frame = Frame(
        context=Context("amd64", {"rip": 0x402050, "rsp": STACK}, frozenset({"rip", "rsp"})),
        trust="cfi", module=APP, function="main", function_base=0x402000,
        file="src/main.c", line=42,
        inlines=[{"function": "helper", "file": "src/helper.h", "line": 7}],
    )
    assert frame_json(frame, 3, include_registers=True) == {
        "file": "src/main.c", "frame": 3, "function": "main",
        "function_offset": "0x000000000000004f",
        "inlines": [{"file": "src/helper.h", "function": "helper", "line": 7}],
        "line": 42, "missing_symbols": False, "module": "app",
        "module_offset": "0x000000000000204f", "offset": "0x000000000040204f",
        "registers": {"rsp": "0x000000007ffd0000", "rip": "0x0000000000402050"},
        "trust": "cfi", "unloaded_modules": None,
    }


@pytest.mark.parametrize("cpu", ["ppc", "mips"])
def test_unknown_cpu_gives_frame_0_only(cpu):
    context = Context(cpu, {})
    frames = walk_stack(context, stack64(), MODULES, NoSymbols())
    assert len(frames) == 1 and frames[0].trust == "context"


class SizedSymbols(FakeSymbols):
    """A provider that also knows parameter sizes (as STACK WIN records give them)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.sizes_given: list[tuple[int, int]] = []

    def parameter_size(self, module: Module, frame: Frame) -> int:
        return 0x10 if frame.lookup_address < 0x402000 else 0x4

    def walk_frame(self, module, frame, memory, grand_callee_parameter_size=0):
        self.sizes_given.append((frame.lookup_address, grand_callee_parameter_size))
        # The provider reads the stack through the memory it is handed.
        assert memory.read_pointer(STACK + 0x40, 4) == 0x12345678
        return super().walk_frame(module, frame, memory)


def test_cfi_provider_learns_the_grand_callees_parameter_size():
    symbols = SizedSymbols(cfi={
        0x401000: {"eip": 0x402010, "esp": STACK + 0x10},
        0x40200F: {"eip": 0x403010, "esp": STACK + 0x20},
    })
    memory = stack32(o40=0x12345678)
    frames = walk(x86(0x401000, STACK, 0x10), memory, symbols)
    assert summary(frames) == [(0x401000, "context"), (0x402010, "cfi"), (0x403010, "cfi")]
    assert symbols.sizes_given == [(0x401000, 0), (0x40200F, 0x10), (0x40300F, 0x4)]
