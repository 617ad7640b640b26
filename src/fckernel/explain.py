"""Explanations of unmet and unknown requests, and the extra requests that
would satisfy them.

Everything here reads a `KconfigTree` and the values of a resolved `.config`
(symbol to `y`, `m`, `"text"` or a number; absent means `n`). Kconfig's own run
still decides every value: these functions explain its result and propose
requests, and the caller checks the proposals with another `make olddefconfig`.

- `explain_unmet()`: the dependency that failed, with the value of each symbol
  in it, and the chain of symbols that block it (down to one the user can set,
  one that only another arch defines, a `select`, or a choice).
- `explain_unknown()`: a known rename or removal from `data/renames.toml`, the
  arches that do define the symbol, or the closest spellings in this tree.
- `resolve_deps()`: the fewest extra requests that make unmet requests
  satisfiable, following `depends on` down the chain.
- `describe_symbol()` and `format_symbol_report()`: what `fckernel explain`
  shows for one symbol.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from fckernel.kconfig import (
    And,
    Choice,
    Condition,
    Const,
    Expr,
    KconfigTree,
    Macro,
    Not,
    Or,
    Ref,
    Select,
    Symbol,
    Tristate,
    evaluate,
    format_expression,
    symbols_in,
    tristate_of,
)

# Deeper chains than this are cut: real trees need about 5 levels.
MAX_CHAIN_DEPTH = 12
MAX_SUGGESTIONS = 3
# Alternatives of `A || B || ...` described one by one in a message.
MAX_ALTERNATIVES = 3
# difflib ratio; 0.85 accepts one wrong or missing letter in a 25-letter name.
SPELLING_CUTOFF = 0.85
LOGIC_TYPES = ("bool", "tristate")
# Explanation kinds that no added request can change.
HOPELESS = ("other-arch", "transitional", "selected", "choice", "range")


# --------------------------------------------------------------------------
# Renames and removals


@dataclass(frozen=True)
class Rename:
    """A symbol that a kernel release removed or renamed (`data/renames.toml`)."""

    symbol: str
    version: str
    symbols: list[str]
    boot_argument: str | None
    note: str

    def message(self) -> str:
        if self.symbols:
            names = " and ".join(f"CONFIG_{name}" for name in self.symbols)
            action = f"request {names} instead"
        elif self.boot_argument:
            action = f"pass the boot argument {self.boot_argument} instead"
        else:
            action = "it has no replacement"
        if self.boot_argument and self.symbols:
            action += f", or pass the boot argument {self.boot_argument}"
        return f"CONFIG_{self.symbol} was removed in Linux {self.version}; {action}"


@cache
def load_renames() -> dict[str, Rename]:
    """Return the known renames and removals, by old symbol name."""
    text = (resources.files("fckernel") / "data" / "renames.toml").read_text()
    return {
        name: Rename(
            symbol=name,
            version=fields["version"],
            symbols=list(fields.get("symbols", [])),
            boot_argument=fields.get("boot_argument"),
            note=fields["note"],
        )
        for name, fields in tomllib.loads(text).items()
    }


# --------------------------------------------------------------------------
# Unknown symbols


@dataclass
class UnknownSymbol:
    """The reasons a symbol is not defined in this tree for this arch, and what
    to request instead.
    """

    symbol: str
    arch: str
    rename: Rename | None = None
    arches: list[str] = field(default_factory=list)
    suggestions: list[str] = field(default_factory=list)

    @property
    def message(self) -> str:
        base = f"CONFIG_{self.symbol} does not exist in this kernel for {self.arch}"
        if self.rename is not None:
            return f"{self.rename.message()}. {self.rename.note}"
        if self.arches:
            return f"{base}; it is defined only for {_join(self.arches)}"
        if self.suggestions:
            names = ", ".join(f"CONFIG_{name}" for name in self.suggestions)
            return f"{base}; did you mean {names}?"
        return base

    def to_json(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "rename": asdict(self.rename) if self.rename else None,
            "arches": self.arches,
            "suggestions": self.suggestions,
            "message": self.message,
        }


def explain_unknown(tree: KconfigTree, symbol: str) -> UnknownSymbol:
    """Explain a symbol the tree does not define: a known rename or removal,
    the arches that define it, or the closest spellings among this tree's
    symbols.
    """
    result = UnknownSymbol(symbol, tree.arch)
    result.rename = load_renames().get(symbol)
    result.arches = tree.arches_defining(symbol)
    if result.rename is None and not result.arches:
        result.suggestions = difflib.get_close_matches(
            symbol, tree.names(), n=MAX_SUGGESTIONS, cutoff=SPELLING_CUTOFF
        )
    return result


# --------------------------------------------------------------------------
# Blockers: what keeps a dependency from being met


@dataclass
class Blocker:
    """One reason a dependency is not met, with its own causes.

    `reason` is one of:
    - `off`: `symbol` has a visible prompt; requesting `symbol=needed` fixes it.
    - `requested`: like `off` or `on`, but the user requested `symbol=value`.
    - `on`: `symbol` must be `n` (the dependency reads `!symbol`) but is not.
    - `selected`: like `on`, but a `select` forces it; `condition` names it.
    - `dependency`: `symbol`'s own `condition` fails, written at the
      locations that `conditions` lists; see `causes`.
    - `no-prompt`: no prompt of `symbol` is visible in this config, so only
      a default or a `select` sets it.
    - `other-arch`: only `arches` define `symbol`, not the tree's arch.
    - `undefined`: no Kconfig file of the tree defines `symbol`.
    - `any-of`: none of the alternatives in `causes` is met.
    - `toolchain`: a `$(...)` toolchain test, which fckernel does not run.
    - `constant`: `depends on m` or `n`; `value` is the most it allows.
    - `expression`: a comparison in `condition` that is false.
    - `too-deep`: the chain is longer than MAX_CHAIN_DEPTH or loops.
    """

    reason: str
    symbol: str = ""
    value: str = "n"
    needed: str = "y"
    condition: str = ""
    location: str = ""
    conditions: list[str] = field(default_factory=list)  # "expr (file:line)"
    arches: list[str] = field(default_factory=list)
    causes: list[Blocker] = field(default_factory=list)

    def arch_bound(self) -> bool:
        """Return whether only another arch could lift this blocker."""
        if self.reason == "other-arch":
            return True
        if self.reason == "any-of":
            return bool(self.causes) and all(c.arch_bound() for c in self.causes)
        return any(cause.arch_bound() for cause in self.causes)

    def to_json(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if v and k != "causes"}
        data["causes"] = [cause.to_json() for cause in self.causes]
        return data


class _BlockerFinder:
    """Walks dependencies down from a failing expression to their causes."""

    def __init__(
        self,
        tree: KconfigTree,
        values: Mapping[str, str],
        requests: Mapping[str, str] | None = None,
    ) -> None:
        self.tree = tree
        self.values = values
        self.requests = requests or {}

    def value(self, name: str) -> str:
        return self.values.get(name, "n")

    def reaches(self, expr: Expr | None, need: Tristate) -> bool:
        return evaluate(expr, self.values, self.tree.types) >= need

    def text(self, expr: Expr | None) -> str:
        return format_expression(expr, self.values)

    def expression(
        self, expr: Expr, need: Tristate, chain: tuple[str, ...]
    ) -> list[Blocker]:
        """Return what keeps `expr` below `need`; empty when it reaches it."""
        if self.reaches(expr, need):
            return []
        if isinstance(expr, And):
            found: list[Blocker] = []
            for item in expr.items:
                found += self.expression(item, need, chain)
            return found
        if isinstance(expr, Or):
            return [self.alternatives(expr, need, chain)]
        if isinstance(expr, Ref):
            return [self.symbol(expr.name, need, chain)]
        if isinstance(expr, Not) and isinstance(expr.operand, Ref):
            return [self.must_be_off(expr.operand.name, Tristate(2 - need))]
        if isinstance(expr, Macro):
            return [Blocker("toolchain", condition=expr.text)]
        if isinstance(expr, Const) and not expr.quoted:
            return [Blocker("constant", value=expr.value)]
        return [Blocker("expression", condition=self.text(expr))]

    def alternatives(self, expr: Or, need: Tristate, chain: tuple[str, ...]) -> Blocker:
        causes = []
        for item in expr.items:
            found = self.expression(item, need, chain)
            if len(found) == 1:
                causes.append(found[0])
            else:
                causes.append(
                    Blocker("dependency", condition=self.text(item), causes=found)
                )
        return Blocker("any-of", condition=self.text(expr), causes=causes)

    def symbol(self, name: str, need: Tristate, chain: tuple[str, ...]) -> Blocker:
        """Return why symbol `name` is below `need`."""
        blocker = Blocker("off", name, self.value(name), need.letter)
        symbol = self.tree.symbol(name)
        if symbol is not None and symbol.type != "tristate" and need.letter == "m":
            # A bool has no m: the least value that meets the need is y.
            blocker.needed = "y"
        if symbol is None:
            blocker.arches = self.tree.arches_defining(name)
            blocker.reason = "other-arch" if blocker.arches else "undefined"
            return blocker
        if len(chain) >= MAX_CHAIN_DEPTH or name in chain:
            blocker.reason = "too-deep"
            return blocker
        failing = self.failing_conditions(symbol, need)
        if failing:
            blocker.reason = "dependency"
            blocker.condition = " && ".join(self.text(c.expr) for c in failing)
            blocker.location = failing[0].location
            blocker.conditions = self.located(failing)
            for condition in failing:
                blocker.causes += self.expression(condition.expr, need, (*chain, name))
        elif not self.reaches(symbol.visibility(), need):
            blocker.reason = "no-prompt"
            blocker.location = symbol.locations[0]
        elif tristate_of(self.requests.get(name)) < need and name in self.requests:
            blocker.reason = "requested"
        return blocker

    def located(self, conditions: list[Condition]) -> list[str]:
        """Return each condition as `expr (file:line)`, with its values."""
        return [f"{self.text(c.expr)} ({c.location})" for c in conditions]

    def failing_conditions(self, symbol: Symbol, need: Tristate) -> list[Condition]:
        """Return the failing dependencies of the definition that fails least;
        empty when all dependencies of some definition are met.
        """
        best: list[Condition] | None = None
        for definition in symbol.definitions:
            failing = [c for c in definition.depends if not self.reaches(c.expr, need)]
            if best is None or len(failing) < len(best):
                best = failing
        return best or []

    def must_be_off(self, name: str, limit: Tristate) -> Blocker:
        """Return why `name` is above `limit`, for a dependency on `!name`."""
        blocker = Blocker("on", name, self.value(name), limit.letter)
        symbol = self.tree.symbol(name)
        if symbol is None:
            return blocker
        active = self.active_selects(symbol)
        if active:
            blocker.reason = "selected"
            blocker.condition = ", ".join(active)
        elif tristate_of(self.requests.get(name)) > limit:
            blocker.reason = "requested"
        return blocker

    def active_selects(self, symbol: Symbol) -> list[str]:
        """Return `X [=y] (file:line)` for each select of `symbol` in force."""
        active = []
        for item in symbol.selected_by:
            if self.reaches(Ref(item.symbol), Tristate.M) and self.reaches(
                item.condition, Tristate.M
            ):
                text = f"{item.symbol} [={self.value(item.symbol)}]"
                if item.condition is not None:
                    text += f" if {self.text(item.condition)}"
                active.append(f"{text} ({item.location})")
        return active


def blocker_sentences(blocker: Blocker, arch: str) -> list[str]:
    """Describe `blocker` and its main cause at each level, one sentence each.

    The main cause is the first one that only another arch could lift, else
    the first one. For alternatives (`any-of`), each is described briefly.
    """
    sentences = [_blocker_sentence(blocker, arch)]
    if blocker.reason == "any-of":
        causes = blocker.causes[:MAX_ALTERNATIVES]
        return sentences + [_blocker_sentence(cause, arch) for cause in causes]
    main = main_blocker(blocker.causes)
    if main is not None:
        sentences += blocker_sentences(main, arch)
    return sentences


def main_blocker(blockers: list[Blocker]) -> Blocker | None:
    """Return the first blocker only another arch could lift, else the first."""
    bound = [blocker for blocker in blockers if blocker.arch_bound()]
    candidates = bound or blockers
    return candidates[0] if candidates else None


def _blocker_sentence(blocker: Blocker, arch: str) -> str:
    name, value = blocker.symbol, blocker.value
    reason = blocker.reason
    if reason == "off":
        return (
            f"{name} is {value} and can be set: request CONFIG_{name}={blocker.needed}"
        )
    if reason == "on":
        return f"{name} is {value} but must be n: request CONFIG_{name}=n"
    if reason == "requested":
        return f"{name} is {value} because CONFIG_{name}={value} was requested"
    if reason == "selected":
        return f"{name} is {value} but must be n, and {blocker.condition} selects it"

    if reason == "dependency" and name:
        return f"{name} depends on {_on_each(blocker.conditions)}"
    if reason == "dependency":
        return f"{blocker.condition} is not met"

    if reason == "no-prompt":
        return (
            f"{name} has no prompt in this config ({blocker.location}), so only "
            "a default or a select can turn it on"
        )
    if reason == "other-arch":
        return f"{name} is defined only for {_join(blocker.arches)}, not for {arch}"
    if reason == "undefined":
        return f"{name} is not defined by any Kconfig file of this tree"

    if reason == "any-of":
        return f"none of {blocker.condition} is met"
    if reason == "toolchain":
        return (
            f"{blocker.condition} is a toolchain test that fckernel does not run; "
            "it counts as n here"
        )
    if reason == "constant" and value == "m":
        return "`depends on m` allows it only as a module"
    if reason == "constant":
        return f"`depends on {value}` is never met"
    if reason == "too-deep":
        return f"{name} is {value}; its dependency chain is too long to follow"
    return f"{blocker.condition} is not met"


# --------------------------------------------------------------------------
# Unmet requests


@dataclass
class Explanation:
    """The reason a request did not keep its value after Kconfig resolved the
    config.

    `kind` is one of:
    - `dependency`: `condition` (at `location`) is not met; see `blockers`.
    - `other-arch`: like `dependency`, but the chain ends in a symbol only
      other arches define, so no request on this arch can lift it.
    - `module-limit`: `y` was requested but a dependency is `m`.
    - `hidden-prompt`: the dependencies are met but the prompt is hidden
      (`condition` is the prompt's or a menu's `visible if`).
    - `no-prompt`: the symbol has no prompt; defaults and selects set it.
    - `selected`: a lower value was requested but `details` select it.
    - `choice`: the symbol is in a choice and `details` name the chosen one.
    - `range`: the requested number is outside `details`.
    - `transitional`: the symbol only carries old configs over to a new name.
    - `unexplained`: none of the above; Kconfig's reason is not known here.
    """

    symbol: str
    requested: str
    actual: str | None
    kind: str
    arch: str
    condition: str = ""
    location: str = ""
    conditions: list[str] = field(default_factory=list)  # "expr (file:line)"
    blockers: list[Blocker] = field(default_factory=list)
    details: list[str] = field(default_factory=list)

    @property
    def message(self) -> str:
        sentences = [self._lead()]
        main = main_blocker(self.blockers)
        if main is not None:
            sentences += blocker_sentences(main, self.arch)
        if self.kind == "other-arch":
            sentences.append(
                f"So CONFIG_{self.symbol} cannot be enabled on {self.arch}"
            )
        return ". ".join(_capitalize(s) for s in sentences) + "."

    def _lead(self) -> str:
        name = f"CONFIG_{self.symbol}"
        kind = self.kind
        if kind in ("dependency", "other-arch"):
            return f"{name} depends on {_on_each(self.conditions)}"
        if kind == "module-limit":
            return f"{name} can be at most m: it depends on {_on_each(self.conditions)}"
        if kind == "hidden-prompt":
            return f"{name} has no visible prompt: {' and '.join(self.conditions)}"
        if kind == "no-prompt":
            sources = "; ".join(self.details) or "none applies"
            return (
                f"{name} has no prompt, so only defaults and selects set it: {sources}"
            )
        if kind == "selected":
            return (
                f"{name} is forced to {self.actual}: selected by {_join(self.details)}"
            )
        if kind in ("choice", "range", "transitional"):
            return f"{name} " + " ".join(self.details)
        return (
            f"Kconfig resolved {name} to {self.actual or 'n'}; fckernel found no "
            "dependency, select or choice that explains it"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "requested": self.requested,
            "actual": self.actual,
            "kind": self.kind,
            "condition": self.condition,
            "location": self.location,
            "conditions": self.conditions,
            "blockers": [blocker.to_json() for blocker in self.blockers],
            "details": self.details,
            "message": self.message,
        }


def explain_request(
    tree: KconfigTree,
    symbol: str,
    requested: str,
    values: Mapping[str, str],
    requests: Mapping[str, str] | None = None,
) -> Explanation | UnknownSymbol:
    """Explain a request that is `unmet` or `unknown` in the resolved `values`.

    With `requests` (symbol to value, all of the job's requests), the
    explanation names another request when that request blocks this one.
    """
    if symbol not in tree:
        return explain_unknown(tree, symbol)
    return explain_unmet(tree, symbol, requested, values, requests)


def explain_unmet(
    tree: KconfigTree,
    symbol: str,
    requested: str,
    values: Mapping[str, str],
    requests: Mapping[str, str] | None = None,
) -> Explanation:
    """Explain why `symbol` did not keep `requested` in the resolved `values`.

    The symbol must exist in `tree`; use explain_request() when it may not.
    """
    found = tree.symbol(symbol)
    if found is None:
        raise KeyError(symbol)
    finder = _BlockerFinder(tree, values, requests)
    explainer = _UnmetExplainer(finder, found, requested)
    return explainer.explain()


class _UnmetExplainer:
    def __init__(self, finder: _BlockerFinder, symbol: Symbol, requested: str) -> None:
        self.tree = finder.tree
        self.values = finder.values
        self.finder = finder
        self.symbol = symbol
        self.requested = requested
        self.actual = self.values.get(symbol.name)
        self.result = Explanation(
            symbol.name, requested, self.actual, "unexplained", self.tree.arch
        )

    def explain(self) -> Explanation:
        if "transitional" in (f for d in self.symbol.definitions for f in d.flags):
            return self.transitional()
        if self.symbol.type in LOGIC_TYPES:
            want, have = tristate_of(self.requested), tristate_of(self.actual)
            if have < want:
                return self.too_low(want)
            if have > want:
                return self.too_high(want)
            return self.result
        return self.wrong_value()

    def too_low(self, want: Tristate) -> Explanation:
        """Explain a symbol that ended below the requested y or m."""
        failing = self.finder.failing_conditions(self.symbol, want)
        if failing:
            return self.dependency(failing, want)
        if not self.finder.reaches(self.symbol.visibility(), want):
            return self.hidden(want)
        choice = self.tree.choice_of(self.symbol)
        if choice is not None:
            return self.choice(choice)
        return self.result

    def too_high(self, want: Tristate) -> Explanation:
        """Explain a symbol that ended above the requested n or m."""
        active = self.finder.active_selects(self.symbol)
        if active:
            self.result.kind = "selected"
            self.result.details = active
            return self.result
        choice = self.tree.choice_of(self.symbol)
        if choice is not None:
            return self.choice(choice)
        if not self.finder.reaches(self.symbol.visibility(), Tristate.M):
            return self.hidden(Tristate.M)
        return self.result

    def wrong_value(self) -> Explanation:
        """Explain an int, hex or string symbol that ended with another value."""
        failing = self.finder.failing_conditions(self.symbol, Tristate.M)
        if failing:
            return self.dependency(failing, Tristate.M)
        if not self.finder.reaches(self.symbol.visibility(), Tristate.M):
            return self.hidden(Tristate.M)
        for item in self.symbol.ranges:
            if self.finder.reaches(item.condition, Tristate.M):
                low = format_expression(item.low, self.values)
                high = format_expression(item.high, self.values)
                self.result.kind = "range"
                self.result.details = [
                    f"must be within range {low} {high} ({item.location})"
                ]
                return self.result
        return self.result

    def dependency(self, failing: list[Condition], want: Tristate) -> Explanation:
        result = self.result
        result.condition = " && ".join(self.finder.text(c.expr) for c in failing)
        result.location = failing[0].location
        result.conditions = self.finder.located(failing)
        for condition in failing:
            result.blockers += self.finder.expression(
                condition.expr, want, (self.symbol.name,)
            )
        at_least_m = all(self.finder.reaches(c.expr, Tristate.M) for c in failing)
        if want == Tristate.Y and at_least_m:
            result.kind = "module-limit"
        elif any(blocker.arch_bound() for blocker in result.blockers):
            result.kind = "other-arch"
        else:
            result.kind = "dependency"
        return result

    def hidden(self, want: Tristate) -> Explanation:
        """Explain a symbol whose dependencies are met but whose prompt is hidden."""
        result = self.result
        if not self.symbol.prompts:
            result.kind = "no-prompt"
            result.details = self.value_sources()
            return result
        conditions = self.prompt_conditions(want)
        if not conditions:
            return result
        result.kind = "hidden-prompt"
        result.condition = " && ".join(self.finder.text(c) for c, _ in conditions)
        result.location = conditions[0][1]
        result.conditions = [f"{self.finder.text(c)} ({at})" for c, at in conditions]
        for expr, _ in conditions:
            result.blockers += self.finder.expression(expr, want, (self.symbol.name,))
        return result

    def prompt_conditions(self, want: Tristate) -> list[tuple[Expr, str]]:
        """Return the prompt `if`s and menu `visible if`s that are not met."""
        found: list[tuple[Expr, str]] = []
        for definition in self.symbol.definitions:
            for prompt in definition.prompts:
                if not self.finder.reaches(prompt.condition, want):
                    assert prompt.condition is not None
                    found.append((prompt.condition, prompt.location))
            for condition in definition.visible:
                if not self.finder.reaches(condition.expr, want):
                    found.append((condition.expr, condition.location))
        return found

    def value_sources(self) -> list[str]:
        """Return the defaults and selects that could set a prompt-less symbol."""
        sources = []
        for default in self.symbol.defaults:
            text = f"default {format_expression(default.value, self.values)}"
            if default.condition is not None:
                text += f" if {self.finder.text(default.condition)}"
            sources.append(f"{text} ({default.location})")
        for item in self.symbol.selected_by:
            sources.append(
                f"selected by {item.symbol} [={self.finder.value(item.symbol)}] "
                f"({item.location})"
            )
        return sources

    def choice(self, choice: Choice) -> Explanation:
        chosen = [m for m in choice.members if self.values.get(m) == "y"]
        self.result.kind = "choice"
        picked = ", ".join(f"{m} [=y]" for m in chosen) or "no member"
        self.result.details = [
            f'is an option of the choice "{choice.title}" ({choice.location}), '
            f"which has {picked}; request the option you want as y and leave "
            "the others unset"
        ]
        return self.result

    def transitional(self) -> Explanation:
        self.result.kind = "transitional"
        self.result.details = [
            "is transitional: Kconfig reads it from old configs only to set "
            "its new name, and never writes it"
        ]
        return self.result


# --------------------------------------------------------------------------
# Resolving dependencies


@dataclass
class Addition:
    """A request that resolve_deps() adds, and which request needs it."""

    symbol: str
    value: str
    needed_by: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Rejection:
    """An unmet request that no added request can satisfy, and why."""

    symbol: str
    value: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Resolution:
    """The result of resolve_deps(): requests to add, and requests it cannot
    satisfy.
    """

    additions: list[Addition] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)

    def requests(self) -> dict[str, str]:
        """Return the additions as symbol to value, for a fragment or --set."""
        return {addition.symbol: addition.value for addition in self.additions}

    def to_json(self) -> dict[str, Any]:
        return {
            "additions": [a.to_json() for a in self.additions],
            "rejections": [r.to_json() for r in self.rejections],
        }


@dataclass
class _Plan:
    """Assignments that satisfy a dependency, or why none can."""

    assignments: dict[str, tuple[str, str]] = field(default_factory=dict)
    failure: str | None = None

    @property
    def cost(self) -> int:
        return len(self.assignments)

    def merge(self, other: _Plan) -> None:
        if other.failure is not None:
            self.failure = self.failure or other.failure
            return
        for name, (value, reason) in other.assignments.items():
            previous = self.assignments.get(name)
            if previous is not None and _opposed(previous[0], value):
                self.failure = self.failure or (f"{name} would have to be both n and y")
            elif previous is None or tristate_of(value) > tristate_of(previous[0]):
                self.assignments[name] = (value, reason)


def _opposed(first: str, second: str) -> bool:
    """Return whether one value turns a symbol off and the other turns it on."""
    return (first == "n") != (second == "n")


def _failed(reason: str) -> _Plan:
    return _Plan(failure=reason)


def resolve_deps(
    tree: KconfigTree,
    unmet: Mapping[str, str],
    values: Mapping[str, str],
    explicit: Mapping[str, str],
) -> Resolution:
    """Find the fewest extra requests that satisfy the dependencies of each
    unmet request.

    `unmet` maps each unmet request's symbol to its requested value, `values`
    is the resolved config, and `explicit` the user's own requests (symbol to
    value). Those are never overridden, so a request that needs one of them
    the other way is rejected. So is a request that needs a symbol this arch
    does not define, or one with no prompt and no default that could turn it
    on. For `A || B` the alternative needing the fewest changes wins, the
    first one on a tie. Only `y` and `m` requests of bool and tristate symbols
    are planned.

    The caller adds the additions as requests and runs `make olddefconfig`
    again; Kconfig's result is still checked as usual.

    NOTE: each request is planned against the resolved config alone, so an
    addition for one request can break another request's `depends on !X`.
    Only that rerun of Kconfig shows it.
    """
    planner = _Planner(tree, values, explicit)
    resolution = Resolution()
    planned: dict[str, tuple[str, str, str]] = {}
    for symbol, value in unmet.items():
        explanation = explain_request(tree, symbol, value, values, explicit)
        if isinstance(explanation, UnknownSymbol) or explanation.kind in HOPELESS:
            plan = _failed(explanation.message)
        else:
            plan = planner.plan_request(symbol, value)
        if plan.failure is None and not plan.assignments:
            plan.failure = f"no added request can help: {explanation.message}"
        conflict = _conflict(plan, planned)
        if plan.failure is not None or conflict is not None:
            reason = plan.failure or conflict or ""
            resolution.rejections.append(Rejection(symbol, value, reason))
            continue
        for name, (assigned, reason) in plan.assignments.items():
            planned.setdefault(name, (assigned, symbol, reason))
    for name, (assigned, needed_by, reason) in planned.items():
        if tristate_of(explicit.get(name)) < tristate_of(assigned) or (
            assigned == "n" and explicit.get(name) != "n"
        ):
            resolution.additions.append(Addition(name, assigned, needed_by, reason))
    return resolution


def _conflict(plan: _Plan, planned: dict[str, tuple[str, str, str]]) -> str | None:
    for name, (value, _) in plan.assignments.items():
        previous = planned.get(name)
        if previous is not None and _opposed(previous[0], value):
            return (
                f"it needs CONFIG_{name}={value}, but CONFIG_{previous[1]} needs "
                f"CONFIG_{name}={previous[0]}"
            )
    return None


class _Planner:
    """Searches for assignments that satisfy a request's dependencies."""

    def __init__(
        self,
        tree: KconfigTree,
        values: Mapping[str, str],
        explicit: Mapping[str, str],
    ) -> None:
        self.tree = tree
        self.values = values
        self.explicit = explicit
        self.finder = _BlockerFinder(tree, values)

    def plan_request(self, name: str, value: str) -> _Plan:
        symbol = self.tree.symbol(name)
        if symbol is None:
            return _failed(explain_unknown(self.tree, name).message)
        if symbol.type not in LOGIC_TYPES or value not in ("y", "m"):
            return _failed(
                f"fckernel plans only y and m requests of bool and tristate "
                f"symbols, not CONFIG_{name}={value}"
            )
        need = tristate_of(value)
        if not symbol.prompts:
            return self.default_path(symbol, need, (name,))
        return self.visible(symbol, need, (name,))

    def visible(self, symbol: Symbol, need: Tristate, chain: tuple[str, ...]) -> _Plan:
        """Plan for a prompt of `symbol` to be visible at level `need`."""
        best: _Plan | None = None
        for definition in symbol.definitions:
            if not definition.prompts:
                continue
            plan = _Plan()
            conditions = [*definition.depends, *definition.visible]
            for condition in conditions:
                reason = (
                    f"CONFIG_{symbol.name} depends on "
                    f"{self.finder.text(condition.expr)} ({condition.location})"
                )
                plan.merge(self.expression(condition.expr, need, reason, chain))
            prompt = definition.prompts[0]
            if prompt.condition is not None:
                reason = (
                    f"the prompt of CONFIG_{symbol.name} is visible only if "
                    f"{self.finder.text(prompt.condition)} ({prompt.location})"
                )
                plan.merge(self.expression(prompt.condition, need, reason, chain))
            best = _cheaper(best, plan)
        return best or _failed(f"CONFIG_{symbol.name} has no prompt")

    def default_path(
        self, symbol: Symbol, need: Tristate, chain: tuple[str, ...]
    ) -> _Plan:
        """Plan for a prompt-less symbol to reach `need` through a default."""
        best: _Plan | None = None
        for definition in symbol.definitions:
            for default in definition.defaults:
                constant = not symbols_in(default.value)
                if constant and evaluate(default.value, {}) < need:
                    continue
                parts = [c.expr for c in definition.depends]
                parts += [default.value]
                if default.condition is not None:
                    parts.append(default.condition)
                reason = (
                    f"CONFIG_{symbol.name} has no prompt and takes its default "
                    f"from {default.location}"
                )
                plan = _Plan()
                for part in parts:
                    plan.merge(self.expression(part, need, reason, chain))
                best = _cheaper(best, plan)
        if best is None or best.failure is not None:
            return _failed(
                f"CONFIG_{symbol.name} has no prompt and no default that could "
                f"turn it on; only a select can"
                + (f" ({best.failure})" if best and best.failure else "")
            )
        return best

    def expression(
        self, expr: Expr, need: Tristate, reason: str, chain: tuple[str, ...]
    ) -> _Plan:
        """Plan for `expr` to reach `need`."""
        if self.finder.reaches(expr, need):
            return _Plan()
        if isinstance(expr, And):
            plan = _Plan()
            for item in expr.items:
                plan.merge(self.expression(item, need, reason, chain))
            return plan
        if isinstance(expr, Or):
            return self.cheapest(expr, need, reason, chain)
        if isinstance(expr, Ref):
            return self.enable(expr.name, need, reason, chain)
        if isinstance(expr, Not) and isinstance(expr.operand, Ref):
            return self.disable(expr.operand.name, Tristate(2 - need), reason)
        if isinstance(expr, Const) and not expr.quoted:
            return _failed(f"{reason}, so it can be at most {expr.value}")
        return _failed(
            f"{reason}, and fckernel cannot plan for {self.finder.text(expr)} to be met"
        )

    def cheapest(
        self, expr: Or, need: Tristate, reason: str, chain: tuple[str, ...]
    ) -> _Plan:
        best: _Plan | None = None
        failures = []
        for item in expr.items:
            plan = self.expression(item, need, reason, chain)
            if plan.failure is not None:
                failures.append(plan.failure)
            best = _cheaper(best, plan)
        if best is None or best.failure is not None:
            return _failed("; ".join(failures))
        return best

    def enable(
        self, name: str, need: Tristate, reason: str, chain: tuple[str, ...]
    ) -> _Plan:
        """Plan for symbol `name` to be at least `need`."""
        requested = self.explicit.get(name)
        if requested is not None and tristate_of(requested) < need:
            return _failed(
                f"{reason}, but CONFIG_{name}={requested} was requested explicitly"
            )
        symbol = self.tree.symbol(name)
        if symbol is None:
            blocker = self.finder.symbol(name, need, chain)
            return _failed(
                f"{reason}, but {_blocker_sentence(blocker, self.tree.arch)}"
            )
        if name in chain or len(chain) >= MAX_CHAIN_DEPTH:
            return _failed(f"{reason}, and the chain through {name} loops")
        if symbol.type not in LOGIC_TYPES:
            return _failed(f"{reason}, and {name} is a {symbol.type} symbol")
        if not symbol.prompts:
            return self.default_path(symbol, need, (*chain, name))
        plan = self.visible(symbol, need, (*chain, name))
        if plan.failure is None:
            value = "m" if need == Tristate.M and symbol.type == "tristate" else "y"
            plan.assignments[name] = (value, reason)
        return plan

    def disable(self, name: str, limit: Tristate, reason: str) -> _Plan:
        """Plan for symbol `name` to be at most `limit`."""
        requested = self.explicit.get(name)
        if requested is not None and tristate_of(requested) > limit:
            return _failed(
                f"{reason}, but CONFIG_{name}={requested} was requested explicitly"
            )
        symbol = self.tree.symbol(name)
        if symbol is None:
            return _Plan()
        active = self.finder.active_selects(symbol)
        if active:
            return _failed(f"{reason}, but {_join(active)} selects {name}")
        return _Plan({name: (limit.letter, reason)})


