"""The base config: a Firecracker guest config by name, a local file, or a URL."""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from fckernel.arch import Arch
from fckernel.cache import Cache, atomic_write, sha256_bytes
from fckernel.dotconfig import ConfigFile, check_regular_file, parse_config
from fckernel.errors import InputError
from fckernel.fetch import fetch

MIRROR_VARIABLE = "FCKERNEL_FIRECRACKER_MIRROR"
# Firecracker's whole guest configs are named microvm-kernel-*; its other
# .config files (ci.config, debug.config, ...) are fragments.
WHOLE_CONFIG_PREFIX = "microvm-kernel-"
_SERIES_IN_NAME = re.compile(r"-(?P<series>\d+\.\d+)(?:[-.]|$)")
_SERIES_IN_HEADER = re.compile(r"^# Linux/\S+ (?P<series>\d+\.\d+)[.\s-]", re.M)


@dataclass(frozen=True)
class BaseConfig:
    """A base config as read: where it came from, its content and what it is for."""

    spec: str
    kind: str  # "firecracker", "firecracker-mirror", "file" or "url"
    location: str
    sha256: str
    text: str
    config: ConfigFile
    series: str | None
    arch: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "kind": self.kind,
            "location": self.location,
            "sha256": self.sha256,
            "series": self.series,
            "arch": self.arch,
        }


@cache
def firecracker_pins() -> dict[str, Any]:
    text = (resources.files("fckernel") / "data" / "firecracker.toml").read_text()
    return tomllib.loads(text)


def default_base_name(arch: Arch) -> str:
    series = firecracker_pins()["default_series"]
    return f"microvm-kernel-ci-{arch.name}-{series}.config"


def load_base(spec: str, cache: Cache, sha256: str | None = None) -> BaseConfig:
    """Read the base config `spec`: a Firecracker config name, a path or a URL."""
    if spec.startswith(("https://", "http://")):
        path, _ = fetch(spec, cache, sha256, label="base config download")
        return _make_base(spec, "url", spec, path.read_bytes())
    if "/" not in spec and not Path(spec).exists():
        return _load_by_name(spec, cache)
    return _load_file(spec, Path(spec))


def check_base_spec(spec: str) -> None:
    """Raise InputError now for a base that load_base() would reject by name or
    path alone: an unknown Firecracker name, a fragment's name, a missing file.
    """
    if spec.startswith(("https://", "http://")) or Path(spec).exists():
        return
    if "/" in spec:
        raise InputError(
            f"base config not found: {spec}",
            "pass a Firecracker config name, an existing file or an https:// URL",
        )
    mirror = os.environ.get(MIRROR_VARIABLE)
    pins = firecracker_pins()
    known = _names_in(Path(mirror)) if mirror else sorted(pins["sha256"])
    if spec not in known or not spec.startswith(WHOLE_CONFIG_PREFIX):
        raise InputError(
            f"unknown Firecracker base config {spec!r}", _choose_hint(known, "")
        )


def _load_by_name(name: str, cache: Cache) -> BaseConfig:
    pins = firecracker_pins()
    mirror = os.environ.get(MIRROR_VARIABLE)
    known = _names_in(Path(mirror)) if mirror else sorted(pins["sha256"])
    if name in known and not name.startswith(WHOLE_CONFIG_PREFIX):
        raise InputError(
            f"{name} is one of Firecracker's config fragments, which add a few "
            "options to a whole guest config; it cannot be the base",
            "pass a base such as microvm-kernel-ci-x86_64-"
            f"{pins['default_series']}.config, and the fragment, saved to a file, "
            "with --fragment",
        )
    if mirror:
        path = Path(mirror) / name
        if not path.is_file():
            raise InputError(
                f"base config {name!r} not found in {MIRROR_VARIABLE}={mirror}",
                _choose_hint(known, ""),
            )
        data = path.read_bytes()
        expected = pins["sha256"].get(name)
        if expected is not None and sha256_bytes(data) != expected:
            raise InputError(
                f"{path} differs from Firecracker's {name} at the pinned commit "
                f"(sha256 {sha256_bytes(data)}, expected {expected})",
                f"restore the file in {MIRROR_VARIABLE}, or pass your edited "
                "copy as a path with --base",
            )
        return _make_base(name, "firecracker-mirror", str(path), data)

    expected = pins["sha256"].get(name)
    if expected is None:
        raise InputError(
            f"unknown Firecracker base config {name!r}",
            _choose_hint(known, ", or pass a path"),
        )
    cached = cache.folder("configs") / f"{expected}.config"
    url = pins["url"].format(ref=pins["ref"], name=name)
    if not cached.is_file():
        path, _ = fetch(url, cache, expected, label="base config download")
        atomic_write(cached, path.read_bytes())
    return _make_base(name, "firecracker", url, cached.read_bytes())


def _load_file(spec: str, path: Path) -> BaseConfig:
    check_regular_file(path, "base config", "pass a kernel .config file")
    try:
        data = path.read_bytes()
    except FileNotFoundError as error:
        raise InputError(
            f"base config not found: {path}",
            "pass a Firecracker config name, an existing file or an https:// URL",
        ) from error
    except OSError as error:
        raise InputError(f"cannot read base config {path}: {error.strerror}") from error
    return _make_base(spec, "file", str(path.absolute()), data)


def _make_base(spec: str, kind: str, location: str, data: bytes) -> BaseConfig:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError(
            f"base config {spec} is not a text file",
            "pass a kernel .config file",
        ) from error
    config = parse_config(text, location)
    if not config.values:
        raise InputError(
            f"base config {spec} contains no CONFIG_ lines",
            "pass a kernel .config file, not a web page or an empty file",
        )
    return BaseConfig(
        spec=spec,
        kind=kind,
        location=location,
        sha256=sha256_bytes(data),
        text=text,
        config=config,
        series=_series(spec, text),
        arch=_arch(config),
    )


def _series(spec: str, text: str) -> str | None:
    match = _SERIES_IN_NAME.search(Path(spec).name)
    if match is None:
        match = _SERIES_IN_HEADER.search(text)
    return match["series"] if match else None


def _arch(config: ConfigFile) -> str | None:
    if config.get("X86_64") == "y":
        return "x86_64"
    if config.get("ARM64") == "y":
        return "aarch64"
    return None


def _bases(names: list[str]) -> list[str]:
    return [name for name in names if name.startswith(WHOLE_CONFIG_PREFIX)]


def _choose_hint(names: list[str], more: str) -> str:
    fragments = [name for name in names if name not in _bases(names)]
    hint = f"choose one of: {', '.join(_bases(names))}{more}"
    if fragments:
        hint += f" (Firecracker's fragments {', '.join(fragments)} go with --fragment)"
    return hint


def _names_in(folder: Path) -> list[str]:
    try:
        return sorted(p.name for p in folder.iterdir() if p.suffix == ".config")
    except OSError:
        return []
