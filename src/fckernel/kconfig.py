"""Reading a kernel tree's Kconfig files for one architecture.

The reading gives every symbol's type, prompts, help text, definitions
(`file:line`), dependencies (its own `depends on` and those of the enclosing
`if`, `menu` and `choice` blocks), reverse dependencies (`select`, `imply`),
defaults and ranges. Values never come from here: the kernel's own
`make olddefconfig` decides them. This reading serves two questions the
resolved `.config` cannot answer: does a symbol exist at all (a symbol whose
dependencies are off is absent from `.config` exactly like a renamed one), and
why did a request not take (see `fckernel.explain`).

Why a parser of our own. PyPI's kconfiglib 14.1.0 stops at the `modules`
keyword of every kernel since 5.13. The tree-sitter grammar on PyPI
(tree-sitter-kconfig 1.3.0) is fast, about 0.6 s for all Kconfig files of
Linux 6.1. But it reports syntax errors in `scripts/Kconfig.include`, which
every arch sources, and on `depends on X if Y`. It also leaves `source`,
`$(SRCARCH)` and macros to the caller, and it is a compiled dependency.
Kconfig is line-oriented with a small expression grammar, so this module reads
it directly. It follows the kernel's own lexer and grammar
(`scripts/kconfig/lexer.l` and `parser.y`) for help-text indentation, line
continuations, operator precedence and the `$(...)` preprocessor. On Debian's
6.1 and 6.12 trees, for x86 and arm64, it finds the same symbols, types and
counts of prompts, defaults and ranges, and the same selects and implies, as
the kernel's own parser (see tests/test_kconfig_real.py).

Macros: variables (`$(SRCARCH)`, `comma := ,`, user functions with `$(1)`) are
expanded. `$(shell,...)`, and so `$(success,...)`, `$(cc-option,...)` and the
rest of `scripts/Kconfig.include`, would run the toolchain, so their result is
unknown: in an expression it becomes a `Macro` atom, which evaluates to `n`.
Symbols such as `CC_HAS_ASM_GOTO` carry those results into `.config`, so the
resolved config still has the real values. Two newer statements are read too,
`transitional` and `depends on X if Y`, though no tree tested here has them.
Any other unknown statement is skipped with a warning in
`KconfigTree.warnings` rather than failing the build.
"""

from __future__ import annotations

import glob
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any

from fckernel.cache import atomic_write
from fckernel.errors import InputError

SYMBOL_TYPES = ("bool", "tristate", "string", "int", "hex")
# Bump when the cached JSON layout or the parser's output changes.
CACHE_FORMAT = 1
# The kernel's preprocessor stops expanding at this depth too.
MAX_EXPANSION_DEPTH = 32


# --------------------------------------------------------------------------
# Expressions


class Tristate(IntEnum):
    """A Kconfig truth value; `&&` is min, `||` is max and `!x` is `2 - x`."""

    N = 0
    M = 1
    Y = 2

    @property
    def letter(self) -> str:
        return "nmy"[self]


TRISTATE_LETTERS = {"n": Tristate.N, "m": Tristate.M, "y": Tristate.Y}


@dataclass(frozen=True, slots=True)
class Ref:
    """A reference to a symbol by name, such as `NET` in `depends on NET`."""

    name: str


@dataclass(frozen=True, slots=True)
class Const:
    """A constant: `y`, `m`, `n`, a number, or a quoted string."""

    value: str
    quoted: bool = False


@dataclass(frozen=True, slots=True)
class Macro:
    """A `$(...)` call whose result is unknown without running the toolchain."""

    text: str


@dataclass(frozen=True, slots=True)
class Not:
    operand: Expr


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Compare:
    """`left op right`, where op is one of = != < <= > >=."""

    op: str
    left: Ref | Const | Macro
    right: Ref | Const | Macro


Atom = Ref | Const | Macro
Expr = Ref | Const | Macro | Not | And | Or | Compare

COMPARISONS = ("=", "!=", "<", "<=", ">", ">=")
_NUMBER = re.compile(r"-?[0-9]+|0[xX][0-9a-fA-F]+")


def make_atom(word: str) -> Atom:
    """Return the atom an unquoted word stands for: y/m/n or a number, else a
    symbol reference (symbol names may start with a digit, like `64BIT`).
    """
    if word in TRISTATE_LETTERS or _NUMBER.fullmatch(word):
        return Const(word)
    return Ref(word)


def conjunction(items: list[Expr]) -> Expr | None:
    """Return the `&&` of `items`, flattened; None for an empty list."""
    flat: list[Expr] = []
    for item in items:
        flat.extend(item.items if isinstance(item, And) else (item,))
    if not flat:
        return None
    return flat[0] if len(flat) == 1 else And(tuple(flat))


def disjunction(items: list[Expr]) -> Expr | None:
    """Return the `||` of `items`, flattened; None for an empty list."""
    flat: list[Expr] = []
    for item in items:
        flat.extend(item.items if isinstance(item, Or) else (item,))
    if not flat:
        return None
    return flat[0] if len(flat) == 1 else Or(tuple(flat))


def symbols_in(expr: Expr | None) -> list[str]:
    """Return the symbol names `expr` refers to, in order, without repeats."""
    names: dict[str, None] = {}
    for atom in _atoms(expr):
        if isinstance(atom, Ref):
            names[atom.name] = None
    return list(names)


def has_macro(expr: Expr | None) -> bool:
    """Return whether `expr` contains a `$(...)` call of unknown result."""
    return any(isinstance(atom, Macro) for atom in _atoms(expr))


def _atoms(expr: Expr | None) -> Iterator[Atom]:
    if expr is None:
        return
    if isinstance(expr, Ref | Const | Macro):
        yield expr
    elif isinstance(expr, Not):
        yield from _atoms(expr.operand)
    elif isinstance(expr, And | Or):
        for item in expr.items:
            yield from _atoms(item)
    else:
        yield expr.left
        yield expr.right


# Precedence for printing: a child binds less tightly than its parent needs
# parentheses. Kconfig's own order, loosest first: ||, &&, comparisons, !.
_PRECEDENCE = {Or: 1, And: 2, Compare: 3, Not: 4}


def format_expression(
    expr: Expr | None, values: Mapping[str, str] | None = None
) -> str:
    """Return `expr` in Kconfig syntax; with `values`, each symbol is followed by
    its current value as menuconfig shows it, `NET [=y]` (absent means n).
    """
    if expr is None:
        return "y"
    return _format(expr, values, 0)


def _format(expr: Expr, values: Mapping[str, str] | None, outer: int) -> str:
    if isinstance(expr, Ref):
        if values is None:
            return expr.name
        return f"{expr.name} [={values.get(expr.name, 'n')}]"
    if isinstance(expr, Const):
        return f'"{expr.value}"' if expr.quoted else expr.value
    if isinstance(expr, Macro):
        return expr.text
    own = _PRECEDENCE[type(expr)]
    if isinstance(expr, Not):
        text = "!" + _format(expr.operand, values, own)
    elif isinstance(expr, And | Or):
        joiner = " && " if isinstance(expr, And) else " || "
        text = joiner.join(_format(item, values, own) for item in expr.items)
    else:
        left = _format(expr.left, values, own)
        text = f"{left} {expr.op} {_format(expr.right, values, own)}"
    return f"({text})" if own < outer else text