def _cheaper(best: _Plan | None, plan: _Plan) -> _Plan:
    """Return the better plan: one that works, then the one with fewer changes."""
    if best is None:
        return plan
    if best.failure is not None and plan.failure is None:
        return plan
    if plan.failure is None and plan.cost < best.cost:
        return plan
    return best


# --------------------------------------------------------------------------
# One symbol, for `fckernel explain`


@dataclass
class Entry:
    """One line of a symbol report: an expression with the values in it, where
    it is written, and whether it is met in the config (None without values).
    """

    text: str
    location: str
    met: bool | None = None
    label: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SymbolReport:
    """Everything `fckernel explain CONFIG_X` shows about one symbol."""

    symbol: str
    arch: str
    defined: bool
    type: str = ""
    prompts: list[Entry] = field(default_factory=list)
    definitions: list[str] = field(default_factory=list)
    dependencies: list[Entry] = field(default_factory=list)
    selected_by: list[Entry] = field(default_factory=list)
    implied_by: list[Entry] = field(default_factory=list)
    selects: list[Entry] = field(default_factory=list)
    implies: list[Entry] = field(default_factory=list)
    defaults: list[Entry] = field(default_factory=list)
    ranges: list[Entry] = field(default_factory=list)
    choice: str = ""
    help: list[str] = field(default_factory=list)
    value: str | None = None
    status: str = ""
    unknown: UnknownSymbol | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for key, item in vars(self).items():
            if isinstance(item, list):
                data[key] = [x.to_json() if isinstance(x, Entry) else x for x in item]
            elif isinstance(item, UnknownSymbol):
                data[key] = item.to_json()
            else:
                data[key] = item
        return data


