"""Comparing two configs symbol by symbol."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fckernel.dotconfig import ConfigFile, read_config
from fckernel.errors import InputError
from fckernel.report import REPORT_NAME


@dataclass
class ConfigDiff:
    """Symbols added, removed and changed from config A to config B.

    `n` and absent count as the same value, as they do for Kconfig.
    """

    added: dict[str, str] = field(default_factory=dict)
    removed: dict[str, str] = field(default_factory=dict)
    changed: dict[str, tuple[str, str]] = field(default_factory=dict)

    def is_empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def to_json(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "removed": self.removed,
            "changed": {s: {"a": a, "b": b} for s, (a, b) in self.changed.items()},
        }

    def lines(self) -> list[str]:
        """Format the difference as one line per symbol, sorted by symbol."""
        rows = [(s, f"+ CONFIG_{s}={v}") for s, v in self.added.items()]
        rows += [(s, f"- CONFIG_{s}={v}") for s, v in self.removed.items()]
        rows += [(s, f"~ CONFIG_{s}: {a} -> {b}") for s, (a, b) in self.changed.items()]
        return [line for _, line in sorted(rows)]


def diff_configs(
    a: ConfigFile, b: ConfigFile, only: set[str] | None = None
) -> ConfigDiff:
    """Compare `a` with `b`, limited to the symbols in `only` when given."""
    before = _set_values(a, only)
    after = _set_values(b, only)
    result = ConfigDiff()
    for symbol in before.keys() | after.keys():
        if symbol not in after:
            result.removed[symbol] = before[symbol]
        elif symbol not in before:
            result.added[symbol] = after[symbol]
        elif before[symbol] != after[symbol]:
            result.changed[symbol] = (before[symbol], after[symbol])
    return result


def load_for_diff(path: Path) -> tuple[ConfigFile, set[str]]:
    """Read a `.config` file, or an output folder's config; return it with the
    symbols its report requested (empty for a plain file).
    """
    if not path.is_dir():
        return read_config(path), set()
    config_path = path / "config"
    if not config_path.is_file():
        raise InputError(
            f"{path} has no config file",
            "pass a .config file or an output folder of fckernel build or config",
        )
    return read_config(config_path), _requested_symbols(path / REPORT_NAME)


def _requested_symbols(report: Path) -> set[str]:
    try:
        data = json.loads(report.read_text())
        return {str(request["symbol"]) for request in data.get("requests", [])}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return set()  # no report, or not one fckernel wrote: no requests


def _set_values(config: ConfigFile, only: set[str] | None) -> dict[str, str]:
    return {
        symbol: value
        for symbol, value in config.values.items()
        if value != "n" and (only is None or symbol in only)
    }
