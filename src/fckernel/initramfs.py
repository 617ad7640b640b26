"""The initramfs a boot test runs: busybox, the probes' host programs and libraries.

The image is a gzip-compressed cpio "newc" archive built from a userland
(see userland.py): the host's own files for a guest of the host's arch, else
Debian's packages of the guest's arch unpacked into the cache. On an x86_64
Debian host it holds:

    /init                             the init script (see guest.py)
    /bin/busybox, /bin/sh, ...        Debian's busybox-static and its applet links
    /usr/sbin/iptables-nft -> ...     each program at its host path; a symbolic
                                      link keeps its name, which multi-call
                                      programs such as xtables-nft-multi read
    /lib/x86_64-linux-gnu/libc.so.6   each shared library at the path where the
    /lib64/ld-linux-x86-64.so.2       host's dynamic loader found it
    /usr/lib/x86_64-linux-gnu/xtables iptables extensions, when libxtables is in
                                      (the folder of the guest's arch)
    /etc/protocols, /etc/ethertypes   name databases iptables reads, if present
    /etc/fckernel-env.sh              PATH, library paths and aliases, which
                                      /init and each probe source
    /dev/console, /proc, /run, ...    mount points and the kernel's first console

The host's dynamic loader lists the libraries of a host program. It cannot
run a foreign arch's programs, so for those fckernel follows their DT_NEEDED
entries through the userland's library folders instead.

Images are cached by content as <cache>/initramfs/<sha256>.cpio.gz, where the
key covers the init script, the program list and every entry with the bytes
of every file, so an updated host package gives a new image.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shlex
import stat
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from fckernel.cache import Cache, atomic_write, cleanup_temps, sha256_file
from fckernel.cpio import CpioWriter
from fckernel.elf import read_elf_header
from fckernel.errors import HostError, InputError
from fckernel.process import capture
from fckernel.userland import Userland, needed_libraries

# Bump when the image layout changes, so that cached images of the old layout
# are not reused.
LAYOUT_VERSION = 2

BUSYBOX = "/bin/busybox"
# Searched in this order for a probe's programs; the guest's PATH is the same.
PROGRAM_DIRS = (
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
)
# libxtables loads the match and target extensions from here at run time;
# {multiarch} is the arch's library folder name, e.g. x86_64-linux-gnu.
XTABLES_DIR = "/usr/lib/{multiarch}/xtables"
XTABLES_LIBRARY = "libxtables.so"
# The folders searched for a foreign program's libraries after its RUNPATH,
# in the order of Debian's dynamic loader.
LIBRARY_DIRS = ("/lib/{multiarch}", "/usr/lib/{multiarch}", "/lib", "/usr/lib")
# Name databases: protocols for `-p tcp`, ethertypes for ebtables, services
# for port names. Each is optional because iptables has built-in fallbacks.
DATA_FILES = ("/etc/protocols", "/etc/ethertypes", "/etc/services")
MOUNT_POINTS = ("/proc", "/sys", "/dev", "/tmp", "/run", "/var/lib", "/root")
ENV_FILE = "/etc/fckernel-env.sh"
CONSOLE_DEVICE = ("/dev/console", 5, 1)
GZIP_LEVEL = 6

# The Debian package that provides each program the shipped probes name.
_PACKAGES = {
    "busybox": "busybox-static",
    "ip": "iproute2",
    "tc": "iproute2",
    "bridge": "iproute2",
    "ss": "iproute2",
}
_IPTABLES_PREFIXES = ("iptables", "ip6tables", "xtables", "arptables", "ebtables")


@dataclass(frozen=True)
class Initramfs:
    """A built initramfs image and whether it came from the cache."""

    path: Path
    key: str
    cached: bool
    seconds: float

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size


@dataclass(frozen=True)
class _Entry:
    """One archive entry: a host file, inline data, a symbolic link or a folder."""

    kind: str  # "file", "symlink" or "dir"
    mode: int = 0o755
    source: Path | None = None
    data: bytes | None = None
    target: str = ""


class Manifest:
    """The entries of an image by archive path, before they are written."""

    def __init__(self) -> None:
        self.entries: dict[str, _Entry] = {}

    def add_host_file(self, path: str, source: Path) -> None:
        mode = stat.S_IMODE(source.stat().st_mode)
        self._add(path, _Entry("file", mode, source=source.resolve()))

    def add_data(self, path: str, data: bytes, mode: int = 0o644) -> None:
        self._add(path, _Entry("file", mode, data=data))

    def add_symlink(self, path: str, target: str) -> None:
        self._add(path, _Entry("symlink", 0o777, target=target))

    def add_dir(self, path: str) -> None:
        self._add(path, _Entry("dir"))

    def __contains__(self, path: str) -> bool:
        return path in self.entries

    def digest(self, init_script: str, programs: Sequence[str]) -> str:
        """Return the cache key: a sha256 over the inputs and every entry."""
        digest = hashlib.sha256()
        header = f"layout {LAYOUT_VERSION}\nprograms {' '.join(programs)}\n"
        digest.update(header.encode() + init_script.encode() + b"\0")
        for path, entry in sorted(self.entries.items()):
            digest.update(f"{path}\0{entry.kind}\0{entry.mode:o}\0".encode())
            digest.update(_content_digest(entry).encode() + b"\n")
        return digest.hexdigest()

    def archive(self) -> bytes:
        """Return the gzip-compressed newc archive of every entry."""
        buffer = io.BytesIO()
        # mtime=0 keeps the gzip header, and so the image, reproducible.
        with gzip.GzipFile(
            fileobj=buffer, mode="wb", compresslevel=GZIP_LEVEL, mtime=0
        ) as compressed:
            writer = CpioWriter(compressed)
            writer.add_char_device(*CONSOLE_DEVICE)
            for path, entry in sorted(self.entries.items()):
                _write_entry(writer, path, entry)
            writer.close()
        return buffer.getvalue()

    def _add(self, path: str, entry: _Entry) -> None:
        existing = self.entries.get(path)
        if existing is not None and existing != entry:
            raise ValueError(f"initramfs path {path} was added twice, differently")
        self.entries[path] = entry


def build_initramfs(
    init_script: str,
    programs: Sequence[str],
    cache: Cache,
    userland: Userland,
    files: Mapping[str, bytes] | None = None,
) -> Initramfs:
    """Build, or take from the cache, the initramfs for a boot test.

    `init_script` becomes /init, `programs` are names of programs in
    `userland` that the guest needs (found in PROGRAM_DIRS), and `files` maps
    more archive paths to their content. Raises HostError when the userland
    lacks busybox-static or a program, and InputError for a program name that
    is a path.
    """
    started = time.monotonic()
    manifest = collect_manifest(init_script, programs, files or {}, userland)
    key = manifest.digest(init_script, programs)
    folder = cache.folder("initramfs")
    path = folder / f"{key}.cpio.gz"
    cached = path.exists()
    if not cached:
        with cache.lock("initramfs"):
            cleanup_temps(folder)
            if not path.exists():
                atomic_write(path, manifest.archive())
    return Initramfs(path, key, cached, time.monotonic() - started)


def collect_manifest(
    init_script: str,
    programs: Sequence[str],
    files: Mapping[str, bytes],
    userland: Userland,
) -> Manifest:
    """List every entry of the image without reading the files' contents."""
    manifest = Manifest()
    for mount_point in MOUNT_POINTS:
        manifest.add_dir(mount_point)

    busybox = _find_busybox(userland)
    manifest.add_host_file(BUSYBOX, userland.host_path(busybox))
    if userland.is_host:
        applets = _add_applet_links(manifest, Path(busybox), skip=set(programs))
    else:
        # A foreign busybox cannot run here to list its applets, so the guest
        # links them at boot (see _environment). An alias for each program
        # (see _applet_aliases) costs nothing where no applet has that name.
        manifest.add_symlink("/bin/sh", BUSYBOX)
        applets = set(programs)
    found = {name: _find_program(name, userland) for name in programs}
    executables = [
        BUSYBOX,
        *(_add_program(manifest, userland, path) for path in found.values()),
    ]

    library_dirs = _add_libraries(manifest, userland, executables)
    xtables_dir = XTABLES_DIR.format(multiarch=userland.arch.multiarch)
    xtables = any(XTABLES_LIBRARY in Path(path).name for path in manifest.entries)
    if xtables:
        library_dirs |= _add_xtables_extensions(manifest, userland, xtables_dir)
    for data_file in DATA_FILES:
        # Name databases are the same on every arch: the host's serve when
        # the userland has none.
        for candidate in (userland.host_path(data_file), Path(data_file)):
            if candidate.is_file():
                manifest.add_host_file(data_file, candidate)
                break

    aliases = _applet_aliases(found, applets)
    env = _environment(
        sorted(library_dirs),
        xtables_dir if xtables else "",
        aliases,
        link_applets=not userland.is_host,
    )
    manifest.add_data(ENV_FILE, env.encode())
    manifest.add_data("/init", init_script.encode(), mode=0o755)
    for path, data in files.items():
        manifest.add_data(path, data)
    return manifest


