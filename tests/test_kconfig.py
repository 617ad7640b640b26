from __future__ import annotations

from pathlib import Path

import pytest

from fckernel import kconfig
from fckernel.errors import InputError
from fckernel.kconfig import (
    And,
    Compare,
    Const,
    Expr,
    KconfigTree,
    Macro,
    Not,
    Or,
    Ref,
    Tristate,
    cache_path,
    evaluate,
    expression_from_json,
    expression_to_json,
    format_expression,
    has_macro,
    load_tree,
    parse_expression,
    parse_tree,
    scan_symbols,
)


def write(root: Path, name: str, text: str) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_scan_follows_arch_source(fake_tree: Path) -> None:
    index = scan_symbols(fake_tree, "x86")
    assert index.types["X86_64"] == "bool"
    assert index.types["CHILD"] == "tristate"
    assert index.types["ADDRESS"] == "hex"
    assert index.locations["CHILD"] == "Kconfig:11"


def test_help_text_is_not_a_definition(fake_tree: Path) -> None:
    assert "NOT_A_SYMBOL" not in scan_symbols(fake_tree, "x86")


def test_other_arch_symbols_are_absent(fake_tree: Path) -> None:
    write(fake_tree, "arch/arm64/Kconfig", "config ARM64\n\tdef_bool y\n")
    assert "ARM64" not in scan_symbols(fake_tree, "x86")
    index = scan_symbols(fake_tree, "arm64")
    assert "ARM64" in index
    assert "X86_64" not in index


def test_rsource_osource_and_continuation(tmp_path: Path) -> None:
    write(tmp_path, "Kconfig", 'osource "missing/Kconfig"\nsource "sub/Kconfig"\n')
    write(
        tmp_path,
        "sub/Kconfig",
        'rsource "Kconfig.more"\nmenuconfig TOP\n\tbool "x" \\\n\t  if Y\n',
    )
    write(tmp_path, "sub/Kconfig.more", "config MORE\n\tint\n")
    index = scan_symbols(tmp_path, "x86")
    assert index.types == {"TOP": "bool", "MORE": "int"}
    assert index.files == 3


def test_missing_source_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "Kconfig", 'source "gone/Kconfig"\n')
    with pytest.raises(InputError, match="sourced Kconfig file 'gone/Kconfig'"):
        scan_symbols(tmp_path, "x86")


def test_not_a_tree(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="has no top-level Kconfig"):
        scan_symbols(tmp_path, "x86")


# The full reader: entries, blocks, help, macros -------------------------------


def parse(tmp_path: Path, text: str, **files: str) -> KconfigTree:
    write(tmp_path, "Kconfig", text)
    for name, content in files.items():
        write(tmp_path, name.replace("__", "/"), content)
    return parse_tree(tmp_path, "x86")


def own_depends(tree: KconfigTree, name: str) -> list[str]:
    symbol = tree.symbol(name)
    assert symbol is not None
    return [
        format_expression(c.expr)
        for d in symbol.definitions
        for c in d.depends
        if c.kind == "depends on"
    ]


def test_help_block_ends_at_smaller_indent(tmp_path: Path) -> None:
    tree = parse(
        tmp_path,
        "config A\n"
        "\tbool\n"
        "\thelp\n"
        "\t  First line.\n"
        "\n"
        "\t    indented more\n"
        "\t  config NOT_A_SYMBOL\n"
        "\tdepends on B\n"
        "config B\n"
        "\tbool\n"
        "\t---help---\n"
        "\t  Old spelling.\n",
    )
    a = tree.symbol("A")
    assert a is not None
    assert a.help == ["First line.\n\n  indented more\nconfig NOT_A_SYMBOL"]
    assert own_depends(tree, "A") == ["B"]
    assert "NOT_A_SYMBOL" not in tree
    b = tree.symbol("B")
    assert b is not None
    assert b.help == ["Old spelling."]


def test_help_block_ends_at_unindented_line(tmp_path: Path) -> None:
    tree = parse(tmp_path, "config A\n\tbool\n\thelp\n\t  text\nconfig B\n\tbool\n")
    assert "B" in tree
    a = tree.symbol("A")
    assert a is not None
    assert a.help == ["text"]


