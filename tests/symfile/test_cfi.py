import pytest

from chalicelib.symfile import cfi


def reader(words):
    """A pointer reader over {address: value}; other addresses are unreadable."""
    return lambda address: words.get(address)


def test_parse_rules():
    assert cfi.parse_rules(".cfa: $rsp 8 + .ra: .cfa -8 + ^ $rbp: .cfa -16 + ^") == {
        ".cfa": ["$rsp", "8", "+"], ".ra": [".cfa", "-8", "+", "^"],
        "$rbp": [".cfa", "-16", "+", "^"],
    }


@pytest.mark.parametrize("text", ["$rsp 8 +", ".cfa: .ra: .cfa -8 + ^", ".cfa:"])
def test_parse_rules_malformed(text):
    assert cfi.parse_rules(text) is None


def test_rules_at_applies_deltas_up_to_the_address():
    init = ".cfa: $rsp 8 + .ra: .cfa -8 + ^"
    deltas = [(0x1004, ".cfa: $rsp 24 + $rbx: .cfa -24 + ^"), (0x1001, ".cfa: $rsp 16 +")]
    assert cfi.rules_at(init, deltas, 0x1000)[".cfa"] == ["$rsp", "8", "+"]
    assert cfi.rules_at(init, deltas, 0x1003)[".cfa"] == ["$rsp", "16", "+"]
    at_end = cfi.rules_at(init, deltas, 0x1010)
    assert at_end[".cfa"] == ["$rsp", "24", "+"]
    assert at_end["$rbx"] == [".cfa", "-24", "+", "^"]
    assert at_end[".ra"] == [".cfa", "-8", "+", "^"]
    assert cfi.rules_at(init, [(0x1001, "bad")], 0x1002) is None


def test_amd64_frame_pointer_rules():
    rules = cfi.parse_rules(".cfa: $rbp 16 + .ra: .cfa -8 + ^ $rbp: .cfa -16 + ^ "
                            "$rbx: .cfa -24 + ^")
    memory = {0x7FF0: 0x1111, 0x7FF8: 0x2222, 0x8000: 0x55_5000_1234}
    caller = cfi.evaluate_cfi(rules, "amd64", {"rsp": 0x7F00, "rbp": 0x7FF8}, reader(memory))
    assert caller == {"rsp": 0x8008, "rip": 0x55_5000_1234, "rbp": 0x2222, "rbx": 0x1111}


def test_arm64_register_names():
    rules = cfi.parse_rules(".cfa: x29 16 + .ra: .cfa -8 + ^ x29: .cfa -16 + ^ x19: $x19")
    memory = {0x1000: 0xAAAA, 0x1008: 0x1_0000_4000}
    caller = cfi.evaluate_cfi(rules, "arm64", {"fp": 0x1000, "sp": 0xF00, "x19": 7},
                              reader(memory))
    assert caller == {"sp": 0x1010, "pc": 0x1_0000_4000, "fp": 0xAAAA, "x19": 7}


def test_arm_register_names():
    rules = cfi.parse_rules(".cfa: r13 8 + .ra: .cfa -4 + ^ r11: .cfa -8 + ^")
    caller = cfi.evaluate_cfi(rules, "arm", {"sp": 0x100},
                              reader({0x104: 0x8000, 0x100: 0x200}))
    assert caller == {"sp": 0x108, "pc": 0x8000, "fp": 0x200}


def test_x86_arithmetic_wraps_at_32_bits():
    rules = cfi.parse_rules(".cfa: $esp 4 - .ra: $eip 2 *")
    caller = cfi.evaluate_cfi(rules, "x86", {"esp": 0, "eip": 0x80000001}, reader({}))
    assert caller == {"esp": 0xFFFFFFFC, "eip": 2}


@pytest.mark.parametrize("expr, value", [
    ("7 3 -", 4), ("7 3 *", 21), ("7 2 /", 3), ("7 4 %", 3), ("23 8 @", 16),
    ("0 1 -", 0xFFFFFFFFFFFFFFFF), ("-8 0 +", 0xFFFFFFFFFFFFFFF8), ("$rsp", 0x40),
])
def test_operators(expr, value):
    rules = cfi.parse_rules(f".cfa: {expr} .ra: 1")
    assert cfi.evaluate_cfi(rules, "amd64", {"rsp": 0x40}, reader({}))["rsp"] == value


@pytest.mark.parametrize("text", [
    ".cfa: $rsp 0 / .ra: 1",            # division by zero
    ".cfa: $rsp 0 % .ra: 1",
    ".cfa: $rsp 3 @ .ra: 1",            # alignment not a power of two
    ".cfa: + .ra: 1",                   # stack underflow
    ".cfa: $rsp ^ .ra: 1",              # unreadable memory
    ".cfa: ^ .ra: 1",
    ".cfa: $rsp 8 .ra: 1",              # two values left
    ".cfa: $xmm9 .ra: 1",               # unknown register
    ".cfa: $rsp .ra: .undef",
    ".cfa: .cfa .ra: 1",                # .cfa defined by itself
    ".cfa: $rsp 8 +",                   # no .ra
    ".ra: 1",                           # no .cfa
    ".cfa: 12abc .ra: 1",
])
def test_failures_answer_none(text):
    rules = cfi.parse_rules(text)
    assert cfi.evaluate_cfi(rules, "amd64", {"rsp": 0x40}, reader({})) is None