def package_for(program: str) -> str | None:
    """Return the Debian package that provides `program`, or None for a program
    outside fckernel's table.
    """
    if program in _PACKAGES:
        return _PACKAGES[program]
    if program.startswith(_IPTABLES_PREFIXES):
        return "iptables"
    return None


def userland_packages(programs: Sequence[str]) -> list[str]:
    """Return the Debian packages that provide busybox and `programs`.

    Raises HostError for a program outside fckernel's table, whose package
    it cannot name for another arch.
    """
    packages = [_PACKAGES["busybox"]]
    for program in programs:
        package = package_for(program)
        if package is None:
            raise HostError(
                f"fckernel does not know which Debian package provides {program!r} "
                "for a guest of another arch",
                "boot-test that probe on a host of the guest's arch, or leave "
                "out the feature that needs it",
            )
        packages.append(package)
    return sorted(set(packages))


def _find_busybox(userland: Userland) -> str:
    if not userland.is_file(BUSYBOX):
        raise HostError(
            f"busybox not found at {userland.host_path(BUSYBOX)}",
            "install the Debian package busybox-static: apt-get install busybox-static",
        )
    return userland.resolve(BUSYBOX)


def _find_program(name: str, userland: Userland) -> str:
    if not name or "/" in name:
        raise InputError(
            f"probe program {name!r} is not a program name",
            "list bare names such as 'tc' in a probe's programs",
        )
    for folder in PROGRAM_DIRS:
        candidate = f"{folder}/{name}"
        if userland.is_file(candidate) and os.access(
            userland.host_path(userland.resolve(candidate)), os.X_OK
        ):
            return candidate
    searched = ":".join(PROGRAM_DIRS)
    if not userland.is_host:
        raise HostError(
            f"program {name!r} not found in {searched} of the "
            f"{userland.arch.debian_arch} packages in {userland.root}",
            "remove that folder so that fckernel unpacks the packages again",
        )
    package = package_for(name)
    hint = (
        f"install the Debian package {package}: apt-get install {package}"
        if package
        else f"install the package that provides {name}; `apt-file search "
        f"/usr/sbin/{name}` finds it"
    )
    raise HostError(f"program {name!r} not found on this host in {searched}", hint)