def describe_symbol(
    tree: KconfigTree, name: str, values: Mapping[str, str] | None = None
) -> SymbolReport:
    """Describe symbol `name` (without CONFIG_) for `fckernel explain`; with the
    resolved `values`, also its value there and why it has it.
    """
    symbol = tree.symbol(name)
    if symbol is None:
        return SymbolReport(
            name, tree.arch, defined=False, unknown=explain_unknown(tree, name)
        )
    describer = _Describer(tree, symbol, values)
    return describer.report()


class _Describer:
    def __init__(
        self, tree: KconfigTree, symbol: Symbol, values: Mapping[str, str] | None
    ) -> None:
        self.tree = tree
        self.symbol = symbol
        self.values = values

    def text(self, expr: Expr | None) -> str:
        return format_expression(expr, self.values)

    def is_met(self, expr: Expr | None) -> bool | None:
        if self.values is None:
            return None
        return evaluate(expr, self.values, self.tree.types) > Tristate.N

    def report(self) -> SymbolReport:
        symbol = self.symbol
        report = SymbolReport(symbol.name, self.tree.arch, True, symbol.type)
        report.definitions = symbol.locations
        report.help = symbol.help
        for definition in symbol.definitions:
            report.prompts += [
                self.entry(p.condition, p.location, p.text) for p in definition.prompts
            ]
            report.dependencies += [
                self.entry(c.expr, c.location, _condition_label(c))
                for c in [*definition.depends, *definition.visible]
            ]
            report.selects += [
                self.entry(s.condition, s.location, s.symbol)
                for s in definition.selects
            ]
            report.implies += [
                self.entry(s.condition, s.location, s.symbol)
                for s in definition.implies
            ]
            report.defaults += [
                self.entry(d.condition, d.location, self.text(d.value))
                for d in definition.defaults
            ]
            report.ranges += [
                self.entry(
                    r.condition, r.location, f"{self.text(r.low)} {self.text(r.high)}"
                )
                for r in definition.ranges
            ]
        report.selected_by = [self.reverse(s) for s in symbol.selected_by]
        report.implied_by = [self.reverse(s) for s in symbol.implied_by]
        choice = self.tree.choice_of(symbol)
        if choice is not None:
            report.choice = f'"{choice.title}" ({choice.location})'
        if self.values is not None:
            report.value = self.values.get(symbol.name)
            report.status = self.status()
        return report

    def entry(self, condition: Expr | None, location: str, label: str) -> Entry:
        text = self.text(condition) if condition is not None else ""
        met = self.is_met(condition) if condition is not None else None
        return Entry(text, location, met, label)

    def reverse(self, item: Select) -> Entry:
        both: Expr = Ref(item.symbol)
        if item.condition is not None:
            both = And((both, item.condition))
        label = self.text(Ref(item.symbol))
        text = self.text(item.condition) if item.condition is not None else ""
        return Entry(text, item.location, self.is_met(both), label)

    def status(self) -> str:
        """Return why the symbol has its value in the config."""
        assert self.values is not None
        name = self.symbol.name
        value = self.values.get(name)
        if value is None or value == "n":
            expected = "y" if self.symbol.type in LOGIC_TYPES else "a value"
            return explain_unmet(self.tree, name, expected, self.values).message
        forced = _BlockerFinder(self.tree, self.values).active_selects(self.symbol)
        if forced:
            return f"selected by {_join(forced)}, so it cannot be lower than {value}"
        if self.is_met(self.symbol.visibility()):
            return "its prompt is visible, so the config's value is kept"
        return "it has no visible prompt, so its default sets it"


