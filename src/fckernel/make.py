"""Every `make` call of the kernel build, and the environment it runs in."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from fckernel.arch import Arch
from fckernel.errors import HostError, InputError
from fckernel.process import capture

# Pinned so that two builds of the same inputs print and embed the same text.
PINNED_ENVIRONMENT = {
    "LANG": "C",
    "LC_ALL": "C",
    "KBUILD_BUILD_TIMESTAMP": "Thu Jan  1 00:00:00 UTC 1970",
    "KBUILD_BUILD_USER": "fckernel",
    "KBUILD_BUILD_HOST": "fckernel",
    "KBUILD_BUILD_VERSION": "1",
}
# Variables that would change where or for what the kernel builds, behind
# fckernel's back: it sets each of them itself.
FORBIDDEN_VARIABLES = ("ARCH", "CROSS_COMPILE", "O", "KBUILD_OUTPUT", "KCONFIG_CONFIG")

# (program, Debian package) needed by every kernel build.
HOST_TOOLS = (
    ("make", "make"),
    ("flex", "flex"),
    ("bison", "bison"),
    ("bc", "bc"),
    ("perl", "perl"),
)
HOST_HEADERS = (
    ("/usr/include/libelf.h", "libelf-dev"),
    ("/usr/include/openssl/ssl.h", "libssl-dev"),
)


@dataclass(frozen=True)
class MakeContext:
    """The fixed part of every `make` call: tree, build folder and arch."""

    source: Path
    build_dir: Path
    arch: Arch

    def command(self, *targets: str, jobs: int | None = None) -> list[str]:
        """Return the `make` argument list for `targets`."""
        command = [
            "make",
            "-C",
            str(self.source),
            f"O={self.build_dir}",
            f"ARCH={self.arch.kernel_arch}",
        ]
        if prefix := self.arch.cross_prefix():
            command.append(f"CROSS_COMPILE={prefix}")
        if jobs:
            command.append(f"-j{jobs}")
        return command + list(targets)


def make_environment() -> dict[str, str]:
    """Return the environment for `make`: the user's, with the pinned variables."""
    environment = dict(os.environ)
    environment.update(PINNED_ENVIRONMENT)
    return environment


def check_environment() -> None:
    """Reject variables that would override fckernel's choice of build settings."""
    for name in FORBIDDEN_VARIABLES:
        if name in os.environ:
            raise InputError(
                f"environment variable {name} is set ({name}={os.environ[name]!r}); "
                "fckernel sets it for each build itself",
                f"unset {name} (use --arch and --output instead)",
            )


def check_host_tools(arch: Arch) -> None:
    """Raise HostError naming the Debian packages for each missing build tool."""
    missing = [
        (tool, package) for tool, package in HOST_TOOLS if not shutil.which(tool)
    ]
    compiler = arch.cross_prefix() + "gcc"
    if not shutil.which(compiler):
        missing.append((compiler, arch.cross_package if arch.cross_prefix() else "gcc"))
    missing += [(h, p) for h, p in HOST_HEADERS if not Path(h).is_file()]
    if missing:
        names = ", ".join(tool for tool, _ in missing)
        packages = " ".join(sorted({package for _, package in missing}))
        raise HostError(
            f"missing build tools on this host: {names}",
            f"install them: apt-get install {packages}",
        )


def toolchain_versions(arch: Arch) -> dict[str, str | None]:
    """Return the first version line of the compiler, linker and make."""
    prefix = arch.cross_prefix()
    return {
        "cc": _first_line([prefix + "gcc", "--version"]),
        "ld": _first_line([prefix + "ld", "--version"]),
        "make": _first_line(["make", "--version"]),
    }


def _first_line(command: list[str]) -> str | None:
    output = capture(command)
    return output.splitlines()[0] if output else None