def _add_program(manifest: Manifest, userland: Userland, path: str) -> str:
    """Add the program under the name the guest calls it by, linked to the file
    it resolves to when that differs; return that file's path.
    """
    real = userland.resolve(path)
    if real != path:
        # Multi-call programs such as xtables-nft-multi read the name they
        # were called by, so the link must keep it.
        manifest.add_symlink(path, real)
    manifest.add_host_file(real, userland.host_path(real))
    return real


def _add_applet_links(manifest: Manifest, busybox: Path, skip: set[str]) -> set[str]:
    """Link each busybox applet to /bin/busybox, unless a host program of the
    same name was added; return the names of all applets.
    """
    listing = capture([str(busybox), "--list-full"])
    if listing is None:
        raise HostError(
            f"{busybox} --list-full failed",
            "reinstall the Debian package busybox-static",
        )
    names = set()
    for applet in listing.split():
        path = "/" + applet.lstrip("/")
        names.add(Path(path).name)
        if Path(path).name not in skip and path not in manifest:
            manifest.add_symlink(path, BUSYBOX)
    return names


def _applet_aliases(found: Mapping[str, str], applets: set[str]) -> list[str]:
    """Return aliases that make busybox sh run the userland's program, not the
    busybox applet of the same name.

    Debian builds busybox-static with FEATURE_SH_STANDALONE and
    FEATURE_PREFER_APPLETS, so its sh runs an applet before it searches PATH,
    and busybox's `tc` lacks `qdisc replace`. Only a path, an alias or a
    function overrides that, and unlike a function an alias may contain "-".
    """
    return [
        f"alias {shlex.quote(f'{name}={path}')}"
        for name, path in found.items()
        if name in applets
    ]