def test_if_and_menu_dependencies_are_inherited(tmp_path: Path) -> None:
    tree = parse(
        tmp_path,
        "config NET\n\tbool\n"
        "if NET\n"
        'menu "Netfilter"\n'
        "\tdepends on INET\n"
        "\tvisible if EXPERT\n"
        "config NF\n"
        '\ttristate "nf"\n'
        "\tdepends on ADVANCED\n"
        "endmenu\n"
        "endif\n"
        "config OUTSIDE\n\tbool\n",
    )
    nf = tree.symbol("NF")
    assert nf is not None
    definition = nf.definitions[0]
    kinds = [(c.kind, format_expression(c.expr)) for c in definition.depends]
    assert kinds == [("depends on", "ADVANCED"), ("menu", "INET"), ("if", "NET")]
    assert definition.depends[1].title == "Netfilter"
    assert [format_expression(c.expr) for c in definition.visible] == ["EXPERT"]
    assert format_expression(nf.dependency()) == "ADVANCED && INET && NET"
    outside = tree.symbol("OUTSIDE")
    assert outside is not None
    assert outside.dependency() is None


def test_if_block_spans_a_sourced_file(tmp_path: Path) -> None:
    tree = parse(
        tmp_path,
        'if NET\nsource "net/Kconfig"\nendif\n',
        net__Kconfig='config INET\n\tbool "inet"\n',
    )
    inet = tree.symbol("INET")
    assert inet is not None
    assert format_expression(inet.dependency()) == "NET"
    assert tree.locations["INET"] == "net/Kconfig:1"


def test_choice_members_and_defaults(tmp_path: Path) -> None:
    tree = parse(
        tmp_path,
        "choice\n"
        '\tprompt "Timer frequency"\n'
        "\tdepends on TIMERS\n"
        "\tdefault HZ_250\n"
        'config HZ_100\n\tbool "100"\n'
        'config HZ_250\n\tbool "250"\n'
        "endchoice\n"
        "choice OLD_NAMED\n"
        '\ttristate "old style"\n'
        "\toptional\n"
        'config PICK\n\ttristate "pick"\n'
        "endchoice\n",
    )
    choice = tree.choices["Kconfig:1"]
    assert choice.members == ["HZ_100", "HZ_250"]
    assert choice.title == "Timer frequency"
    assert format_expression(choice.defaults[0].value) == "HZ_250"
    hz = tree.symbol("HZ_100")
    assert hz is not None
    assert hz.choice == "Kconfig:1"
    assert [c.kind for c in hz.definitions[0].depends] == ["choice"]
    old = tree.choices["Kconfig:10"]
    assert old.optional
    assert old.type == "tristate"


def test_depends_on_with_condition(tmp_path: Path) -> None:
    tree = parse(tmp_path, 'config A\n\tbool "a"\n\tdepends on X if Y\n')
    a = tree.symbol("A")
    assert a is not None
    dependency = a.dependency()
    assert format_expression(dependency) == "X || !Y"
    assert evaluate(dependency, {"Y": "n"}) == Tristate.Y
    assert evaluate(dependency, {"Y": "y"}) == Tristate.N
    assert evaluate(dependency, {"Y": "y", "X": "y"}) == Tristate.Y


def test_transitional_and_modules_flags(tmp_path: Path) -> None:
    tree = parse(
        tmp_path,
        'config MODULES\n\tbool "modules"\n\tmodules\n'
        "config OLD_NAME\n\tbool\n\ttransitional\n"
        "config ANCIENT\n\tbool\n\toption modules\n",
    )
    for name, flag in (("MODULES", "modules"), ("OLD_NAME", "transitional")):
        symbol = tree.symbol(name)
        assert symbol is not None
        assert symbol.definitions[0].flags == [flag]
    ancient = tree.symbol("ANCIENT")
    assert ancient is not None
    assert ancient.definitions[0].flags == ["modules"]
    assert tree.warnings == []


def test_continuation_lines_join(tmp_path: Path) -> None:
    tree = parse(
        tmp_path,
        "config A\n\tdef_bool (B && \\\n\t\t  C) || \\\n\t\t  D\nconfig E\n\tbool\n",
    )
    a = tree.symbol("A")
    assert a is not None
    assert format_expression(a.defaults[0].value) == "B && C || D"
    assert tree.locations["E"] == "Kconfig:5"