def expression_to_json(expr: Expr | None) -> Any:
    """Encode `expr` compactly: a symbol is its name, anything else a list."""
    if expr is None or isinstance(expr, Ref):
        return None if expr is None else expr.name
    if isinstance(expr, Const):
        return ["c", expr.value, 1] if expr.quoted else ["c", expr.value]
    if isinstance(expr, Macro):
        return ["$", expr.text]
    if isinstance(expr, Not):
        return ["!", expression_to_json(expr.operand)]
    if isinstance(expr, And | Or):
        tag = "&&" if isinstance(expr, And) else "||"
        return [tag, *(expression_to_json(item) for item in expr.items)]
    return [expr.op, expression_to_json(expr.left), expression_to_json(expr.right)]


def expression_from_json(data: Any) -> Expr | None:
    """Decode what expression_to_json() produced."""
    if data is None:
        return None
    if isinstance(data, str):
        return Ref(data)
    tag = data[0]
    if tag == "c":
        return Const(data[1], len(data) > 2)
    if tag == "$":
        return Macro(data[1])
    if tag == "!":
        return Not(_decode(data[1]))
    if tag in ("&&", "||"):
        items = tuple(_decode(item) for item in data[1:])
        return And(items) if tag == "&&" else Or(items)
    left, right = _decode(data[1]), _decode(data[2])
    assert isinstance(left, Ref | Const | Macro)
    assert isinstance(right, Ref | Const | Macro)
    return Compare(tag, left, right)


def _decode(data: Any) -> Expr:
    expr = expression_from_json(data)
    assert expr is not None
    return expr


# --------------------------------------------------------------------------
# Evaluation


def tristate_of(value: str | None) -> Tristate:
    """Return the truth value of a `.config` value: y, m, else n."""
    return TRISTATE_LETTERS.get(value or "n", Tristate.N)


def evaluate(
    expr: Expr | None,
    values: Mapping[str, str],
    types: Mapping[str, str] | None = None,
) -> Tristate:
    """Evaluate `expr` over `.config` values (symbol to `y`, `m`, `n`, `"text"`
    or a number; an absent symbol is `n`).

    `types` (symbol to Kconfig type) makes comparisons exact: an absent int is
    `0`, an absent hex `0x0`, an absent string empty, and a symbol that the
    tree does not define compares as its own name, as in the kernel. A `Macro`
    is `n`, and so is a plain string or number used as a truth value. A missing
    expression (no condition) is `y`.
    """
    if expr is None:
        return Tristate.Y
    if isinstance(expr, Ref):
        return tristate_of(values.get(expr.name))
    if isinstance(expr, Const):
        return Tristate.N if expr.quoted else tristate_of(expr.value)
    if isinstance(expr, Macro):
        return Tristate.N
    if isinstance(expr, Not):
        return Tristate(2 - evaluate(expr.operand, values, types))
    if isinstance(expr, And):
        return min(evaluate(item, values, types) for item in expr.items)
    if isinstance(expr, Or):
        return max(evaluate(item, values, types) for item in expr.items)
    return _compare(expr, values, types)


def _compare(
    expr: Compare, values: Mapping[str, str], types: Mapping[str, str] | None
) -> Tristate:
    if isinstance(expr.left, Macro) or isinstance(expr.right, Macro):
        return Tristate.N
    left_text, left_type = _string_value(expr.left, values, types)
    right_text, right_type = _string_value(expr.right, values, types)
    order = _order(left_text, left_type, right_text, right_type)
    true = {
        "=": order == 0,
        "!=": order != 0,
        "<": order < 0,
        "<=": order <= 0,
        ">": order > 0,
        ">=": order >= 0,
    }[expr.op]
    return Tristate.Y if true else Tristate.N


def _string_value(
    atom: Ref | Const, values: Mapping[str, str], types: Mapping[str, str] | None
) -> tuple[str, str]:
    """Return an operand's string value and type, as the kernel's
    sym_get_string_value() and sym->type give them.
    """
    if isinstance(atom, Const):
        return atom.value, "string" if atom.quoted else ""
    kind = types.get(atom.name, "") if types is not None else ""
    value = values.get(atom.name)
    if value is not None:
        return _unquote(value), kind
    if types is not None and atom.name not in types:
        return atom.name, ""
    absent = {"int": "0", "hex": "0x0", "string": ""}
    return absent.get(kind, "n"), kind


def _unquote(value: str) -> str:
    if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def _order(left: str, left_type: str, right: str, right_type: str) -> int:
    """Compare like the kernel's expr_calc_value(): as numbers when both sides
    parse as numbers of their types, else as strings.
    """
    if left_type != "string" or right_type != "string":
        left_number = _parse_number(left, left_type)
        right_number = _parse_number(right, right_type)
        if left_number is not None and right_number is not None:
            return (left_number > right_number) - (left_number < right_number)
    return (left > right) - (left < right)


def _parse_number(text: str, kind: str) -> int | None:
    if kind in ("bool", "tristate"):
        return {"n": 0, "m": 1, "y": 2}.get(text, -1)
    try:
        if kind == "int":
            return int(text, 10)
        if kind == "hex":
            return int(text, 16)
        return int(text, 0)
    except ValueError:
        return None


# --------------------------------------------------------------------------
# The model


@dataclass(slots=True)
class Condition:
    """One dependency of a definition and where it comes from.

    `kind` is `depends on` (the entry's own), `if` (an enclosing if block),
    `menu` (an enclosing menu's `depends on`), `choice` (the enclosing choice's
    `depends on`), or `visible if` (an enclosing menu's, which limits prompts
    only and is kept in `Definition.visible`).
    """

    kind: str
    expr: Expr
    location: str
    title: str = ""  # the menu's or choice's prompt, for messages


@dataclass(slots=True)
class Prompt:
    text: str
    condition: Expr | None
    location: str


@dataclass(slots=True)
class Default:
    value: Expr
    condition: Expr | None
    location: str


@dataclass(slots=True)
class Range:
    low: Atom
    high: Atom
    condition: Expr | None
    location: str


@dataclass(slots=True)
class Select:
    """A `select` or `imply`: `symbol` is the target on a definition, and the
    selecting symbol in `Symbol.selected_by` and `Symbol.implied_by`.
    """

    symbol: str
    condition: Expr | None
    location: str


@dataclass(slots=True)
class Definition:
    """One `config` or `menuconfig` entry of a symbol."""

    location: str
    type: str | None = None
    menuconfig: bool = False
    prompts: list[Prompt] = field(default_factory=list)
    defaults: list[Default] = field(default_factory=list)
    depends: list[Condition] = field(default_factory=list)
    visible: list[Condition] = field(default_factory=list)
    selects: list[Select] = field(default_factory=list)
    implies: list[Select] = field(default_factory=list)
    ranges: list[Range] = field(default_factory=list)
    help: str = ""
    choice: str | None = None  # location of the enclosing choice
    flags: list[str] = field(default_factory=list)  # modules, transitional

    def dependency(self) -> Expr | None:
        """Return the `&&` of this entry's dependencies (None: always met)."""
        return conjunction([c.expr for c in self.depends])

    def visibility(self) -> Expr:
        """Return when this entry's prompt is visible: its dependencies, the
        enclosing menus' `visible if` and the prompt's own `if`. Without a
        prompt the entry is never visible, `n`.
        """
        if not self.prompts:
            return Const("n")
        conditions = [p.condition or Const("y") for p in self.prompts]
        prompt = disjunction(conditions)
        assert prompt is not None
        parts = [c.expr for c in self.depends] + [c.expr for c in self.visible]
        visible = conjunction([*parts, prompt])
        assert visible is not None
        return visible


