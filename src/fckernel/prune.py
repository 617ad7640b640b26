"""`fckernel cache list` and `fckernel cache prune`: seeing and bounding the cache.

Entries are the folders and files directly under artifacts/, build/, sources/,
downloads/, configs/, index/, initramfs/ and userland/. The least recently used
go first.
An entry in use by another fckernel (its lock is held) is never removed.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from fckernel.cache import TEMP_PREFIX, Cache, remove
from fckernel.errors import InputError

KINDS = (
    "artifacts",
    "build",
    "sources",
    "downloads",
    "configs",
    "index",
    "initramfs",
    "userland",
)
_SIZE = re.compile(
    r"(?P<number>\d+(?:\.\d+)?)\s*(?:(?P<unit>[KMGT])(?:iB|B)?|B)?", re.I
)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


@dataclass(frozen=True)
class Entry:
    """One cache entry: its kind, path, size in bytes and last use (epoch s)."""

    kind: str
    path: Path
    size: int
    used: float

    @property
    def lock_name(self) -> str:
        if self.kind == "build":
            return self.path.name
        if self.kind == "sources":
            return f"source-{self.path.name}"
        if self.kind == "artifacts":
            return f"artifact-{self.path.name}"
        if self.kind == "userland":
            return "userland"  # the one lock debian_userland() takes
        return f"{self.kind}-{self.path.name}"


def list_entries(cache: Cache) -> list[Entry]:
    """Return every entry of the cache, most recently used first."""
    entries = []
    for kind in KINDS:
        folder = cache.root / kind
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            if path.name.startswith(TEMP_PREFIX):
                continue
            try:
                entries.append(Entry(kind, path, _size(path), _last_use(path)))
            except FileNotFoundError:
                continue  # removed by another fckernel while listing
    return sorted(entries, key=lambda entry: entry.used, reverse=True)


def parse_size(text: str) -> int:
    """Parse a size such as 500M, 20G or 1.5GiB into bytes."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise InputError(
            f"--max-size {text!r} is not a size", "write it like 500M, 20G or 1T"
        )
    return int(float(match["number"]) * _UNITS[(match["unit"] or "").upper()])


def prune(
    cache: Cache, keep: int | None = None, max_size: int | None = None
) -> list[Entry]:
    """Remove least recently used entries: beyond the `keep` newest of each
    kind, then until the cache is at most `max_size` bytes. Returns what was
    removed.
    """
    entries = list_entries(cache)
    doomed: list[Entry] = []
    if keep is not None:
        for kind in KINDS:
            doomed += [e for e in entries if e.kind == kind][keep:]
    if max_size is not None:
        total = sum(e.size for e in entries if e not in doomed)
        for entry in reversed(entries):
            if total <= max_size:
                break
            if entry not in doomed:
                doomed.append(entry)
                total -= entry.size
    return [entry for entry in doomed if _remove_unless_busy(cache, entry)]


def _remove_unless_busy(cache: Cache, entry: Entry) -> bool:
    lock = FileLock(str(cache.folder("locks") / f"{entry.lock_name}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return False
    try:
        remove(entry.path)
    finally:
        lock.release()
    return True


def _size(path: Path) -> int:
    if path.is_symlink() or not path.is_dir():
        return path.lstat().st_size
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_size
    return total


def _last_use(path: Path) -> float:
    """Return the entry's last use: the newest mtime of the entry and its top
    level, which fckernel touches when it uses an entry.
    """
    times = [path.lstat().st_mtime]
    if path.is_dir() and not path.is_symlink():
        times += [child.lstat().st_mtime for child in path.iterdir()]
    return max(times)


def format_size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"
