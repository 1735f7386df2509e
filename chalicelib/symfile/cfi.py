"""Evaluate call frame information: the caller's registers from the callee's.

STACK CFI rules are postfix expressions per register, e.g.
`.cfa: $rsp 8 + .ra: .cfa -8 + ^ $rbp: .cfa -16 + ^`: `.cfa` (the canonical frame
address) becomes the caller's stack pointer, `.ra` its pc, and every other rule one
callee-saved register. `^` reads a pointer-sized value from the stack.

STACK WIN programs (32-bit Windows) assign variables instead:
`$T0 $ebp = $eip $T0 4 + ^ = ...`; FPO records without a program are walked from
their frame sizes.

Every failure (unknown register, unreadable memory, division by zero, a malformed
expression) answers None, never an exception.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import NamedTuple

from chalicelib.processing.context import PC, POINTER_SIZE, REGISTER_NAMES, SP

ReadPointer = Callable[[int], "int | None"]

# Register names in rules that the context calls otherwise.
_ALIASES: dict[str, dict[str, str]] = {
    "arm64": {"x29": "fp", "x30": "lr", "x31": "sp", "w29": "fp", "w30": "lr"},
    "arm": {"r11": "fp", "r13": "sp", "r14": "lr", "r15": "pc"},
}
_WIN_OUTPUT = ("$eip", "$esp", "$ebp", "$ebx", "$esi", "$edi")


def register_name(cpu: str, name: str) -> str:
    """A rule's register name as context.py spells it ("$x29" on arm64 -> "fp")."""
    name = name.lstrip("$")
    return _ALIASES.get(cpu, {}).get(name, name)


def parse_rules(text: str) -> dict[str, list[str]] | None:
    """`reg: tokens... reg: tokens...` as {reg: tokens}; None when malformed.

    Register keys are as written (".cfa", ".ra", "$rbp", "x29").
    """
    rules: dict[str, list[str]] = {}
    current: list[str] | None = None
    for op in text.split():
        if op.endswith(":"):
            if current is not None and not current:
                return None
            current = []
            rules[op[:-1]] = current
        elif current is None:
            return None
        else:
            current.append(op)
    if current is not None and not current:
        return None
    return rules


def rules_at(init: str, deltas: Iterable[tuple[int, str]],
             address: int) -> dict[str, list[str]] | None:
    """The rules in force at `address`: the INIT rules updated by each delta at or before
    it, in address order. None when any of them is malformed."""
    rules = parse_rules(init)
    if rules is None:
        return None
    for delta_address, text in sorted(deltas, key=lambda d: d[0]):
        if delta_address > address:
            break
        update = parse_rules(text)
        if update is None:
            return None
        rules.update(update)
    return rules


def _eval_postfix(ops: list[str], cpu: str, registers: Mapping[str, int],
                  read_pointer: ReadPointer, cfa: int | None, mask: int) -> int | None:
    stack: list[int] = []
    for op in ops:
        if op in _BINARY:
            if len(stack) < 2:
                return None
            rhs = stack.pop()
            lhs = stack.pop()
            value = _BINARY[op](lhs, rhs)
            if value is None:
                return None
            stack.append(value & mask)
        elif op == "^":
            if not stack:
                return None
            value = read_pointer(stack.pop())
            if value is None:
                return None
            stack.append(value & mask)
        elif op == ".cfa":
            if cfa is None:
                return None
            stack.append(cfa)
        elif op == ".undef":
            return None
        else:
            number = _parse_int(op)
            if number is None:
                reg = registers.get(register_name(cpu, op))
                if reg is None:
                    return None
                number = reg
            stack.append(number & mask)
    return stack[0] if len(stack) == 1 else None


def _parse_int(op: str) -> int | None:
    body = op[1:] if op[:1] in "+-" else op
    if not body.isdigit() or not body.isascii():
        return None
    return int(op)


def _align(lhs: int, rhs: int) -> int | None:
    if rhs <= 0 or rhs & (rhs - 1):
        return None
    return lhs & ~(rhs - 1)


_BINARY: dict[str, Callable[[int, int], int | None]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a // b if b else None,
    "%": lambda a, b: a % b if b else None,
    "@": _align,
}


def evaluate_cfi(rules: Mapping[str, list[str]], cpu: str, registers: Mapping[str, int],
                 read_pointer: ReadPointer) -> dict[str, int] | None:
    """The caller's registers under `rules`, given the callee's valid `registers`
    (context.py names) and a reader of pointer-sized memory.

    .cfa and .ra must both evaluate; another register whose rule fails is left out.
    Registers the CPU does not have are left out.
    """
    if cpu not in POINTER_SIZE or ".cfa" not in rules or ".ra" not in rules:
        return None
    mask = (1 << (8 * POINTER_SIZE[cpu])) - 1
    cfa = _eval_postfix(rules[".cfa"], cpu, registers, read_pointer, None, mask)
    if cfa is None:
        return None
    ra = _eval_postfix(rules[".ra"], cpu, registers, read_pointer, cfa, mask)
    if ra is None:
        return None
    known = REGISTER_NAMES[cpu]
    caller: dict[str, int] = {}
    for reg, ops in rules.items():
        if reg in (".cfa", ".ra"):
            continue
        name = register_name(cpu, reg)
        if name not in known:
            continue
        value = _eval_postfix(ops, cpu, registers, read_pointer, cfa, mask)
        if value is not None:
            caller[name] = value
    caller[SP[cpu]] = cfa
    caller[PC[cpu]] = ra
    return caller