@dataclass(slots=True)
class Symbol:
    """A symbol with all its definitions and the entries that select or imply
    it. A symbol referenced but never defined has no definitions.
    """

    name: str
    definitions: list[Definition] = field(default_factory=list)
    selected_by: list[Select] = field(default_factory=list)
    implied_by: list[Select] = field(default_factory=list)

    @property
    def type(self) -> str:
        """The first type given; the kernel keeps that one too."""
        return next((d.type for d in self.definitions if d.type), "")

    @property
    def locations(self) -> list[str]:
        return [d.location for d in self.definitions]

    @property
    def prompts(self) -> list[Prompt]:
        return [p for d in self.definitions for p in d.prompts]

    @property
    def defaults(self) -> list[Default]:
        return [x for d in self.definitions for x in d.defaults]

    @property
    def ranges(self) -> list[Range]:
        return [r for d in self.definitions for r in d.ranges]

    @property
    def help(self) -> list[str]:
        return [d.help for d in self.definitions if d.help]

    @property
    def choice(self) -> str | None:
        return next((d.choice for d in self.definitions if d.choice), None)

    def dependency(self) -> Expr | None:
        """Return the symbol's dependency: the `||` of its definitions' ones,
        as the kernel combines them. None means always met.
        """
        parts = [d.dependency() for d in self.definitions]
        if not parts or any(p is None for p in parts):
            return None
        return disjunction([p for p in parts if p is not None])

    def visibility(self) -> Expr:
        """Return when some prompt of this symbol is visible, so a user can set it."""
        visible = disjunction([d.visibility() for d in self.definitions])
        return visible if visible is not None else Const("n")


@dataclass(slots=True)
class Choice:
    """A `choice` block: exactly one bool member is `y` when it is visible."""

    location: str
    type: str = "bool"
    prompts: list[Prompt] = field(default_factory=list)
    defaults: list[Default] = field(default_factory=list)
    depends: list[Condition] = field(default_factory=list)
    members: list[str] = field(default_factory=list)
    help: str = ""
    optional: bool = False

    @property
    def title(self) -> str:
        return self.prompts[0].text if self.prompts else "choice"


@dataclass
class SymbolIndex:
    """Symbols defined by one tree for one arch: name to type, and name to the
    first `file:line` that defines it.
    """

    types: dict[str, str] = field(default_factory=dict)
    locations: dict[str, str] = field(default_factory=dict)
    files: int = 0

    def __contains__(self, symbol: object) -> bool:
        return symbol in self.types


