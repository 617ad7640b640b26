"""An index of the Kconfig symbols a source tree defines for one architecture.

Values never come from here: the kernel's own `make olddefconfig` decides them.
This index answers a narrower question that the resolved `.config` cannot: does
a symbol exist in this tree at all? A symbol whose dependencies are off is
absent from `.config`, exactly like a symbol that was renamed or removed.

The scan follows `source` statements from the top-level `Kconfig`, with
`$(SRCARCH)` set, so symbols of other architectures' Kconfig files are not
included, while a driver symbol that depends on another arch's bus is.
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass, field
from pathlib import Path

from fckernel.errors import InputError

_SOURCE = re.compile(r'(?P<kind>o?r?source)\s+"(?P<path>[^"]+)"')
_CONFIG = re.compile(r"(?:menu)?config\s+(?P<symbol>[A-Za-z0-9_]+)\s*$")
_TYPE = re.compile(r"(?P<type>bool|tristate|string|int|hex|def_bool|def_tristate)\b")
_HELP = re.compile(r"(?:---)?help(?:---)?\s*$")
_VARIABLE = re.compile(r"\$\((?P<name>[A-Za-z_]+)\)")

SYMBOL_TYPES = ("bool", "tristate", "string", "int", "hex")


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


def scan_symbols(source_dir: Path, kernel_arch: str) -> SymbolIndex:
    """Scan the Kconfig files of `source_dir` as seen with ARCH=`kernel_arch`."""
    top = source_dir / "Kconfig"
    if not top.is_file():
        raise InputError(
            f"{source_dir} has no top-level Kconfig file",
            "pass the root of a Linux source tree",
        )
    variables = {
        "SRCARCH": kernel_arch,
        "ARCH": kernel_arch,
        "HEADER_ARCH": kernel_arch,
    }
    index = SymbolIndex()
    pending = [top]
    seen: set[Path] = set()
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        index.files += 1
        pending.extend(_scan_file(path, source_dir, variables, index))
    return index


def _scan_file(
    path: Path, root: Path, variables: dict[str, str], index: SymbolIndex
) -> list[Path]:
    sourced: list[Path] = []
    current: str | None = None
    help_indent: int | None = None
    relative = path.relative_to(root)

    for number, line in _logical_lines(path):
        stripped = line.strip()
        if help_indent is not None:
            if not stripped or _indent(line) >= help_indent:
                continue
            help_indent = None
        if help_indent is None and _HELP.fullmatch(stripped):
            help_indent = _indent(line) + 1
            continue

        if match := _CONFIG.fullmatch(stripped):
            current = match["symbol"]
            index.locations.setdefault(current, f"{relative}:{number}")
            index.types.setdefault(current, "")
        elif (match := _TYPE.match(stripped)) and current is not None:
            kind = match["type"].removeprefix("def_")
            if not index.types.get(current):
                index.types[current] = kind
        elif match := _SOURCE.fullmatch(stripped):
            sourced.extend(_expand_source(match, path, root, variables))
        elif stripped.startswith(("menu", "choice", "endmenu", "endchoice", "if ")):
            current = None
    return sourced


def _expand_source(
    match: re.Match[str], path: Path, root: Path, variables: dict[str, str]
) -> list[Path]:
    name = _VARIABLE.sub(lambda m: variables.get(m["name"], ""), match["path"])
    base = path.parent if match["kind"] in ("rsource", "orsource") else root
    found = sorted(Path(p) for p in glob.glob(str(base / name)))
    if not found and not match["kind"].startswith("o"):
        raise InputError(
            f"{path}: sourced Kconfig file {name!r} not found",
            "the source tree is incomplete; unpack it again",
        )
    return found


def _logical_lines(path: Path) -> list[tuple[int, str]]:
    """Return the lines of `path` with backslash continuations joined."""
    lines: list[tuple[int, str]] = []
    pending = ""
    start = 0
    text = path.read_text(encoding="utf-8", errors="replace")
    for number, line in enumerate(text.splitlines(), start=1):
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1]
            continue
        lines.append((start, pending + line))
        pending = ""
    return lines


def _indent(line: str) -> int:
    return len(line.expandtabs(8)) - len(line.expandtabs(8).lstrip())
