"""Reading and writing `.config` files and config fragments.

A line is one of:

    CONFIG_FOO=y                 bool or tristate: y, m or n
    CONFIG_FOO="text \\"quoted\\""  string, with backslash escapes for \\ and "
    CONFIG_FOO=42                int (decimal, may be negative)
    CONFIG_FOO=0x1f              hex (0x prefix required)
    # CONFIG_FOO is not set      the same as CONFIG_FOO=n
    # any other comment, or a blank line

Values are kept in their `.config` spelling (strings with their quotes), so a
file written back reads the same to Kconfig.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from fckernel.errors import InputError

_ASSIGNMENT = re.compile(r"CONFIG_(?P<symbol>[A-Za-z0-9_]+)=(?P<value>.*)")
# Kconfig's own reader compares only "is not set" after the symbol, so a note
# after it still makes the line an assignment of n.
_NOT_SET = re.compile(r"#\s*CONFIG_(?P<symbol>[A-Za-z0-9_]+) is not set.*")
_BARE_ASSIGNMENT = re.compile(r"(?P<symbol>[A-Z][A-Z0-9_]*)\s*=\s*(?P<value>.*)")
_SPACED_ASSIGNMENT = re.compile(r"CONFIG_[A-Za-z0-9_]+\s+=|CONFIG_[A-Za-z0-9_]+=\s")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_DECIMAL = re.compile(r"-?[0-9]+")
_HEX = re.compile(r"0[xX][0-9a-fA-F]+")
_SYMBOL = re.compile(r"[A-Za-z0-9_]+")

VALUE_HELP = (
    'values are y, m, n, a decimal number, 0x-prefixed hex or a "quoted string"'
)


@dataclass
class ConfigFile:
    """Assignments of one `.config` or fragment, in file order, symbols without
    the CONFIG_ prefix.

    `lines` maps each symbol to the line of its last assignment, and
    `repeats` lists (symbol, first value, first line, later value, later line)
    for symbols assigned twice with different values in this one file.
    """

    values: dict[str, str] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)
    repeats: list[tuple[str, str, int, str, int]] = field(default_factory=list)

    def get(self, symbol: str) -> str | None:
        return self.values.get(symbol)

    def set(self, symbol: str, value: str) -> None:
        self.values[symbol] = value


def parse_config(text: str, origin: str = "<config>") -> ConfigFile:
    """Parse `.config` text; `origin` names the input in error messages.

    Raises InputError naming `origin:line` for the first malformed line.
    """
    config = ConfigFile()
    for number, raw in enumerate(text.split("\n"), start=1):
        parsed = parse_line(raw, f"{origin}:{number}")
        if parsed is None:
            continue
        symbol, value = parsed
        previous = config.values.get(symbol)
        if previous is not None and previous != value:
            config.repeats.append(
                (symbol, previous, config.lines[symbol], value, number)
            )
        config.values.pop(symbol, None)  # keeps file order of the last assignment
        config.values[symbol] = value
        config.lines[symbol] = number
    return config


def read_config(path: Path) -> ConfigFile:
    """Read and parse a `.config` file or fragment."""
    check_regular_file(path, "config file", "pass a .config file or a fragment")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise InputError(
            f"config file not found: {path}", "check the path and try again"
        ) from error
    except UnicodeDecodeError as error:
        raise InputError(
            f"{path} is not a text file ({error.reason} at byte {error.start})",
            "pass a .config file or a fragment of CONFIG_ lines",
        ) from error
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror}") from error
    return parse_config(text, str(path))


def check_regular_file(path: Path, what: str, hint: str) -> None:
    """Raise InputError when `path` exists but is not a regular file: a folder,
    a pipe that would block the read, or a device such as /dev/zero.
    """
    if path.exists() and not path.is_file():
        raise InputError(f"{what} {path} is not a regular file", hint)


def parse_line(raw: str, where: str) -> tuple[str, str] | None:
    """Parse one line into (symbol, value), or None for a comment or blank line."""
    line = raw.strip()
    if not line:
        return None
    if line.startswith("#"):
        match = _NOT_SET.fullmatch(line)
        return (match["symbol"], "n") if match else None

    match = _ASSIGNMENT.fullmatch(line)
    if match is None:
        raise InputError(f"{where}: {_describe_malformed(line)}")
    value = match["value"]
    if not is_valid_value(value):
        raise InputError(
            f"{where}: invalid value {value!r} for CONFIG_{match['symbol']}",
            VALUE_HELP,
        )
    return match["symbol"], value


def parse_assignment(text: str, where: str) -> tuple[str, str]:
    """Parse a `--set` argument: CONFIG_X=VALUE, or X=VALUE without the prefix."""
    if not text.startswith("CONFIG_") and _BARE_ASSIGNMENT.fullmatch(text):
        text = "CONFIG_" + text
    match = _ASSIGNMENT.fullmatch(text.strip())
    if match is not None and not is_valid_value(match["value"]):
        value = match["value"]
        hint = VALUE_HELP
        if not value.startswith('"'):
            # The shell removes the quotes of --set CONFIG_X="a b" before
            # fckernel reads the argument.
            quoted = f'CONFIG_{match["symbol"]}="{value}"'
            hint += (
                f"; for a string, protect its quotes from the shell: --set '{quoted}'"
            )
        raise InputError(
            f"{where}: invalid value {value!r} for CONFIG_{match['symbol']}", hint
        )
    parsed = parse_line(text, where) if not text.startswith("#") else None
    if parsed is None:
        raise InputError(f"{where}: expected CONFIG_NAME=VALUE, got {text!r}")
    return parsed


def is_valid_value(value: str) -> bool:
    """Return whether `value` is a valid right-hand side of a `.config` line."""
    return (
        value in ("y", "m", "n")
        or _STRING.fullmatch(value) is not None
        or _DECIMAL.fullmatch(value) is not None
        or _HEX.fullmatch(value) is not None
    )


def is_valid_symbol(symbol: str) -> bool:
    return _SYMBOL.fullmatch(symbol) is not None


def format_line(symbol: str, value: str) -> str:
    """Format one assignment the way Kconfig writes it."""
    if value == "n":
        return f"# CONFIG_{symbol} is not set"
    return f"CONFIG_{symbol}={value}"


def format_config(values: Iterable[tuple[str, str]]) -> str:
    """Format assignments as `.config` text, one line each."""
    return "".join(format_line(symbol, value) + "\n" for symbol, value in values)


def quote_string(text: str) -> str:
    """Quote `text` as a Kconfig string value."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def unquote_string(value: str) -> str:
    """Return the text of a quoted Kconfig string value."""
    return re.sub(r"\\(.)", r"\1", value[1:-1])


def _describe_malformed(line: str) -> str:
    if _SPACED_ASSIGNMENT.match(line):
        return f"spaces around '=' are not allowed in {line!r}"
    bare = _BARE_ASSIGNMENT.fullmatch(line)
    if bare and not line.startswith("CONFIG_"):
        return f"missing CONFIG_ prefix in {line!r}; write CONFIG_{bare['symbol']}=..."
    if line.startswith("CONFIG_") and "=" not in line:
        return f"missing '=VALUE' in {line!r}"
    return f"not a config line: {line!r} (expected CONFIG_NAME=VALUE or a # comment)"