class KconfigTree(SymbolIndex):
    """Everything the Kconfig files of one tree define for one arch.

    It is a SymbolIndex too (`types`, `locations`, `files`, `in`), so it can be
    passed wherever one is expected. The cache keeps each symbol as its own
    JSON text, decoded on first use: parsing 17,000 short strings is several
    times faster than building all their nested objects.
    """

    def __init__(
        self,
        arch: str,
        index: SymbolIndex,
        records: dict[str, str],
        choices: dict[str, Choice],
        files: list[str],
        elsewhere: dict[str, list[str]],
        warnings: list[str],
    ) -> None:
        super().__init__(index.types, index.locations, len(files))
        self.arch = arch
        self.choices = choices
        self.file_list = files
        self.elsewhere = elsewhere
        self.warnings = warnings
        self._records = records
        self._symbols: dict[str, Symbol] = {}

    @classmethod
    def from_symbols(
        cls,
        arch: str,
        symbols: dict[str, Symbol],
        choices: dict[str, Choice],
        files: list[str],
        elsewhere: dict[str, list[str]],
        warnings: list[str],
    ) -> KconfigTree:
        """Make a tree from freshly parsed symbols, all of them defined."""
        index = SymbolIndex(
            {name: symbol.type for name, symbol in symbols.items()},
            {name: symbol.locations[0] for name, symbol in symbols.items()},
        )
        records = {
            name: json.dumps(symbol_to_json(symbol), separators=(",", ":"))
            for name, symbol in symbols.items()
        }
        tree = cls(arch, index, records, choices, files, elsewhere, warnings)
        tree._symbols.update(symbols)
        return tree

    def symbol(self, name: str) -> Symbol | None:
        """Return the symbol `name` defines for this arch, or None."""
        if name not in self.types:
            return None
        found = self._symbols.get(name)
        if found is None:
            found = symbol_from_json(name, json.loads(self._records[name]))
            self._symbols[name] = found
        return found

    def names(self) -> list[str]:
        """Return the names of all symbols this arch defines."""
        return list(self.types)

    def arches_defining(self, name: str) -> list[str]:
        """Return the other arches whose Kconfig files define `name`, when this
        arch's files do not.
        """
        return self.elsewhere.get(name, [])

    def choice_of(self, symbol: Symbol) -> Choice | None:
        location = symbol.choice
        return self.choices.get(location) if location else None

    def to_json(self) -> dict[str, Any]:
        return {
            "format": CACHE_FORMAT,
            "arch": self.arch,
            "files": self.file_list,
            "types": self.types,
            "locations": self.locations,
            "symbols": self._records,
            "choices": {k: choice_to_json(c) for k, c in self.choices.items()},
            "elsewhere": self.elsewhere,
            "warnings": self.warnings,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KconfigTree:
        choices = {k: choice_from_json(v) for k, v in data["choices"].items()}
        return cls(
            data["arch"],
            SymbolIndex(data["types"], data["locations"]),
            data["symbols"],
            choices,
            data["files"],
            data["elsewhere"],
            data["warnings"],
        )


# --------------------------------------------------------------------------
# JSON encoding of the model, for the cache


def _opt(data: dict[str, Any], key: str, value: Any) -> None:
    if value:
        data[key] = value


def symbol_to_json(symbol: Symbol) -> dict[str, Any]:
    data: dict[str, Any] = {
        "definitions": [definition_to_json(d) for d in symbol.definitions]
    }
    _opt(data, "selected_by", [_select_to_json(s) for s in symbol.selected_by])
    _opt(data, "implied_by", [_select_to_json(s) for s in symbol.implied_by])
    return data


def symbol_from_json(name: str, data: dict[str, Any]) -> Symbol:
    return Symbol(
        name,
        [definition_from_json(d) for d in data.get("definitions", [])],
        [_select_from_json(s) for s in data.get("selected_by", [])],
        [_select_from_json(s) for s in data.get("implied_by", [])],
    )


def definition_to_json(definition: Definition) -> dict[str, Any]:
    data: dict[str, Any] = {"location": definition.location}
    _opt(data, "type", definition.type)
    _opt(data, "menuconfig", definition.menuconfig)
    _opt(data, "prompts", [_prompt_to_json(p) for p in definition.prompts])
    _opt(data, "defaults", [_default_to_json(d) for d in definition.defaults])
    _opt(data, "depends", [_condition_to_json(c) for c in definition.depends])
    _opt(data, "visible", [_condition_to_json(c) for c in definition.visible])
    _opt(data, "selects", [_select_to_json(s) for s in definition.selects])
    _opt(data, "implies", [_select_to_json(s) for s in definition.implies])
    _opt(data, "ranges", [_range_to_json(r) for r in definition.ranges])
    _opt(data, "help", definition.help)
    _opt(data, "choice", definition.choice)
    _opt(data, "flags", definition.flags)
    return data


def definition_from_json(data: dict[str, Any]) -> Definition:
    return Definition(
        location=data["location"],
        type=data.get("type"),
        menuconfig=data.get("menuconfig", False),
        prompts=[_prompt_from_json(p) for p in data.get("prompts", [])],
        defaults=[_default_from_json(d) for d in data.get("defaults", [])],
        depends=[_condition_from_json(c) for c in data.get("depends", [])],
        visible=[_condition_from_json(c) for c in data.get("visible", [])],
        selects=[_select_from_json(s) for s in data.get("selects", [])],
        implies=[_select_from_json(s) for s in data.get("implies", [])],
        ranges=[_range_from_json(r) for r in data.get("ranges", [])],
        help=data.get("help", ""),
        choice=data.get("choice"),
        flags=data.get("flags", []),
    )


def choice_to_json(choice: Choice) -> dict[str, Any]:
    return {
        "location": choice.location,
        "type": choice.type,
        "prompts": [_prompt_to_json(p) for p in choice.prompts],
        "defaults": [_default_to_json(d) for d in choice.defaults],
        "depends": [_condition_to_json(c) for c in choice.depends],
        "members": choice.members,
        "help": choice.help,
        "optional": choice.optional,
    }


def choice_from_json(data: dict[str, Any]) -> Choice:
    return Choice(
        location=data["location"],
        type=data["type"],
        prompts=[_prompt_from_json(p) for p in data["prompts"]],
        defaults=[_default_from_json(d) for d in data["defaults"]],
        depends=[_condition_from_json(c) for c in data["depends"]],
        members=data["members"],
        help=data["help"],
        optional=data["optional"],
    )


def _prompt_to_json(prompt: Prompt) -> list[Any]:
    return [prompt.text, expression_to_json(prompt.condition), prompt.location]


def _prompt_from_json(data: list[Any]) -> Prompt:
    return Prompt(data[0], expression_from_json(data[1]), data[2])


def _default_to_json(default: Default) -> list[Any]:
    return [
        expression_to_json(default.value),
        expression_to_json(default.condition),
        default.location,
    ]


def _default_from_json(data: list[Any]) -> Default:
    return Default(_decode(data[0]), expression_from_json(data[1]), data[2])


def _condition_to_json(condition: Condition) -> list[Any]:
    data = [condition.kind, expression_to_json(condition.expr), condition.location]
    return [*data, condition.title] if condition.title else data


def _condition_from_json(data: list[Any]) -> Condition:
    title = data[3] if len(data) > 3 else ""
    return Condition(data[0], _decode(data[1]), data[2], title)


def _select_to_json(select: Select) -> list[Any]:
    return [select.symbol, expression_to_json(select.condition), select.location]


def _select_from_json(data: list[Any]) -> Select:
    return Select(data[0], expression_from_json(data[1]), data[2])


def _range_to_json(item: Range) -> list[Any]:
    return [
        expression_to_json(item.low),
        expression_to_json(item.high),
        expression_to_json(item.condition),
        item.location,
    ]


def _range_from_json(data: list[Any]) -> Range:
    low, high = _decode(data[0]), _decode(data[1])
    assert isinstance(low, Ref | Const | Macro)
    assert isinstance(high, Ref | Const | Macro)
    return Range(low, high, expression_from_json(data[2]), data[3])


# --------------------------------------------------------------------------
# The preprocessor: `$(...)` variables and functions


class _Preprocessor:
    """Kconfig's make-like macro language, without running commands.

    An expansion returns None when its result is unknown: `$(shell,...)` and
    everything built on it, and variables that only the environment of
    `make` would set (CC, LD and the like).
    """

    def __init__(self, environment: dict[str, str]) -> None:
        self.environment = environment
        # name -> (value, recursive); a None value is an unknown expansion
        self.variables: dict[str, tuple[str | None, bool]] = {}

    def assign(self, name: str, operator: str, raw: str) -> None:
        previous = self.variables.get(name)
        if operator == "+=" and previous is not None:
            old, recursive = previous
            new = raw if recursive else self.expand(raw)
            joined = None if old is None or new is None else f"{old} {new}"
            self.variables[name] = (joined, recursive)
        elif operator == ":=":
            self.variables[name] = (self.expand(raw), False)
        else:
            self.variables[name] = (raw, True)

    def expand(
        self, text: str, args: tuple[str, ...] = (), depth: int = 0
    ) -> str | None:
        """Expand every `$(...)` in `text`; None if any result is unknown."""
        parts: list[str] = []
        start = 0
        while (dollar := text.find("$(", start)) >= 0:
            end = matching_paren(text, dollar + 1)
            if end < 0:
                return None
            result = self.call(text[dollar + 2 : end], args, depth)
            if result is None:
                return None
            parts += [text[start:dollar], result]
            start = end + 1
        parts.append(text[start:])
        return "".join(parts)

    def call(self, inner: str, args: tuple[str, ...], depth: int) -> str | None:
        """Expand the inside of one `$(...)`: a variable, an argument `$(1)`,
        a built-in function or a user-defined function.
        """
        if depth > MAX_EXPANSION_DEPTH:
            return None
        pieces = split_arguments(inner)
        name = self.expand(pieces[0], args, depth + 1)
        if name is None:
            return None
        if name in ("info", "warning-if", "error-if"):
            return ""  # they only print, and expand to nothing
        if name.isdigit() and len(pieces) == 1:
            index = int(name) - 1
            return args[index] if 0 <= index < len(args) else ""
        call_args = [self.expand(piece, args, depth + 1) for piece in pieces[1:]]
        if name in self.variables:
            value, recursive = self.variables[name]
            if value is None or not recursive or None in call_args:
                return value if value is None or not recursive else None
            known = tuple(a for a in call_args if a is not None)
            return self.expand(value, known, depth + 1)
        if len(pieces) == 1 and name in self.environment:
            return self.environment[name]
        return None


def matching_paren(text: str, open_index: int) -> int:
    """Return the index of the `)` matching the `(` at `open_index`, or -1.

    Like the kernel's preprocessor, this counts parentheses and ignores quotes.
    """
    depth = 0
    for index in range(open_index, len(text)):
        char = text[index]
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return index
    return -1


def split_arguments(inner: str) -> list[str]:
    """Split the inside of `$(name,a,b)` at the commas outside parentheses."""
    pieces: list[str] = []
    depth = 0
    start = 0
    for index, char in enumerate(inner):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            pieces.append(inner[start:index])
            start = index + 1
    pieces.append(inner[start:])
    return pieces


# --------------------------------------------------------------------------
# Tokens

# A token is (kind, text). Kinds: "w" word, "o" operator, "s" quoted string
# (unescaped, expanded), "$" a macro call or quoted string of unknown value
# (its source text).
Token = tuple[str, str]

_TOKEN = re.compile(
    r"""[ \t\r\f\v]*(?:
      (?P<word>[A-Za-z0-9_-]+)
    | (?P<op>&&|\|\||!=|<=|>=|:=|\+=|[!=<>()])
    | (?P<quote>["'])
    | (?P<dollar>\$)
    | (?P<comment>\#)
    | (?P<other>\S)
    )""",
    re.VERBOSE,
)
_PLAIN_STRING = {
    '"': re.compile(r'"([^"\\$]*)"'),
    "'": re.compile(r"'([^'\\$]*)'"),
}


class KconfigSyntaxError(Exception):
    """A statement this parser cannot read; the caller adds `file:line`."""


def tokenize(text: str, macros: _Preprocessor) -> list[Token]:
    """Split one logical line into tokens, expanding `$(...)` where known."""
    tokens: list[Token] = []
    position = 0
    while (match := _TOKEN.match(text, position)) is not None:
        kind = match.lastgroup
        start = match.start(kind) if kind else position
        position = match.end()
        if kind == "word":
            tokens.append(("w", match["word"]))
        elif kind == "op":
            tokens.append(("o", match["op"]))
        elif kind == "quote":
            token, position = _read_string(text, start, macros)
            tokens.append(token)
        elif kind == "dollar":
            position = _read_macro(text, start, macros, tokens)
        elif kind == "comment":
            break
    return tokens


def _read_string(text: str, start: int, macros: _Preprocessor) -> tuple[Token, int]:
    quote = text[start]
    plain = _PLAIN_STRING[quote].match(text, start)
    if plain:
        return ("s", plain[1]), plain.end()
    chars: list[str] = []
    unknown = False
    index = start + 1
    while index < len(text) and text[index] != quote:
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            chars.append(text[index + 1])
            index += 2
        elif char == "$" and text.startswith("$(", index):
            end = matching_paren(text, index + 1)
            end = len(text) - 1 if end < 0 else end
            value = macros.call(text[index + 2 : end], (), 0)
            unknown = unknown or value is None
            chars.append(text[index : end + 1] if value is None else value)
            index = end + 1
        else:
            chars.append(char)
            index += 1
    end = min(index + 1, len(text))
    if unknown:
        return ("$", text[start:end]), end
    return ("s", "".join(chars)), end


def _read_macro(
    text: str, start: int, macros: _Preprocessor, tokens: list[Token]
) -> int:
    if not text.startswith("$(", start):
        tokens.append(("w", "$"))
        return start + 1
    end = matching_paren(text, start + 1)
    if end < 0:
        tokens.append(("$", text[start:]))
        return len(text)
    value = macros.call(text[start + 2 : end], (), 0)
    if value is None:
        tokens.append(("$", text[start : end + 1]))
    else:
        tokens.extend(tokenize(value, _NO_MACROS))
    return end + 1


_NO_MACROS = _Preprocessor({})


class _TokenStream:
    """The tokens of one statement, read left to right."""

    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.position = 0

    def peek(self) -> Token | None:
        if self.position < len(self.tokens):
            return self.tokens[self.position]
        return None

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            raise KconfigSyntaxError("unexpected end of line")
        self.position += 1
        return token

    def accept(self, kind: str, text: str) -> bool:
        if self.peek() == (kind, text):
            self.position += 1
            return True
        return False

    def word(self) -> str:
        kind, text = self.take()
        if kind != "w":
            raise KconfigSyntaxError(f"expected a name, found {text!r}")
        return text

    def string(self) -> str:
        kind, text = self.take()
        if kind not in ("s", "$"):
            raise KconfigSyntaxError(f"expected a quoted string, found {text!r}")
        return text

    def end(self) -> None:
        token = self.peek()
        if token is not None:
            raise KconfigSyntaxError(f"unexpected {token[1]!r}")


def parse_expression_tokens(stream: _TokenStream) -> Expr:
    """Parse `expr` by Kconfig's precedence: `||`, then `&&`, then `!`."""
    items = [_parse_and(stream)]
    while stream.accept("o", "||"):
        items.append(_parse_and(stream))
    result = disjunction(items)
    assert result is not None
    return result


def _parse_and(stream: _TokenStream) -> Expr:
    items = [_parse_unary(stream)]
    while stream.accept("o", "&&"):
        items.append(_parse_unary(stream))
    result = conjunction(items)
    assert result is not None
    return result


def _parse_unary(stream: _TokenStream) -> Expr:
    if stream.accept("o", "!"):
        return Not(_parse_unary(stream))
    if stream.accept("o", "("):
        inner = parse_expression_tokens(stream)
        if not stream.accept("o", ")"):
            raise KconfigSyntaxError("missing ')'")
        return inner
    left = _parse_atom(stream)
    token = stream.peek()
    if token is not None and token[0] == "o" and token[1] in COMPARISONS:
        stream.take()
        return Compare(token[1], left, _parse_atom(stream))
    return left


def _parse_atom(stream: _TokenStream) -> Atom:
    kind, text = stream.take()
    if kind == "w" and text not in KEYWORDS:
        return make_atom(text)
    if kind == "s":
        return Const(text, quoted=True)
    if kind == "$":
        return Macro(text)
    raise KconfigSyntaxError(f"expected a symbol or value, found {text!r}")


def parse_expression(text: str) -> Expr:
    """Parse a Kconfig expression such as `NET && (INET || IPV6=y)`."""
    stream = _TokenStream(tokenize(text, _NO_MACROS))
    expr = parse_expression_tokens(stream)
    stream.end()
    return expr


def _parse_condition(stream: _TokenStream) -> Expr | None:
    """Parse an optional trailing `if expr`, then the end of the statement."""
    condition = parse_expression_tokens(stream) if stream.accept("w", "if") else None
    stream.end()
    return condition


# --------------------------------------------------------------------------
# Lines: continuations and help blocks

_HELP = re.compile(r"[ \t]*(?:help|---help---)[ \t]*(?:#.*)?")
_ASSIGNMENT = re.compile(
    r"[ \t]*(?P<name>[A-Za-z0-9_-]+)[ \t]*(?P<op>:=|\+=|=)(?P<value>.*)"
)


@dataclass(slots=True)
class Line:
    """One logical line: a statement (continuations joined) or a help block."""

    number: int
    text: str
    help: str | None = None


def logical_lines(text: str) -> Iterator[Line]:
    """Yield the statements of a Kconfig file and its help blocks.

    A help block ends at the first non-blank line indented less than the
    block's first line, or not indented at all, as in the kernel's lexer.
    """
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        number = index + 1
        if _HELP.fullmatch(lines[index]):
            help_text, index = _read_help(lines, index + 1)
            yield Line(number, "help", help_text)
            continue
        joined = lines[index]
        while joined.endswith("\\") and index + 1 < len(lines):
            index += 1
            joined = joined[:-1] + lines[index]
        index += 1
        if joined.strip():
            yield Line(number, joined)


def _read_help(lines: list[str], index: int) -> tuple[str, int]:
    """Return the help text starting at `index`, and the index after it."""
    body: list[str] = []
    first_indent = 0
    while index < len(lines):
        line = lines[index]
        if not line.strip():
            body.append("")
            index += 1
            continue
        indent = _indent(line)
        if indent == 0 or (first_indent and indent < first_indent):
            break
        first_indent = first_indent or indent
        body.append(" " * (indent - first_indent) + line.strip())
        index += 1
    return "\n".join(body).strip("\n"), index


def _indent(line: str) -> int:
    """Return the indentation of `line` in columns, tabs stopping every 8."""
    columns = 0
    for char in line:
        if char == "\t":
            columns = (columns & ~7) + 8
        elif char == " ":
            columns += 1
        else:
            break
    return columns


# --------------------------------------------------------------------------
# The parser


@dataclass(slots=True)
class _Block:
    """An open `if`, `menu` or `choice` block."""

    kind: str
    location: str
    file: str
    depends: list[Condition] = field(default_factory=list)
    visible: list[Condition] = field(default_factory=list)
    choice: Choice | None = None
    title: str = ""


@dataclass(slots=True)
class _Entry:
    """The statement that option lines (`depends on`, `help`, ...) apply to."""

    definition: Definition | None = None
    choice: Choice | None = None
    block: _Block | None = None  # a menu collecting its `depends on`
    inherited: list[Condition] = field(default_factory=list)
    visible: list[Condition] = field(default_factory=list)


class _Parser:
    """Reads the Kconfig files of one tree for one arch, in source order."""

    def __init__(self, root: Path, arch: str) -> None:
        self.root = root
        self.arch = arch
        self.macros = _Preprocessor(
            {"SRCARCH": arch, "ARCH": arch, "HEADER_ARCH": arch, "srctree": "."}
        )
        self.symbols: dict[str, Symbol] = {}
        self.choices: dict[str, Choice] = {}
        self.blocks: list[_Block] = []
        self.entry = _Entry()
        self.files: list[str] = []
        self.including: list[Path] = []
        self.warnings: list[str] = []
        self.arch_templates: set[str] = set()

    def parse(self) -> None:
        top = self.root / "Kconfig"
        if not top.is_file():
            raise InputError(
                f"{self.root} has no top-level Kconfig file",
                "pass the root of a Linux source tree",
            )
        self.parse_file(top)
        self.finish_entry()
        if self.blocks:
            block = self.blocks[-1]
            raise InputError(
                f"{block.location}: `{block.kind}` is never closed",
                "the Kconfig files are malformed; unpack the tree again",
            )

    def parse_file(self, path: Path) -> None:
        if path in self.including:
            raise InputError(
                f"{path}: Kconfig file sources itself",
                "the Kconfig files are malformed; unpack the tree again",
            )
        relative = str(path.relative_to(self.root))
        self.files.append(relative)
        self.including.append(path)
        text = path.read_text(encoding="utf-8", errors="replace")
        for line in logical_lines(text):
            self.parse_line(line, relative)
        self.finish_entry()
        self.including.pop()

    def parse_line(self, line: Line, file: str) -> None:
        where = f"{file}:{line.number}"
        if line.help is not None:
            self.set_help(line.help)
            return
        assignment = _ASSIGNMENT.fullmatch(line.text)
        if assignment and assignment["name"] not in KEYWORDS:
            self.finish_entry()
            value = assignment["value"].lstrip(" \t")
            self.macros.assign(assignment["name"], assignment["op"], value)
            return
        tokens = tokenize(line.text, self.macros)
        if not tokens:
            return
        try:
            self.statement(_TokenStream(tokens), where, file)
        except KconfigSyntaxError as error:
            self.warnings.append(f"{where}: {error}; statement skipped")

    def statement(self, stream: _TokenStream, where: str, file: str) -> None:
        kind, keyword = stream.peek() or ("", "")
        handler = _STATEMENTS.get(keyword) if kind == "w" else None
        if handler is not None:
            stream.take()
            self.finish_entry()
            handler(self, stream, where, file)
            return
        option = _OPTIONS.get(keyword) if kind == "w" else None
        if option is None:
            raise KconfigSyntaxError(f"unknown statement {keyword!r}")
        stream.take()
        option(self, stream, where)

    # Statements that start an entry or a block --------------------------------

    def config(self, stream: _TokenStream, where: str, file: str) -> None:
        self.start_config(stream, where, menuconfig=False)

    def menuconfig(self, stream: _TokenStream, where: str, file: str) -> None:
        self.start_config(stream, where, menuconfig=True)

    def start_config(self, stream: _TokenStream, where: str, menuconfig: bool) -> None:
        name = stream.word()
        stream.end()
        definition = Definition(where, menuconfig=menuconfig)
        symbol = self.symbols.setdefault(name, Symbol(name))
        symbol.definitions.append(definition)
        inherited, visible = self.enclosing_conditions()
        self.entry = _Entry(definition, inherited=inherited, visible=visible)
        choice = self.innermost_choice()
        if choice is not None:
            definition.choice = choice.location
            if name not in choice.members:
                choice.members.append(name)

    def choice(self, stream: _TokenStream, where: str, file: str) -> None:
        if stream.peek() is not None:
            stream.word()  # a named choice, as before Linux 6.11
        stream.end()
        choice = Choice(where)
        self.choices[where] = choice
        block = _Block("choice", where, file, choice=choice)
        self.blocks.append(block)
        self.entry = _Entry(choice=choice, block=block)

    def menu(self, stream: _TokenStream, where: str, file: str) -> None:
        title = stream.string()
        stream.end()
        block = _Block("menu", where, file, title=title)
        self.blocks.append(block)
        self.entry = _Entry(block=block)

    def if_block(self, stream: _TokenStream, where: str, file: str) -> None:
        expr = parse_expression_tokens(stream)
        stream.end()
        block = _Block("if", where, file)
        block.depends.append(Condition("if", expr, where))
        self.blocks.append(block)

    def end_block(self, stream: _TokenStream, where: str, kind: str) -> None:
        stream.end()
        if not self.blocks or self.blocks[-1].kind != kind:
            open_kind = self.blocks[-1].kind if self.blocks else "nothing"
            raise InputError(
                f"{where}: `end{kind}` closes {open_kind}",
                "the Kconfig files are malformed; unpack the tree again",
            )
        self.blocks.pop()

    def endif(self, stream: _TokenStream, where: str, file: str) -> None:
        self.end_block(stream, where, "if")

    def endmenu(self, stream: _TokenStream, where: str, file: str) -> None:
        self.end_block(stream, where, "menu")

    def endchoice(self, stream: _TokenStream, where: str, file: str) -> None:
        self.end_block(stream, where, "choice")

    def comment(self, stream: _TokenStream, where: str, file: str) -> None:
        stream.string()
        stream.end()
        self.entry = _Entry(block=_Block("comment", where, file))

    def mainmenu(self, stream: _TokenStream, where: str, file: str) -> None:
        stream.string()

    def source(self, stream: _TokenStream, where: str, file: str) -> None:
        self.include(stream, where, file, relative=False, optional=False)

    def rsource(self, stream: _TokenStream, where: str, file: str) -> None:
        self.include(stream, where, file, relative=True, optional=False)

    def osource(self, stream: _TokenStream, where: str, file: str) -> None:
        self.include(stream, where, file, relative=False, optional=True)

    def orsource(self, stream: _TokenStream, where: str, file: str) -> None:
        self.include(stream, where, file, relative=True, optional=True)

    def include(
        self,
        stream: _TokenStream,
        where: str,
        file: str,
        relative: bool,
        optional: bool,
    ) -> None:
        kind, name = stream.take()
        stream.end()
        if kind != "s":
            self.warnings.append(f"{where}: cannot expand source {name}; skipped")
            return
        self.note_arch_template(name)
        base = (self.root / file).parent if relative else self.root
        paths = _source_paths(base, name)
        if not paths and not optional:
            raise InputError(
                f"{where}: sourced Kconfig file {name!r} not found",
                "the source tree is incomplete; unpack it again",
            )
        depth = len(self.blocks)
        for path in paths:
            self.parse_file(path)
            if len(self.blocks) != depth:
                self.warnings.append(f"{path}: leaves a block open at its end")

    def note_arch_template(self, expanded: str) -> None:
        """Remember sourced paths under `arch/<this arch>/`, so that the scan of
        other arches can follow the same paths in their folders.
        """
        prefix = f"arch/{self.arch}/"
        if expanded.startswith(prefix):
            self.arch_templates.add(expanded[len(prefix) :])

    # Options of the current entry -------------------------------------------

    def set_type(self, stream: _TokenStream, where: str, kind: str) -> None:
        token = stream.peek()
        if token is not None and token[0] in ("s", "$"):
            text = stream.string()
            self.add_prompt(Prompt(text, _parse_condition(stream), where))
        else:
            stream.end()
        self.apply_type(kind, where)

    def apply_type(self, kind: str, where: str) -> None:
        if self.entry.choice is not None:
            self.entry.choice.type = kind
        elif self.entry.definition is not None:
            if self.entry.definition.type is None:
                self.entry.definition.type = kind
        else:
            self.warnings.append(f"{where}: type outside a config entry; ignored")

    def add_prompt(self, prompt: Prompt) -> None:
        if self.entry.choice is not None:
            self.entry.choice.prompts.append(prompt)
        elif self.entry.definition is not None:
            self.entry.definition.prompts.append(prompt)

    def prompt(self, stream: _TokenStream, where: str) -> None:
        text = stream.string()
        self.add_prompt(Prompt(text, _parse_condition(stream), where))

    def default(self, stream: _TokenStream, where: str) -> None:
        value = parse_expression_tokens(stream)
        default = Default(value, _parse_condition(stream), where)
        if self.entry.choice is not None:
            self.entry.choice.defaults.append(default)
        elif self.entry.definition is not None:
            self.entry.definition.defaults.append(default)

    def def_type(self, stream: _TokenStream, where: str, kind: str) -> None:
        self.default(stream, where)
        self.apply_type(kind, where)

    def depends(self, stream: _TokenStream, where: str) -> None:
        if not stream.accept("w", "on"):
            raise KconfigSyntaxError("expected 'on' after 'depends'")
        expr = parse_expression_tokens(stream)
        if stream.accept("w", "if"):
            # `depends on X if Y` (newer kernels): X applies only when Y is true.
            # NOTE: read as `X || !Y`; with Y=m and X=y this gives y.
            expr = Or((expr, Not(parse_expression_tokens(stream))))
        stream.end()
        condition = Condition("depends on", expr, where)
        if self.entry.definition is not None:
            self.entry.definition.depends.append(condition)
        elif self.entry.block is not None:
            block = self.entry.block
            kind = {"menu": "menu", "choice": "choice"}.get(block.kind, "depends on")
            title = block.choice.title if block.choice else block.title
            block.depends.append(Condition(kind, expr, where, title))
            if block.choice is not None:
                block.choice.depends.append(condition)

    def visible(self, stream: _TokenStream, where: str) -> None:
        if not stream.accept("w", "if"):
            raise KconfigSyntaxError("expected 'if' after 'visible'")
        expr = parse_expression_tokens(stream)
        stream.end()
        if self.entry.block is not None:
            title = self.entry.block.title
            self.entry.block.visible.append(Condition("visible if", expr, where, title))

    def select(self, stream: _TokenStream, where: str, imply: bool = False) -> None:
        target = stream.word()
        item = Select(target, _parse_condition(stream), where)
        if self.entry.definition is not None:
            (
                self.entry.definition.implies
                if imply
                else self.entry.definition.selects
            ).append(item)

    def imply(self, stream: _TokenStream, where: str) -> None:
        self.select(stream, where, imply=True)

    def range(self, stream: _TokenStream, where: str) -> None:
        low, high = _parse_atom(stream), _parse_atom(stream)
        item = Range(low, high, _parse_condition(stream), where)
        if self.entry.definition is not None:
            self.entry.definition.ranges.append(item)

    def flag(self, stream: _TokenStream, where: str, name: str) -> None:
        stream.end()
        if self.entry.choice is not None and name == "optional":
            self.entry.choice.optional = True
        elif self.entry.definition is not None:
            self.entry.definition.flags.append(name)

    def option(self, stream: _TokenStream, where: str) -> None:
        """`option modules`, `option env=...` and others of kernels before 5.13."""
        name = stream.word()
        if name == "modules" and self.entry.definition is not None:
            self.entry.definition.flags.append("modules")

    def set_help(self, text: str) -> None:
        if self.entry.definition is not None:
            self.entry.definition.help = text
        elif self.entry.choice is not None:
            self.entry.choice.help = text

    # Entries and blocks ------------------------------------------------------

    def finish_entry(self) -> None:
        """Close the current entry: its enclosing conditions follow its own."""
        definition = self.entry.definition
        if definition is not None:
            definition.depends.extend(self.entry.inherited)
            definition.visible.extend(self.entry.visible)
        self.entry = _Entry()

    def enclosing_conditions(self) -> tuple[list[Condition], list[Condition]]:
        """Return the dependencies and `visible if`s of the open blocks,
        innermost first.
        """
        depends: list[Condition] = []
        visible: list[Condition] = []
        for block in reversed(self.blocks):
            depends.extend(block.depends)
            visible.extend(block.visible)
        return depends, visible

    def innermost_choice(self) -> Choice | None:
        for block in reversed(self.blocks):
            if block.kind == "choice":
                return block.choice
            if block.kind == "menu":
                return None
        return None


_Handler = Callable[[_Parser, _TokenStream, str, str], None]
_Option = Callable[[_Parser, _TokenStream, str], None]

_STATEMENTS: dict[str, _Handler] = {
    "config": _Parser.config,
    "menuconfig": _Parser.menuconfig,
    "choice": _Parser.choice,
    "endchoice": _Parser.endchoice,
    "menu": _Parser.menu,
    "endmenu": _Parser.endmenu,
    "if": _Parser.if_block,
    "endif": _Parser.endif,
    "comment": _Parser.comment,
    "mainmenu": _Parser.mainmenu,
    "source": _Parser.source,
    "rsource": _Parser.rsource,
    "osource": _Parser.osource,
    "orsource": _Parser.orsource,
}


def _type_option(kind: str) -> _Option:
    return lambda parser, stream, where: parser.set_type(stream, where, kind)


def _def_option(kind: str) -> _Option:
    return lambda parser, stream, where: parser.def_type(stream, where, kind)


def _flag_option(name: str) -> _Option:
    return lambda parser, stream, where: parser.flag(stream, where, name)


_OPTIONS: dict[str, _Option] = {
    **{kind: _type_option(kind) for kind in SYMBOL_TYPES},
    "def_bool": _def_option("bool"),
    "def_tristate": _def_option("tristate"),
    "prompt": _Parser.prompt,
    "default": _Parser.default,
    "depends": _Parser.depends,
    "visible": _Parser.visible,
    "select": _Parser.select,
    "imply": _Parser.imply,
    "range": _Parser.range,
    "option": _Parser.option,
    **{name: _flag_option(name) for name in ("modules", "transitional", "optional")},
}


# Words the kernel's lexer turns into keywords, so they never name a symbol.
KEYWORDS = frozenset([*_STATEMENTS, *_OPTIONS, "on", "if", "help"])


def _source_paths(base: Path, name: str) -> list[Path]:
    if any(char in name for char in "*?["):
        return sorted(Path(p) for p in glob.glob(str(base / name)))
    path = base / name
    return [path] if path.is_file() else []


def _link_reverse_dependencies(symbols: dict[str, Symbol]) -> None:
    """Record each `select` and `imply` on its target too."""
    for name, symbol in symbols.items():
        for definition in symbol.definitions:
            for item in definition.selects:
                if target := symbols.get(item.symbol):
                    target.selected_by.append(
                        Select(name, item.condition, item.location)
                    )
            for item in definition.implies:
                if target := symbols.get(item.symbol):
                    target.implied_by.append(
                        Select(name, item.condition, item.location)
                    )


# --------------------------------------------------------------------------
# Symbols of other arches

_CONFIG_LINE = re.compile(
    r"[ \t]*(?:menu)?config[ \t]+(?P<name>[A-Za-z0-9_]+)[ \t]*(?:#.*)?"
)
_SOURCE_LINE = re.compile(r'[ \t]*o?r?source[ \t]+"(?P<path>[^"]+)"')
_ARCH_VARIABLE = re.compile(r"\$\((?:SRCARCH|ARCH|HEADER_ARCH)\)")


def scan_other_arches(
    root: Path, arch: str, read: set[str], templates: set[str]
) -> dict[str, set[str]]:
    """Return, for each symbol defined in files that `arch` does not read, the
    arches whose Kconfig files define it.

    This is a light scan of config and source lines only, without expressions.
    It serves explanations such as "GSC is defined only for parisc".
    """
    found: dict[str, set[str]] = {}
    arch_root = root / "arch"
    for folder in sorted(arch_root.iterdir()) if arch_root.is_dir() else []:
        if folder.name == arch or not (folder / "Kconfig").is_file():
            continue
        starts = {"Kconfig", *templates}
        pending = [f"arch/{folder.name}/{name}" for name in sorted(starts)]
        for name in _reachable_files(root, folder.name, pending, read):
            found.setdefault(name, set()).add(folder.name)
    return found


def _reachable_files(
    root: Path, arch: str, pending: list[str], read: set[str]
) -> Iterator[str]:
    """Yield the symbols defined in the files reachable from `pending` that
    are not in `read`, following `source` lines with SRCARCH=`arch`.
    """
    seen = set(read)
    while pending:
        relative = pending.pop()
        path = root / relative
        if relative in seen or not path.is_file():
            continue
        seen.add(relative)
        text = path.read_text(encoding="utf-8", errors="replace")
        for line in logical_lines(text):
            if line.help is not None:
                continue
            if match := _CONFIG_LINE.fullmatch(line.text):
                yield match["name"]
            elif match := _SOURCE_LINE.match(line.text):
                name = _ARCH_VARIABLE.sub(arch, match["path"])
                if "$" not in name:
                    pending.append(name)


# --------------------------------------------------------------------------
# Entry points and the cache


def parse_tree(source_dir: Path, kernel_arch: str) -> KconfigTree:
    """Read the Kconfig files of `source_dir` as `make ARCH=<kernel_arch>` does.

    Raises InputError for a folder without a top-level Kconfig, a missing
    `source` file or unbalanced blocks, naming the `file:line`. Statements this
    parser cannot read are skipped and listed in `KconfigTree.warnings`.
    """
    parser = _Parser(source_dir, kernel_arch)
    parser.parse()
    symbols = parser.symbols
    _link_reverse_dependencies(symbols)
    elsewhere = scan_other_arches(
        source_dir, kernel_arch, set(parser.files), parser.arch_templates
    )
    other = {
        name: sorted(arches)
        for name, arches in elsewhere.items()
        if name not in symbols
    }
    return KconfigTree.from_symbols(
        kernel_arch, symbols, parser.choices, parser.files, other, parser.warnings
    )


def scan_symbols(source_dir: Path, kernel_arch: str) -> SymbolIndex:
    """Scan the Kconfig files of `source_dir` as seen with ARCH=`kernel_arch`."""
    return parse_tree(source_dir, kernel_arch)


def cache_path(cache_dir: Path, key: str, kernel_arch: str) -> Path:
    """Return where load_tree() caches the tree of source `key` for an arch."""
    return cache_dir / f"{key}-{kernel_arch}.kconfig.json"


def load_tree(
    source_dir: Path,
    kernel_arch: str,
    cache_dir: Path | None = None,
    key: str | None = None,
) -> KconfigTree:
    """Return the Kconfig tree of `source_dir` for `kernel_arch`.

    With `cache_dir` and `key` (the caller's name for the source's content),
    the parsed tree is cached as `<cache_dir>/<key>-<arch>.kconfig.json` and
    reused while every Kconfig file it read keeps its size and modification
    time, so an edited folder is parsed again. Writes are atomic, so two
    processes may race to write the same entry.
    """
    if cache_dir is None or key is None:
        return parse_tree(source_dir, kernel_arch)
    path = cache_path(cache_dir, key, kernel_arch)
    tree = _read_cache(path, source_dir)
    if tree is not None:
        return tree
    tree = parse_tree(source_dir, kernel_arch)
    data = tree.to_json()
    data["stamps"] = _stamps(source_dir, tree.file_list)
    atomic_write(path, json.dumps(data, separators=(",", ":")))
    return tree


def _read_cache(path: Path, source_dir: Path) -> KconfigTree | None:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT:
        return None
    if data.get("stamps") != _stamps(source_dir, data.get("files", [])):
        return None
    return KconfigTree.from_json(data)


def _stamps(source_dir: Path, files: list[str]) -> list[list[int]]:
    """Return (size, mtime in ns) of each file; (-1, -1) for a missing one."""
    stamps: list[list[int]] = []
    for name in files:
        try:
            status = os.stat(source_dir / name)
        except OSError:
            stamps.append([-1, -1])
            continue
        stamps.append([status.st_size, status.st_mtime_ns])
    return stamps