def test_a_failing_register_rule_drops_only_that_register():
    rules = cfi.parse_rules(".cfa: $rsp 8 + .ra: 5 $rbx: $r99 $rbp: .cfa ^ $xmm0: 1 $r12: 3")
    assert cfi.evaluate_cfi(rules, "amd64", {"rsp": 0x40}, reader({})) == {
        "rsp": 0x48, "rip": 5, "r12": 3}


def test_unknown_cpu():
    assert cfi.evaluate_cfi({".cfa": ["1"], ".ra": ["1"]}, "mips", {}, reader({})) is None


def stack(base, words):
    memory = {}
    for i, word in enumerate(words):
        memory[base + 4 * i] = word
    return reader(memory)


WIN = cfi.WinFrame(parameter_size=16, saved_register_size=12, local_size=24)


def test_win_program_frame_pointer():
    program = "$T0 $ebp = $eip $T0 4 + ^ = $ebp $T0 ^ = $esp $T0 8 + ="
    caller = cfi.evaluate_win_program(program, WIN, {"esp": 0x1000, "ebp": 0x1100},
                                      stack(0x1100, [0xFA1EF2E6, 0xB3EF04CE]))
    assert caller == {"eip": 0xB3EF04CE, "esp": 0x1108, "ebp": 0xFA1EF2E6}


def test_win_program_ra_search_start():
    program = "$T2 $esp .cbLocals + .cbSavedRegs + = $T0 .raSearchStart = $eip $T0 ^ = " \
              "$esp $T0 4 + ="
    # raSearchStart = esp + locals + saved registers + the grand callee's parameters
    ra_at = 0x1000 + 24 + 12 + 8
    caller = cfi.evaluate_win_program(program, WIN, {"esp": 0x1000, "ebp": 0x5000, "ebx": 3},
                                      stack(ra_at, [0x401234]), grand_callee_parameter_size=8)
    assert caller == {"eip": 0x401234, "esp": ra_at + 4, "ebp": 0x5000, "ebx": 3}


def test_win_program_aligned_frame_searches_above_ebp():
    program = "$T1 .raSearch = $T0 $T1 4 - 8 @ = $eip $T1 ^ = $esp $T1 4 + = $ebp $T1 4 - ^ ="
    caller = cfi.evaluate_win_program(program, WIN, {"esp": 0x1000, "ebp": 0x2000},
                                      stack(0x2000, [0x2500, 0x401000]))
    assert caller == {"eip": 0x401000, "esp": 0x2008, "ebp": 0x2500}


def test_win_program_operators_and_undef():
    regs = {"esp": 32, "ebp": 1600}
    assert cfi.evaluate_win_program("$esp 5 3 - = $ebp -4 2 * =", WIN, regs, stack(0, [])) == {
        "esp": 2, "ebp": 0xFFFFFFF8}
    assert cfi.evaluate_win_program("$esp 161 8 @ = $ebp 7 2 % =", WIN, regs, stack(0, [])) == {
        "esp": 160, "ebp": 1}
    assert cfi.evaluate_win_program("$esp .undef = $ebp .undef =", WIN, regs,
                                    stack(0, [])) == {}
    assert cfi.evaluate_win_program("", WIN, regs, stack(0, [])) == {"esp": 32, "ebp": 1600}
    assert cfi.evaluate_win_program("$esp $ebp =$ebp 8 =", WIN, regs, stack(0, [])) == {
        "esp": 1600, "ebp": 8}


@pytest.mark.parametrize("program", [
    "$esp 1 0 / =", "$esp 1 0 % =", "$esp 1 3 @ =", "1 +", "^", "=", "$esp =",
    "4 5 =", "$esp $T9 =", "$esp 4 ^ =", "$esp 1x =", "$eip $esp + =",
])
def test_win_program_failures(program):
    regs = {"esp": 32, "ebp": 1600}
    assert cfi.evaluate_win_program(program, WIN, regs, stack(0x2000, [1])) is None


def test_win_program_needs_esp_and_ebp():
    assert cfi.evaluate_win_program("", WIN, {"esp": 4}, stack(0, [])) is None


def test_fpo_without_base_pointer():
    words = [0] * 9 + [0x401500]    # the return address past locals and saved registers
    caller = cfi.walk_win_fpo(WIN, False, {"esp": 0x1000, "eip": 0x401000, "ebp": 0x77,
                                            "ebx": 9}, stack(0x1000, words), False)
    assert caller == {"eip": 0x401500, "esp": 0x1000 + 40, "ebp": 0x77, "ebx": 9}


def test_fpo_with_base_pointer_and_the_context_frame_skip():
    # In the context frame a copy of eip at the expected place is skipped.
    words = [0, 0xEB0, 0, 0, 0, 0, 0, 0, 0, 0x401000, 0x402000]
    caller = cfi.walk_win_fpo(WIN, True, {"esp": 0x1000, "eip": 0x401000, "ebp": 0},
                              stack(0x1000, words), True)
    assert caller == {"eip": 0x402000, "esp": 0x1000 + 44, "ebp": 0xEB0}
    assert cfi.walk_win_fpo(WIN, True, {"esp": 0x1000, "eip": 1}, stack(0, []), True) is None
