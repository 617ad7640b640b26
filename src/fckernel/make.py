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
# Variables from the environment that Kbuild reads and that change the image:
# the compiler and linker chosen, extra flags, the version suffix. The artifact
# cache key includes those that are set (see build_variables()).
BUILD_VARIABLES = (
    "LLVM",
    "LLVM_IAS",
    "CC",
    "LD",
    "AR",
    "NM",
    "OBJCOPY",
    "OBJDUMP",
    "STRIP",
    "HOSTCC",
    "HOSTCXX",
    "KCFLAGS",
    "KCPPFLAGS",
    "KAFLAGS",
    "KRUSTFLAGS",
    "LOCALVERSION",
    "KBUILD_EXTRA_SYMBOLS",
)
# Variables that would change where or for what the kernel builds, behind
# fckernel's back: it sets each of them itself.
FORBIDDEN_VARIABLES = ("ARCH", "CROSS_COMPILE", "O", "KBUILD_OUTPUT", "KCONFIG_CONFIG")

# Debian's ccache package links each installed compiler's name to ccache here.
CCACHE_WRAPPERS = Path("/usr/lib/ccache")

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


def make_environment(ccache_dir: Path | None = None) -> dict[str, str]:
    """Return the environment for `make`: the user's, with the pinned variables,
    and with ccache's compiler wrappers first on PATH when `ccache_dir` is set.

    The wrappers keep every compile command as it was (`gcc ...`), so turning
    ccache on or off does not make Kbuild recompile everything.
    """
    environment = dict(os.environ)
    environment.update(PINNED_ENVIRONMENT)
    if ccache_dir is not None:
        environment["PATH"] = f"{CCACHE_WRAPPERS}:{environment.get('PATH', '')}"
        environment["CCACHE_DIR"] = str(ccache_dir)
    return environment


def build_variables() -> tuple[str, ...]:
    """Return NAME=VALUE for each of BUILD_VARIABLES set in the environment."""
    return tuple(
        f"{name}={os.environ[name]}" for name in BUILD_VARIABLES if name in os.environ
    )


def ccache_available(arch: Arch) -> bool:
    """Return whether ccache and its wrapper for this arch's compiler exist."""
    compiler = arch.cross_prefix() + "gcc"
    return shutil.which("ccache") is not None and (CCACHE_WRAPPERS / compiler).exists()


def ccache_stats(ccache_dir: Path) -> dict[str, int]:
    """Return ccache's hit and miss counters for `ccache_dir`."""
    environment = {**os.environ, "CCACHE_DIR": str(ccache_dir)}
    output = capture(["ccache", "--print-stats"], env=environment) or ""
    counters = dict(line.split("\t", 1) for line in output.splitlines() if "\t" in line)

    def count(name: str) -> int:
        value = counters.get(name, "0")
        return int(value) if value.isdigit() else 0

    return {
        "hits": count("direct_cache_hit") + count("preprocessed_cache_hit"),
        "misses": count("cache_miss"),
    }


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