def test_macros_expand_or_stay_unknown(tmp_path: Path) -> None:
    tree = parse(
        tmp_path,
        "cc-option = $(success,$(CC) -Werror $(1) -c -x c /dev/null)\n"
        "greeting := hello\n"
        "twice = $(1)$(1)\n"
        "$(error-if,$(failure,command -v $(CC)),no compiler)\n"
        "config ARCH_IS_X86\n"
        '\tdef_bool "$(ARCH)" = "x86"\n'
        "config CC_HAS_FOO\n"
        "\tdef_bool $(cc-option,-mfoo)\n"
        "config USES_FOO\n"
        "\tbool\n"
        "\tdepends on !$(cc-option,-mno-foo) && CC_HAS_FOO\n"
        "config TEXT\n"
        "\tstring\n"
        '\tdefault "$(greeting) $(twice,ab)"\n'
        "config VERSION_TEXT\n"
        "\tstring\n"
        '\tdefault "$(CC_VERSION_TEXT)"\n',
    )
    assert tree.warnings == []

    def first_default(name: str) -> Expr:
        symbol = tree.symbol(name)
        assert symbol is not None
        return symbol.defaults[0].value

    assert evaluate(first_default("ARCH_IS_X86"), {}) == Tristate.Y
    assert first_default("CC_HAS_FOO") == Macro("$(cc-option,-mfoo)")
    assert evaluate(first_default("CC_HAS_FOO"), {}) == Tristate.N
    assert first_default("TEXT") == Const("hello abab", quoted=True)
    assert first_default("VERSION_TEXT") == Macro('"$(CC_VERSION_TEXT)"')
    uses = tree.symbol("USES_FOO")
    assert uses is not None
    dependency = uses.dependency()
    assert has_macro(dependency)
    assert evaluate(dependency, {"CC_HAS_FOO": "y"}) == Tristate.Y


def test_select_imply_default_and_range(tmp_path: Path) -> None:
    tree = parse(
        tmp_path,
        "config A\n"
        '\ttristate "a"\n'
        "\tselect B if C\n"
        "\timply D\n"
        "config B\n\tbool\n"
        'config D\n\ttristate "d"\n'
        "config N\n"
        '\tint "n" if EXPERT\n'
        "\trange 1 64 if SMP\n"
        "\tdefault 8\n",
    )
    b = tree.symbol("B")
    assert b is not None
    assert [(s.symbol, format_expression(s.condition)) for s in b.selected_by] == [
        ("A", "C")
    ]
    d = tree.symbol("D")
    assert d is not None
    assert [s.symbol for s in d.implied_by] == ["A"]
    n = tree.symbol("N")
    assert n is not None
    assert n.type == "int"
    assert format_expression(n.prompts[0].condition) == "EXPERT"
    assert (n.ranges[0].low, n.ranges[0].high) == (Const("1"), Const("64"))
    assert n.defaults[0].value == Const("8")


def test_several_definitions_or_their_dependencies(tmp_path: Path) -> None:
    tree = parse(
        tmp_path,
        'config A\n\tbool "a"\n\tdepends on B\nconfig A\n\tdepends on C\n',
    )
    a = tree.symbol("A")
    assert a is not None
    assert a.locations == ["Kconfig:1", "Kconfig:4"]
    assert a.type == "bool"
    assert format_expression(a.dependency()) == "B || C"


def test_unknown_statement_is_a_warning(tmp_path: Path) -> None:
    tree = parse(tmp_path, "config A\n\tbool\n\tfrobnicate harder\nconfig B\n\tbool\n")
    assert tree.warnings == [
        "Kconfig:3: unknown statement 'frobnicate'; statement skipped"
    ]
    assert "B" in tree


def test_unbalanced_block_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"Kconfig:2: `endif` closes menu"):
        parse(tmp_path, 'menu "x"\nendif\n')
    with pytest.raises(InputError, match=r"Kconfig:1: `if` is never closed"):
        parse(tmp_path, "if A\nconfig B\n\tbool\n")


def test_other_arch_symbols_are_attributed(tmp_path: Path) -> None:
    tree = parse(
        tmp_path,
        'source "arch/$(SRCARCH)/Kconfig"\n',
        arch__x86__Kconfig="config X86\n\tdef_bool y\n",
        arch__parisc__Kconfig=(
            'config PARISC\n\tdef_bool y\nsource "drivers/parisc/Kconfig"\n'
        ),
        drivers__parisc__Kconfig='config GSC\n\tbool "gsc"\n',
    )
    assert "GSC" not in tree
    assert tree.arches_defining("GSC") == ["parisc"]
    assert tree.arches_defining("PARISC") == ["parisc"]
    assert tree.arches_defining("X86") == []