def _condition_label(condition: Condition) -> str:
    """Return where a dependency comes from; empty for the entry's own."""
    if condition.kind in ("menu", "choice"):
        return f'{condition.kind} "{condition.title}":'
    if condition.kind == "visible if":
        return f'menu "{condition.title}" visible if'
    return "" if condition.kind == "depends on" else condition.kind


def format_symbol_report(report: SymbolReport) -> str:
    """Format a SymbolReport as the text `fckernel explain` prints."""
    if report.unknown is not None:
        return report.unknown.message + "\n"
    lines = [f"CONFIG_{report.symbol} ({report.type or 'no type'}, {report.arch})"]
    if report.value is not None or report.status:
        lines.append(f"  value: {report.value or 'not set'}")
        if report.status:
            lines.append(f"  why: {report.status}")
    lines += _section("defined at", [Entry("", loc) for loc in report.definitions])
    if report.choice:
        lines += ["  in choice:", f"    {report.choice}"]
    lines += _section("prompts", report.prompts)
    lines += _section("depends on", report.dependencies)
    lines += _section("selected by", report.selected_by)
    lines += _section("implied by", report.implied_by)
    lines += _section("selects", report.selects)
    lines += _section("implies", report.implies)
    lines += _section("defaults", report.defaults)
    lines += _section("ranges", report.ranges)
    for text in report.help:
        lines += ["  help:", *(f"    {line}".rstrip() for line in text.splitlines())]
    return "\n".join(lines) + "\n"


def _section(title: str, entries: list[Entry]) -> list[str]:
    if not entries:
        return []
    lines = [f"  {title}:"]
    for entry in entries:
        joiner = " " if title == "depends on" else " if "
        text = joiner.join(part for part in (entry.label, entry.text) if part)
        mark = {True: "  [met]", False: "  [not met]", None: ""}[entry.met]
        where = f"  ({entry.location})" if text else entry.location
        lines.append(f"    {text}{where}{mark}")
    return lines


def _on_each(conditions: list[str]) -> str:
    """Join `expr (file:line)` parts: `A (x:1) and on B (y:2)`."""
    return " and on ".join(conditions)


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _capitalize(sentence: str) -> str:
    return sentence[:1].upper() + sentence[1:]
