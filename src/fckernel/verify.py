"""Requested options: merging them from their inputs, and checking each one against
the config Kconfig resolved.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from fckernel.dotconfig import ConfigFile, is_valid_value
from fckernel.errors import InputError
from fckernel.explain import explain_request, load_renames
from fckernel.kconfig import KconfigTree, SymbolIndex

USER_ORIGINS = ("fragment", "--set")


class Status(StrEnum):
    """The outcome of one request, once Kconfig resolved the config."""

    APPLIED = "applied"  # the base differed; the final config has the request
    UNCHANGED = "unchanged"  # the base already had the requested value
    PROMOTED = "promoted"  # m became y because CONFIG_MODULES is off
    UNMET = "unmet"  # the symbol exists but did not keep the requested value
    UNKNOWN = "unknown"  # no such symbol in this tree for this arch


FAILED_STATUSES = (Status.UNMET, Status.UNKNOWN)


@dataclass(frozen=True)
class Request:
    """One requested value, and where it was asked for (`feature iptables`,
    `fragment docker.config:3`, `--set`).
    """

    symbol: str
    value: str
    origin: str

    @property
    def from_user(self) -> bool:
        return self.origin.startswith(USER_ORIGINS)


@dataclass(frozen=True)
class Conflict:
    """Two inputs that set one symbol to different values; the later one wins."""

    symbol: str
    winner: Request
    loser: Request

    def message(self) -> str:
        return (
            f"CONFIG_{self.symbol}: {self.winner.origin} sets {self.winner.value}, "
            f"overriding {self.loser.value} from {self.loser.origin}"
        )


@dataclass(frozen=True)
class Outcome:
    """A request checked against the base and the resolved config."""

    request: Request
    base: str | None
    final: str | None
    status: Status
    allowed: bool
    reason: str
    explanation: dict[str, Any] | None = None  # the reason as data, when known

    @property
    def failed(self) -> bool:
        return self.status in FAILED_STATUSES and not self.allowed

    def to_json(self) -> dict[str, Any]:
        return {
            "symbol": self.request.symbol,
            "requested": self.request.value,
            "origin": self.request.origin,
            "base": self.base,
            "final": self.final,
            "status": str(self.status),
            "allowed_unmet": self.allowed,
            "reason": self.reason,
            "explanation": self.explanation,
        }


def merge_requests(requests: list[Request]) -> tuple[list[Request], list[Conflict]]:
    """Keep the last request for each symbol; return them and the conflicts.

    The result keeps the order in which symbols were first requested.
    """
    merged: dict[str, Request] = {}
    conflicts = []
    for request in requests:
        previous = merged.get(request.symbol)
        if previous is not None and previous.value != request.value:
            conflicts.append(Conflict(request.symbol, request, previous))
        merged[request.symbol] = request
    return list(merged.values()), conflicts


def check_types(requests: list[Request], index: SymbolIndex) -> None:
    """Reject a request whose value does not fit its symbol's Kconfig type."""
    for request in requests:
        kind = index.types.get(request.symbol)
        if kind and not value_fits_type(request.value, kind):
            raise InputError(
                f"{request.origin}: CONFIG_{request.symbol}={request.value} is "
                f"not a valid {kind} value",
                _TYPE_HINTS[kind],
            )


_TYPE_HINTS = {
    "bool": "a bool takes y or n",
    "tristate": "a tristate takes y, m or n",
    "string": 'a string takes a quoted value such as "text"',
    "int": "an int takes a decimal number such as 42",
    "hex": "a hex value takes a 0x prefix, such as 0x1000",
}


def value_fits_type(value: str, kind: str) -> bool:
    """Return whether a `.config` value is valid for a symbol of type `kind`."""
    if not is_valid_value(value):
        return False
    if value == "n":
        return True
    if kind == "bool":
        return value == "y"
    if kind == "tristate":
        return value in ("y", "m")
    if kind == "string":
        return value.startswith('"')
    if kind == "int":
        return value.lstrip("-").isdigit()
    if kind == "hex":
        return value.lower().startswith("0x")
    return True


