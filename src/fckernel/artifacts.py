"""Finished boot images cached by what determines their content.

An entry `artifacts/<key>/` contains the image and `entry.json`. It is built
under a `.fckernel-tmp-` name and renamed into place once
complete, so a crashed writer never leaves an entry that looks finished.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fckernel.cache import (
    Cache,
    atomic_copy,
    cleanup_temps,
    remove,
    sha256_bytes,
    sha256_file,
)

ENTRY_FILE = "entry.json"
KEY_VERSION = 1


@dataclass(frozen=True)
class KeyInputs:
    """Everything that changes the bytes of the image a build produces."""

    source_key: str
    config_text: str
    arch: str
    toolchain: dict[str, str | None]
    make_variables: tuple[str, ...]

    def key(self) -> str:
        """Return the sha256 that names this build's cache entry."""
        payload = {
            "version": KEY_VERSION,
            "source": self.source_key,
            "config": self.config_text,
            "arch": self.arch,
            "toolchain": self.toolchain,
            "make": list(self.make_variables),
        }
        return sha256_bytes(json.dumps(payload, sort_keys=True).encode())


def lookup(cache: Cache, key: str, image_name: str) -> Path | None:
    """Return the cached image for `key`, or None when there is no whole entry.

    An image whose bytes no longer match the sha256 recorded when it was
    stored (a disk error, a hand edit) is removed and counts as a miss.
    """
    entry = cache.root / "artifacts" / key
    if not (entry / ENTRY_FILE).is_file() or not (entry / image_name).is_file():
        return None
    try:
        recorded = json.loads((entry / ENTRY_FILE).read_text()).get("sha256")
    except (OSError, ValueError, AttributeError):
        recorded = None
    if recorded != sha256_file(entry / image_name):
        with cache.lock(f"artifact-{key}"):
            remove(entry)
        return None
    os.utime(entry / ENTRY_FILE)  # marks it as recently used for pruning
    return entry / image_name


def store(cache: Cache, key: str, image: Path, meta: dict[str, Any]) -> None:
    """Add `image` to the cache under `key`; an existing entry is kept."""
    folder = cache.folder("artifacts")
    target = folder / key
    with cache.lock(f"artifact-{key}"):
        if (target / ENTRY_FILE).is_file():
            return
        cleanup_temps(folder)
        temp = cache.temp_dir(folder)
        try:
            atomic_copy(image, temp / image.name)
            entry = {
                **meta,
                "key": key,
                "image": image.name,
                "sha256": sha256_file(temp / image.name),
                "created": time.time(),
            }
            (temp / ENTRY_FILE).write_text(json.dumps(entry, indent=2))
            remove(target)
            temp.rename(target)
        except BaseException:
            remove(temp)
            raise