def _add_libraries(
    manifest: Manifest, userland: Userland, binaries: Iterable[str]
) -> set[str]:
    """Add the shared libraries and the loader the binaries need; return the
    folders they are in. Scripts and static programs need none.
    """
    folders: set[str] = set()
    for binary in binaries:
        host = userland.host_path(userland.resolve(binary))
        header = read_elf_header(host)
        if header is None:
            continue
        if header.machine != userland.arch.elf_machine:
            raise HostError(
                f"{host} is not an {userland.arch.name} program",
                f"the boot test copies {userland.arch.name} programs into the guest",
            )
        if not needed_libraries(host)[0]:
            continue
        if userland.is_host:
            # A shared library names no loader; the programs' loader lists it.
            loader = header.interpreter or _loader_in(manifest)
            folders |= _add_loader_listing(manifest, loader, host)
        else:
            folders |= _add_needed_libraries(
                manifest, userland, binary, header.interpreter
            )
    return folders


def _add_xtables_extensions(
    manifest: Manifest, userland: Userland, xtables_dir: str
) -> set[str]:
    """Add iptables' extension modules and the libraries they need."""
    modules = sorted(userland.host_path(xtables_dir).glob("*.so"))
    modules_in_guest = [f"{xtables_dir}/{module.name}" for module in modules]
    for path in modules_in_guest:
        manifest.add_host_file(path, userland.host_path(userland.resolve(path)))
    return {xtables_dir} | _add_libraries(manifest, userland, modules_in_guest)


def _add_loader_listing(manifest: Manifest, loader: str, binary: Path) -> set[str]:
    """Ask the host's dynamic loader which libraries `binary` needs, and add them.

    The loader's own listing (what ldd prints) is used instead of reading
    DT_NEEDED entries, because it applies RUNPATH, $ORIGIN, ld.so.cache and
    the multiarch folders exactly as the same loader will in the guest.
    """
    listing = capture([loader, "--list", str(binary)])
    if listing is None:
        raise HostError(
            f"the dynamic loader {loader} could not list the libraries of {binary}",
            f"check that `{loader} --list {binary}` works on this host",
        )
    folders = set()
    for library in parse_loader_listing(listing, binary):
        manifest.add_host_file(library, Path(library))
        folders.add(str(Path(library).parent))
    return folders


def _loader_in(manifest: Manifest) -> str:
    """Return a loader already in the image, for listing a shared library's needs."""
    for path in manifest.entries:
        if Path(path).name.startswith("ld-linux"):
            return path
    raise HostError(
        "no dynamic loader found for iptables' extension modules",
        "reinstall the Debian package iptables",
    )