class WinFrame(NamedTuple):
    """The sizes a STACK WIN record gives for one function (bytes)."""

    parameter_size: int
    saved_register_size: int
    local_size: int


_U32 = 0xFFFFFFFF


def _win_int(op: str | int | None, variables: Mapping[str, int]) -> int | None:
    if isinstance(op, int):
        return op
    if op is None:
        return None
    return variables.get(op)


def evaluate_win_program(program: str, frame: WinFrame, registers: Mapping[str, int],
                         read_u32: ReadPointer, grand_callee_parameter_size: int = 0,
                         ) -> dict[str, int] | None:
    """The caller's eip, esp, ebp (and ebx, esi, edi where known) from a STACK WIN
    program string and the callee's registers (x86 names, without "$").

    `.raSearch`/`.raSearchStart` is where the return address is expected: past the
    callee's locals, saved registers and the parameters it pushed for its own callee
    (`grand_callee_parameter_size`), or just above the saved ebp when the program
    aligns with `@`.
    """
    esp, ebp = registers.get("esp"), registers.get("ebp")
    if esp is None or ebp is None:
        return None
    variables: dict[str, int] = {"$esp": esp & _U32, "$ebp": ebp & _U32}
    if "ebx" in registers:
        variables["$ebx"] = registers["ebx"] & _U32
    if "@" in program:
        search_start = ebp + 4
    else:
        search_start = esp + frame.local_size + frame.saved_register_size
        search_start += grand_callee_parameter_size
    variables.update({
        ".cbParams": frame.parameter_size,
        ".cbCalleeParams": grand_callee_parameter_size,
        ".cbSavedRegs": frame.saved_register_size,
        ".cbLocals": frame.local_size,
        ".raSearch": search_start & _U32,
        ".raSearchStart": search_start & _U32,
    })
    ops: list[str] = []
    for word in program.split():
        if word.startswith("=") and len(word) > 1:
            ops += ["=", word[1:]]
        else:
            ops.append(word)
    undef = object()
    stack: list[str | int | object] = []
    for op in ops:
        if op in _BINARY:
            if len(stack) < 2:
                return None
            rhs = _win_int(stack.pop(), variables)  # type: ignore[arg-type]
            lhs = _win_int(stack.pop(), variables)  # type: ignore[arg-type]
            value = None if lhs is None or rhs is None else _BINARY[op](lhs, rhs)
            if value is None:
                return None
            stack.append(value & _U32)
        elif op == "=":
            if len(stack) < 2:
                return None
            rhs_op = stack.pop()
            target = stack.pop()
            if not isinstance(target, str):
                return None
            if rhs_op is undef:
                variables.pop(target, None)
                continue
            value = _win_int(rhs_op, variables)  # type: ignore[arg-type]
            if value is None:
                return None
            variables[target] = value
        elif op == "^":
            if not stack:
                return None
            address = _win_int(stack.pop(), variables)  # type: ignore[arg-type]
            value = None if address is None else read_u32(address)
            if value is None:
                return None
            stack.append(value & _U32)
        elif op == ".undef":
            stack.append(undef)
        elif op[0] in "$.":
            stack.append(op)
        else:
            number = _parse_int(op)
            if number is None:
                return None
            stack.append(number & _U32)
    return {reg[1:]: variables[reg] for reg in _WIN_OUTPUT if reg in variables}


def walk_win_fpo(frame: WinFrame, allocates_base_pointer: bool, registers: Mapping[str, int],
                 read_u32: ReadPointer, is_context_frame: bool,
                 grand_callee_parameter_size: int = 0) -> dict[str, int] | None:
    """The caller's eip, esp, ebp from an FPO record (STACK WIN type 0, no program):
    the return address sits right above the callee's locals and saved registers."""
    esp, eip = registers.get("esp"), registers.get("eip")
    if esp is None or eip is None:
        return None
    frame_size = frame.local_size + frame.saved_register_size + grand_callee_parameter_size
    eip_address = esp + frame_size
    caller_eip = read_u32(eip_address)
    if caller_eip is None:
        return None
    if is_context_frame and caller_eip == eip:
        eip_address += 4
        caller_eip = read_u32(eip_address)
        if caller_eip is None:
            return None
    caller: dict[str, int] = {"eip": caller_eip, "esp": (eip_address + 4) & _U32}
    if allocates_base_pointer:
        ebp_address = esp + grand_callee_parameter_size + frame.saved_register_size - 8
        caller_ebp = read_u32(ebp_address & _U32)
        if caller_ebp is None:
            return None
    else:
        if registers.get("ebp") is None:
            return None
        caller_ebp = registers["ebp"]
        if "ebx" in registers:
            caller["ebx"] = registers["ebx"]
    caller["ebp"] = caller_ebp
    return caller
