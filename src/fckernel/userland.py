"""The source of a boot test's guest programs: the host, or Debian packages.

A guest of the host's arch runs the host's own busybox, iptables and iproute2
(see initramfs.py). A guest of another arch, such as an aarch64 kernel tested
on an x86_64 host, needs programs built for its arch, so fckernel takes them
from Debian's packages of that arch. mmdebstrap's `extract` variant resolves
their dependencies with apt and downloads them through the host's own apt
sources. It unpacks them into a folder without running their scripts, and
installs nothing on the host.

    <cache>/userland/<debian arch>-<key>/   the unpacked packages, a root tree

The key covers the arch, the Debian release, the package list and the host's
apt sources, so the same request reuses the folder.

Programs and libraries are looked up inside that folder as the guest will see
them: a symbolic link with an absolute target points into the folder, not
into the host.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

from fckernel.arch import Arch
from fckernel.cache import TEMP_PREFIX, Cache, cleanup_temps
from fckernel.errors import HostError
from fckernel.process import run

MMDEBSTRAP = "mmdebstrap"
APT_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))
OS_RELEASE = Path("/etc/os-release")
# The Linux limit on symbolic links followed while resolving one path.
MAX_LINK_HOPS = 40
# Lines of mmdebstrap's output quoted in an error; the log has them all.
ERROR_TAIL_LINES = 5


@dataclass(frozen=True)
class Userland:
    """A root tree holding the guest's programs: "/" for the host's own."""

    root: Path
    arch: Arch

    @property
    def is_host(self) -> bool:
        return self.root == Path("/")

    def host_path(self, guest_path: str) -> Path:
        """Return the host file behind `guest_path`, without following links."""
        return self.root / guest_path.lstrip("/")

    def resolve(self, guest_path: str) -> str:
        """Follow symbolic links in `guest_path` inside the root; return the
        guest path of the file it names.
        """
        pending = list(PurePosixPath(guest_path).parts[1:])
        resolved = PurePosixPath("/")
        hops = 0
        while pending:
            part = pending.pop(0)
            if part == "..":
                resolved = resolved.parent
                continue
            candidate = resolved / part
            host = self.host_path(str(candidate))
            if not host.is_symlink():
                resolved = candidate
                continue
            hops += 1
            if hops > MAX_LINK_HOPS:
                raise HostError(
                    f"too many symbolic links in {guest_path} under {self.root}",
                    "remove the folder so that fckernel unpacks it again",
                )
            target = PurePosixPath(os.readlink(host))
            if target.is_absolute():
                resolved = PurePosixPath("/")
                pending = list(target.parts[1:]) + pending
            else:
                pending = list(target.parts) + pending
        return str(resolved)

    def is_file(self, guest_path: str) -> bool:
        return self.host_path(self.resolve(guest_path)).is_file()


def host_userland(arch: Arch) -> Userland:
    return Userland(Path("/"), arch)


def debian_userland(
    arch: Arch, packages: list[str], cache: Cache, log: IO[str] | None = None
) -> Userland:
    """Return Debian `packages` of `arch` and their dependencies, unpacked into
    the cache (downloaded once).

    Raises HostError when mmdebstrap is missing or cannot fetch the packages.
    """
    suite = _debian_release()
    sources = _apt_sources()
    requested = sorted(set(packages))
    key = _key(arch, suite, requested, sources)
    folder = cache.folder("userland")
    target = folder / f"{arch.debian_arch}-{key[:16]}"
    if not target.is_dir():
        with cache.lock("userland"):
            cleanup_temps(folder)
            if not target.is_dir():
                _unpack(arch, suite, requested, sources, target, log)
    return Userland(target, arch)


def needed_libraries(path: Path) -> tuple[list[str], list[str]]:
    """Return the DT_NEEDED names and the RUNPATH (or RPATH) folders of an ELF
    file; both empty for a static program.
    """
    try:
        with path.open("rb") as handle:
            elf = ELFFile(handle)
            needed: list[str] = []
            search: list[str] = []
            for section in elf.iter_sections():
                if not isinstance(section, DynamicSection):
                    continue
                for tag in section.iter_tags():
                    kind = tag.entry.d_tag
                    if kind not in ("DT_NEEDED", "DT_RUNPATH", "DT_RPATH"):
                        continue
                    # pyelftools names each tag's string after the tag:
                    # needed, runpath or rpath.
                    value = str(getattr(tag, kind.removeprefix("DT_").lower()))
                    if kind == "DT_NEEDED":
                        needed.append(value)
                    else:
                        search += value.split(":")
            return needed, [folder for folder in search if folder]
    except ELFError as error:
        raise HostError(
            f"cannot read the ELF file {path}: {error}",
            "remove the userland folder so that fckernel unpacks it again",
        ) from error


def _debian_release() -> str:
    """Return the host's Debian release name, e.g. bookworm."""
    try:
        text = OS_RELEASE.read_text()
    except OSError as error:
        raise HostError(
            f"cannot read {OS_RELEASE}: {error}",
            "run the boot test of a foreign arch on Debian, whose apt sources "
            "provide that arch's packages",
        ) from error
    for line in text.splitlines():
        name, _, value = line.partition("=")
        if name == "VERSION_CODENAME" and value.strip('"'):
            return value.strip('"')
    raise HostError(
        f"{OS_RELEASE} names no VERSION_CODENAME",
        "run the boot test of a foreign arch on a Debian release",
    )


def _apt_sources() -> list[Path]:
    """Return the host's apt source files, in apt's order."""
    listing, folder = APT_SOURCES
    files = [listing] if listing.is_file() else []
    if folder.is_dir():
        files += sorted(
            path
            for path in folder.iterdir()
            if path.suffix in (".list", ".sources") and path.is_file()
        )
    if not files:
        raise HostError(
            "this host has no apt sources",
            f"add Debian's archive to {listing} or {folder}",
        )
    return files


def _key(arch: Arch, suite: str, packages: list[str], sources: list[Path]) -> str:
    digest = hashlib.sha256(f"{arch.debian_arch}\n{suite}\n".encode())
    digest.update(" ".join(packages).encode() + b"\n")
    for path in sources:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _unpack(
    arch: Arch,
    suite: str,
    packages: list[str],
    sources: list[Path],
    target: Path,
    log: IO[str] | None,
) -> None:
    """Unpack `packages` and their dependencies into `target`, or leave nothing."""
    if shutil.which(MMDEBSTRAP) is None:
        raise HostError(
            f"booting a {arch.name} guest needs {MMDEBSTRAP} to unpack Debian's "
            f"{arch.debian_arch} packages of the probes' programs",
            f"install the Debian package {MMDEBSTRAP}: apt-get install {MMDEBSTRAP}",
        )
    staging = target.with_name(f"{TEMP_PREFIX}{os.getpid()}-{target.name}")
    command = [
        MMDEBSTRAP,
        "--variant=extract",
        f"--architectures={arch.debian_arch}",
        f"--include={','.join(packages)}",
        suite,
        str(staging),
        *map(str, sources),
    ]
    try:
        result = run(command, log=log)
        if not result.ok:
            lines = [line.strip() for line in result.tail if line.strip()]
            raise HostError(
                f"{MMDEBSTRAP} could not unpack the {arch.debian_arch} packages "
                f"{', '.join(packages)} (exit status {result.returncode}): "
                + " / ".join(lines[-ERROR_TAIL_LINES:]),
                "check that apt on this host reaches a Debian archive that has "
                f"{arch.debian_arch} packages",
            )
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
