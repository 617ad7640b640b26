"""The cache folder and the file operations that keep it consistent.

Layout under the cache root ($FCKERNEL_CACHE, else $XDG_CACHE_HOME/fckernel,
else ~/.cache/fckernel):

    downloads/<sha256>            verified downloads, named by content
    configs/<sha256>.config       base configs fetched by name or URL
    sources/<key>/                unpacked trees, key = tarball sha256 or git ref
    build/<source key>-<arch>/    `make O=` folders, reused for incremental builds
    locks/                        one lock file per folder above

An entry is complete when it exists under its final name: every writer builds
it under a temporary name in the same folder and renames it into place, so a
crash leaves only temporary names, which later runs delete.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from fckernel.errors import HostError

TEMP_PREFIX = ".fckernel-tmp-"
LOCK_POLL_SECONDS = 0.5
HASH_CHUNK_BYTES = 1 << 20


def default_cache_root() -> Path:
    """Return the cache root the environment selects."""
    if configured := os.environ.get("FCKERNEL_CACHE"):
        return Path(configured)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "fckernel"


class Cache:
    """A cache root and the locks, temporary folders and names inside it."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = (root or default_cache_root()).absolute()

    def folder(self, *parts: str) -> Path:
        path = self.root.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

    @contextmanager
    def lock(self, name: str, on_wait: str | None = None) -> Iterator[None]:
        """Hold the named lock; print `on_wait` once if another process has it."""
        lock = FileLock(str(self.folder("locks") / f"{name}.lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            if on_wait:
                print(f"I: {on_wait}", file=sys.stderr, flush=True)
            lock.acquire(poll_interval=LOCK_POLL_SECONDS)
        try:
            yield
        finally:
            lock.release()

    def temp_dir(self, parent: Path) -> Path:
        """Create a temporary folder in `parent` that cleanup_temps() removes."""
        parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=parent))


def cleanup_temps(parent: Path) -> None:
    """Remove leftovers of interrupted writers in `parent`; call under its lock."""
    if not parent.is_dir():
        return
    for entry in parent.iterdir():
        if entry.name.startswith(TEMP_PREFIX):
            remove(entry)


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write `path` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode() if isinstance(data, str) else data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def atomic_copy(source: Path, target: Path) -> None:
    """Copy `source` to `target` so that `target` is never seen half-written."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=target.parent)
    os.close(fd)
    try:
        shutil.copyfile(source, temp)
        shutil.copymode(source, temp)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_free_space(folder: Path, needed: int, what: str) -> None:
    """Raise HostError unless `folder`'s disk has `needed` bytes free for `what`."""
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise HostError(
            f"not enough disk space in {folder} for {what}: "
            f"{needed / 1e9:.1f} GB needed, {free / 1e9:.1f} GB free",
            "free some space, or point FCKERNEL_CACHE or --output at a larger disk",
        )
