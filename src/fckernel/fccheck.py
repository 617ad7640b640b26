"""`fckernel check`: is a kernel ready for Firecracker?

The requirements are data (`data/firecracker-requirements.toml`). This module
reads a config from a `.config` file, an output folder, or the configuration a
kernel image carries when it was built with CONFIG_IKCONFIG, and checks it.
"""

from __future__ import annotations

import tomllib
import zlib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from fckernel.arch import Arch, get_arch
from fckernel.dotconfig import ConfigFile, parse_config, read_config
from fckernel.errors import InputError
from fckernel.images import FORMAT_NAMES, expected_format, image_format

# zlib's wbits for a gzip header and trailer.
GZIP_WBITS = 16 + zlib.MAX_WBITS
MAX_CONFIG_BYTES = 16 << 20
# CONFIG_IKCONFIG puts the gzip-compressed .config between these markers.
IKCONFIG_START = b"IKCFG_ST"
IKCONFIG_END = b"IKCFG_ED"
IMAGE_ARCHES = {"elf-x86_64": "x86_64", "arm64-image": "aarch64"}


@dataclass(frozen=True)
class Finding:
    """One requirement that a config does not meet."""

    requirement: str
    severity: str  # error or warning
    options: tuple[str, ...]  # SYMBOL=VALUE items, one of which would do
    actual: dict[str, str]  # their values in the config ("n" when absent)
    why: str

    @property
    def fix(self) -> str:
        return " or ".join(f"CONFIG_{item}" for item in self.options)

    def message(self) -> str:
        values = ", ".join(f"CONFIG_{s}={v}" for s, v in self.actual.items())
        if not self.options:
            return self.why
        return f"{values}: {self.why}; fix: set {self.fix}"

    def to_json(self) -> dict[str, Any]:
        return {
            "requirement": self.requirement,
            "severity": self.severity,
            "options": list(self.options),
            "actual": self.actual,
            "why": self.why,
            "fix": self.fix,
        }


@dataclass(frozen=True)
class CheckResult:
    """The findings for one config, and where the config came from."""

    source: str
    arch: str
    findings: list[Finding]
    image_format: str | None = None

    @property
    def ok(self) -> bool:
        return not any(finding.severity == "error" for finding in self.findings)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "arch": self.arch,
            "ok": self.ok,
            "image_format": self.image_format,
            "findings": [finding.to_json() for finding in self.findings],
        }


def check_config(config: ConfigFile, arch: Arch, source: str = "config") -> CheckResult:
    """Check a resolved config against Firecracker's requirements for `arch`."""
    mainline = not any(symbol.startswith("AMAZON_") for symbol in config.values)
    findings = []
    for requirement in _requirements():
        if arch.name not in requirement.get("arches", [arch.name]):
            continue
        if requirement.get("mainline_only") and not mainline:
            continue
        if not all(_holds(config, item) for item in requirement.get("when", [])):
            continue
        options = requirement["require_any"]
        if not any(_holds(config, item) for item in options):
            findings.append(_finding(config, requirement))
    return CheckResult(source, arch.name, findings)


def check_path(path: Path, arch_name: str | None = None) -> CheckResult:
    """Check a `.config` file, an output folder, or a kernel image."""
    if path.is_dir():
        return _check_output(path, arch_name)
    if not path.is_file():
        raise InputError(
            f"{path} not found", "pass a .config, an output folder or a vmlinux"
        )
    found = image_format(path)
    if found == "unknown":
        config = read_config(path)
        return check_config(config, _arch_of(config, arch_name, path), str(path))
    return _check_image(path, found, arch_name)


def embedded_config(image: Path) -> str | None:
    """Return the .config embedded by CONFIG_IKCONFIG in an uncompressed image."""
    data = image.read_bytes()
    start = data.find(IKCONFIG_START)
    if start < 0:
        return None
    end = data.find(IKCONFIG_END, start)
    payload = data[start + len(IKCONFIG_START) : end if end > 0 else None]
    # A .config is well under a megabyte; the bound keeps a crafted image
    # from expanding without end.
    decompressor = zlib.decompressobj(wbits=GZIP_WBITS)
    try:
        text = decompressor.decompress(payload, MAX_CONFIG_BYTES)
    except zlib.error:
        return None
    if decompressor.unconsumed_tail:
        return None
    return text.decode("utf-8", errors="replace")


def _check_output(folder: Path, arch_name: str | None) -> CheckResult:
    config_path = folder / "config"
    if not config_path.is_file():
        raise InputError(
            f"{folder} has no config file",
            "pass an output folder of fckernel build or config, or a .config file",
        )
    config = read_config(config_path)
    arch = _arch_of(config, arch_name, config_path)
    result = check_config(config, arch, str(folder))
    image = folder / arch.image_name
    if not image.is_file():
        return result
    found = image_format(image)
    findings = list(result.findings) + _format_findings(image, found, arch)
    return CheckResult(str(folder), arch.name, findings, found)


def _check_image(image: Path, found: str, arch_name: str | None) -> CheckResult:
    arch = get_arch(arch_name or IMAGE_ARCHES.get(found, "x86_64"))
    text = embedded_config(image)
    if text is None:
        raise InputError(
            f"{image} is {FORMAT_NAMES[found]} file without an embedded config, so "
            "it cannot be checked",
            "build with CONFIG_IKCONFIG=y, or check its .config or output folder",
        )
    result = check_config(parse_config(text, f"{image} (embedded config)"), arch)
    findings = list(result.findings) + _format_findings(image, found, arch)
    return CheckResult(str(image), arch.name, findings, found)


def _format_findings(image: Path, found: str, arch: Arch) -> list[Finding]:
    expected, description = expected_format(arch)
    if found == expected:
        return []
    return [
        Finding(
            requirement="image-format",
            severity="error",
            options=(),
            actual={"image": found},
            why=(
                f"{image.name} is {FORMAT_NAMES[found]} file, but Firecracker "
                f"on {arch.name} loads {description}"
            ),
        )
    ]


def _arch_of(config: ConfigFile, arch_name: str | None, path: Path) -> Arch:
    if arch_name:
        arch = get_arch(arch_name)
        other = {"x86_64": "ARM64", "aarch64": "X86_64"}[arch.name]
        if config.get(other) == "y":
            raise InputError(
                f"{path} is not an {arch.name} config: it sets CONFIG_{other}=y",
                "leave out --arch, or pass a config for that arch",
            )
        return arch
    if config.get("X86_64") == "y":
        return get_arch("x86_64")
    if config.get("ARM64") == "y":
        return get_arch("aarch64")
    raise InputError(f"{path}: cannot tell the arch of this config", "pass --arch")


def _holds(config: ConfigFile, item: str) -> bool:
    symbol, _, value = item.partition("=")
    return (config.get(symbol) or "n") == value


def _finding(config: ConfigFile, requirement: dict[str, Any]) -> Finding:
    options = tuple(requirement["require_any"])
    symbols = [item.partition("=")[0] for item in options]
    return Finding(
        requirement=requirement["id"],
        severity=requirement["severity"],
        options=options,
        actual={symbol: config.get(symbol) or "n" for symbol in symbols},
        why=requirement["why"],
    )


@cache
def _requirements() -> list[dict[str, Any]]:
    path = resources.files("fckernel") / "data" / "firecracker-requirements.toml"
    return list(tomllib.loads(path.read_text())["requirement"])
