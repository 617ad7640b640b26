"""Guest architectures: the make variables, image format and config marker of each."""

from __future__ import annotations

import platform
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources

from fckernel.errors import InputError

ARCHES = ("x86_64", "aarch64")


@dataclass(frozen=True)
class Arch:
    """One guest architecture, as `data/arches.toml` describes it."""

    name: str
    kernel_arch: str
    image_target: str
    image_path: str
    image_name: str
    config_symbol: str
    cross_compile: str
    cross_package: str
    debian_arch: str
    multiarch: str
    elf_machine: int

    def cross_prefix(self) -> str:
        """Return the CROSS_COMPILE prefix, empty when the host runs this arch."""
        return "" if host_arch() == self.name else self.cross_compile


@cache
def _arch_table() -> dict[str, Arch]:
    text = (resources.files("fckernel") / "data" / "arches.toml").read_text()
    table = {}
    for name, fields in tomllib.loads(text).items():
        fields = dict(fields)
        aliases = fields.pop("aliases", [])
        arch = Arch(name=name, **fields)
        table[name] = arch
        table.update((alias, arch) for alias in aliases)
    return table


def get_arch(name: str) -> Arch:
    """Return the architecture called `name` (x86_64, aarch64, or an alias)."""
    table = _arch_table()
    if name not in table:
        raise InputError(f"unknown arch {name!r}", f"use one of: {', '.join(ARCHES)}")
    return table[name]


def host_arch() -> str:
    """Return the host's architecture as fckernel names it, or its raw name."""
    machine = platform.machine()
    table = _arch_table()
    return table[machine].name if machine in table else machine


def default_arch() -> Arch:
    """Return the host's architecture, for jobs that do not pass --arch."""
    name = host_arch()
    if name not in ARCHES:
        raise InputError(
            f"this host's architecture {name!r} is not a Firecracker guest arch",
            "pass --arch x86_64 or --arch aarch64",
        )
    return get_arch(name)