def _add_needed_libraries(
    manifest: Manifest, userland: Userland, binary: str, loader: str | None
) -> set[str]:
    """Add the loader and, following DT_NEEDED, every library `binary` needs."""
    folders: set[str] = set()
    if loader:
        manifest.add_host_file(loader, userland.host_path(userland.resolve(loader)))
    pending = [binary]
    while pending:
        current = pending.pop()
        host = userland.host_path(userland.resolve(current))
        names, runpath = needed_libraries(host)
        origin = str(Path(userland.resolve(current)).parent)
        for name in names:
            library = _find_library(userland, name, runpath, origin, current)
            if library not in manifest:
                target = userland.host_path(userland.resolve(library))
                manifest.add_host_file(library, target)
                pending.append(library)
            folders.add(str(Path(library).parent))
    return folders


def _find_library(
    userland: Userland, name: str, runpath: list[str], origin: str, needer: str
) -> str:
    multiarch = userland.arch.multiarch
    folders = [folder.replace("$ORIGIN", origin) for folder in runpath]
    folders += [folder.format(multiarch=multiarch) for folder in LIBRARY_DIRS]
    for folder in folders:
        if userland.is_file(f"{folder}/{name}"):
            return f"{folder}/{name}"
    raise HostError(
        f"{needer} needs {name}, which the {userland.arch.debian_arch} packages "
        f"in {userland.root} do not have",
        "remove that folder so that fckernel unpacks the packages again",
    )


def parse_loader_listing(listing: str, binary: Path) -> list[str]:
    """Return the library paths in `ld.so --list` (or ldd) output.

    Raises HostError naming the first library the loader did not find.
    """
    paths = []
    for line in listing.splitlines():
        name, arrow, found = line.strip().partition("=>")
        location = (found if arrow else name).strip()
        if location.startswith("not found"):
            raise HostError(
                f"{binary} needs {name.strip()}, which this host does not have",
                "reinstall the package that provides the program",
            )
        path = location.split(" (", 1)[0].strip()
        # Entries without a path, such as linux-vdso.so.1, live in the kernel.
        if path.startswith("/"):
            paths.append(path)
    return paths


# Debian's busybox-static needs a link per applet: its sh finds applets on PATH
# like other programs. `--install -s` links every applet to the path that
# /proc/self/exe names, and leaves the files already there alone.
_LINK_APPLETS = f"""\
if [ ! -e /bin/mount ]; then
    {BUSYBOX} mkdir -p /bin /sbin /usr/bin /usr/sbin
    {BUSYBOX} mount -t proc proc /proc
    {BUSYBOX} --install -s
    {BUSYBOX} umount /proc
fi"""


def _environment(
    library_dirs: list[str],
    xtables_dir: str,
    aliases: list[str],
    link_applets: bool = False,
) -> str:
    lines = [_LINK_APPLETS] if link_applets else []
    lines += [
        f"export PATH={':'.join(PROGRAM_DIRS)}",
        f"export LD_LIBRARY_PATH={':'.join(library_dirs)}",
        # Interactive shells read $ENV, so a person's shell gets the aliases too.
        f"export ENV={ENV_FILE}",
    ]
    if xtables_dir:
        lines.append(f"export XTABLES_LIBDIR={xtables_dir}")
    return "\n".join(lines + aliases) + "\n"


def _content_digest(entry: _Entry) -> str:
    if entry.source is not None:
        return sha256_file(entry.source)
    if entry.data is not None:
        return hashlib.sha256(entry.data).hexdigest()
    return entry.target


def _write_entry(writer: CpioWriter, path: str, entry: _Entry) -> None:
    if entry.kind == "dir":
        writer.add_directory(path, entry.mode)
    elif entry.kind == "symlink":
        writer.add_symlink(path, entry.target)
    else:
        data = entry.source.read_bytes() if entry.source else entry.data or b""
        writer.add_file(path, data, entry.mode)