def check_requests(
    requests: list[Request],
    base: ConfigFile,
    final: ConfigFile,
    index: SymbolIndex,
    allowed_unmet: set[str],
) -> list[Outcome]:
    """Give each request its status against the resolved config `final`."""
    modules_on = final.get("MODULES") == "y"
    requested = {request.symbol: request.value for request in requests}
    outcomes = []
    for request in requests:
        status, reason = _status(request, base, final, index, modules_on)
        explanation = None
        if status in FAILED_STATUSES and isinstance(index, KconfigTree):
            found = explain_request(
                index, request.symbol, request.value, final.values, requested
            )
            reason, explanation = found.message, found.to_json()
        outcomes.append(
            Outcome(
                request=request,
                base=base.get(request.symbol),
                final=final.get(request.symbol),
                status=status,
                allowed=request.symbol in allowed_unmet,
                reason=reason,
                explanation=explanation,
            )
        )
    return outcomes


def _status(
    request: Request,
    base: ConfigFile,
    final: ConfigFile,
    index: SymbolIndex,
    modules_on: bool,
) -> tuple[Status, str]:
    symbol, requested = request.symbol, request.value
    resolved = final.get(symbol)
    if same_value(requested, resolved):
        if same_value(requested, base.get(symbol)):
            return Status.UNCHANGED, "the base config already had this value"
        return Status.APPLIED, ""
    if requested == "m" and resolved == "y" and not modules_on:
        return (
            Status.PROMOTED,
            "CONFIG_MODULES is not set, so Kconfig builds it in (=y); "
            "nothing can be loaded as a module at run time",
        )
    if symbol not in index:
        return Status.UNKNOWN, f"CONFIG_{symbol} does not exist in this kernel"
    if resolved is None:
        return (
            Status.UNMET,
            f"Kconfig dropped CONFIG_{symbol}: its dependencies are not met",
        )
    return (
        Status.UNMET,
        f"Kconfig resolved CONFIG_{symbol} to {resolved}: a dependency or a select "
        "limits it",
    )


def same_value(requested: str, actual: str | None) -> bool:
    """Compare two `.config` values the way Kconfig means them."""
    if actual is None:
        return requested == "n"
    if requested == actual:
        return True
    try:
        return _as_number(requested) == _as_number(actual)
    except ValueError:
        return False


def _as_number(value: str) -> int:
    if value.lower().startswith("0x"):
        return int(value, 16)
    return int(value, 10)


@dataclass(frozen=True)
class FollowedRename:
    """A feature's request for a symbol this tree renamed, and what replaced it."""

    request: Request
    replacements: tuple[Request, ...]
    version: str

    def message(self) -> str:
        new = " and ".join(f"CONFIG_{r.symbol}={r.value}" for r in self.replacements)
        return (
            f"{self.request.origin}: CONFIG_{self.request.symbol} was renamed in "
            f"Linux {self.version}; requested {new} instead"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "symbol": self.request.symbol,
            "value": self.request.value,
            "origin": self.request.origin,
            "version": self.version,
            "replaced_by": [r.symbol for r in self.replacements],
        }


def follow_feature_renames(
    requests: list[Request], index: SymbolIndex
) -> tuple[list[Request], list[FollowedRename]]:
    """Replace each feature request for a symbol that this tree renamed with
    requests for its replacements, when the tree has every one of them.

    A feature names what it needs in one kernel's words, so it follows a
    rename by itself. The user's own requests (fragments, --set) stay as they
    are, and an unknown one is explained instead, because the user named that
    exact symbol. A replacement that a request already names is not added.
    """
    renames = load_renames()
    named = {request.symbol for request in requests}
    result: list[Request] = []
    followed: list[FollowedRename] = []
    for request in requests:
        rename = renames.get(request.symbol)
        movable = (
            not request.from_user
            and request.symbol not in index
            and rename is not None
            and rename.symbols
            and all(symbol in index for symbol in rename.symbols)
        )
        if not movable or rename is None:
            result.append(request)
            continue
        origin = f"{request.origin}, for CONFIG_{request.symbol}"
        replacements = tuple(
            Request(symbol, request.value, origin)
            for symbol in rename.symbols
            if symbol not in named
        )
        result += replacements
        followed.append(FollowedRename(request, replacements, rename.version))
    return result, followed