def test_cache_reuses_and_notices_edits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "src"
    write(source, "Kconfig", 'config A\n\tbool "a"\n\tdepends on B\n')
    cache = tmp_path / "cache"
    first = load_tree(source, "x86", cache, "key")
    assert cache_path(cache, "key", "x86").is_file()

    def fail(*args: object) -> None:
        raise AssertionError("parsed again")

    with monkeypatch.context() as patch:
        patch.setattr(kconfig, "parse_tree", fail)
        cached = load_tree(source, "x86", cache, "key")
    assert cached.types == first.types
    symbol = cached.symbol("A")
    assert symbol is not None
    assert format_expression(symbol.dependency()) == "B"

    write(source, "Kconfig", 'config A\n\tbool "a"\nconfig NEW\n\tint\n')
    assert "NEW" in load_tree(source, "x86", cache, "key")


# Expressions ----------------------------------------------------------------


def test_expression_precedence_and_format() -> None:
    expr = parse_expression("A || B && !C = y")
    assert expr == Or(
        (Ref("A"), And((Ref("B"), Not(Compare("=", Ref("C"), Const("y"))))))
    )
    assert format_expression(parse_expression("(A || B) && !(C || D)")) == (
        "(A || B) && !(C || D)"
    )
    assert format_expression(parse_expression("A && B"), {"A": "y"}) == (
        "A [=y] && B [=n]"
    )
    assert parse_expression("64BIT") == Ref("64BIT")


def test_expression_json_round_trip() -> None:
    text = '!(A = "x86") && (B || C >= 0x10) && $(cc-option,-m)'
    stream_expr = parse_expression(text.replace("$(cc-option,-m)", "D"))
    for expr in (stream_expr, Macro("$(x)"), Const("s", quoted=True)):
        assert expression_from_json(expression_to_json(expr)) == expr


TRISTATES = ("n", "m", "y")


@pytest.mark.parametrize("left", TRISTATES)
@pytest.mark.parametrize("right", TRISTATES)
def test_tristate_logic_table(left: str, right: str) -> None:
    values = {"L": left, "R": right}
    low, high = sorted((TRISTATES.index(left), TRISTATES.index(right)))
    assert evaluate(parse_expression("L && R"), values) == Tristate(low)
    assert evaluate(parse_expression("L || R"), values) == Tristate(high)
    assert evaluate(parse_expression("!L"), values) == Tristate(
        2 - TRISTATES.index(left)
    )
    assert evaluate(parse_expression("L = R"), values) == (
        Tristate.Y if left == right else Tristate.N
    )
    assert evaluate(parse_expression("L != R"), values) == (
        Tristate.N if left == right else Tristate.Y
    )


def test_constants_and_absent_symbols() -> None:
    assert evaluate(parse_expression("m"), {}) == Tristate.M
    assert evaluate(parse_expression("ABSENT"), {}) == Tristate.N
    assert evaluate(parse_expression("!ABSENT"), {}) == Tristate.Y
    assert evaluate(parse_expression('"text"'), {}) == Tristate.N
    assert evaluate(None, {}) == Tristate.Y
    assert evaluate(Macro("$(shell,true)"), {}) == Tristate.N
    assert evaluate(Not(Macro("$(shell,true)")), {}) == Tristate.Y


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        ("NR > 8", {"NR": "64"}, Tristate.Y),
        ("NR < 8", {"NR": "64"}, Tristate.N),
        ("NR >= 64", {"NR": "64"}, Tristate.Y),
        ("NR <= 9", {"NR": "10"}, Tristate.N),
        ("ADDR = 0x10", {"ADDR": "0x10"}, Tristate.Y),
        ("ADDR > 0xf", {"ADDR": "0x10"}, Tristate.Y),
        ('NAME = "x86"', {"NAME": '"x86"'}, Tristate.Y),
        ('NAME != "x86"', {"NAME": '"arm64"'}, Tristate.Y),
        ("NR = 0", {}, Tristate.Y),
        ('NAME = ""', {}, Tristate.Y),
        ("UNDEFINED = UNDEFINED", {}, Tristate.Y),
        ("FLAG = n", {}, Tristate.Y),
        ("FLAG != y", {"FLAG": "m"}, Tristate.Y),
    ],
)
def test_comparisons(text: str, values: dict[str, str], expected: Tristate) -> None:
    types = {"NR": "int", "ADDR": "hex", "NAME": "string", "FLAG": "tristate"}
    assert evaluate(parse_expression(text), values, types) == expected
