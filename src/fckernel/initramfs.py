"""The initramfs a boot test runs: busybox, the probes' host programs and libraries.

The image is a gzip-compressed cpio "newc" archive for x86_64 guests, built
from the host's own files, so the host must be x86_64 Debian (or alike):

    /init                             the init script (see guest.py)
    /bin/busybox, /bin/sh, ...        Debian's busybox-static and its applet links
    /usr/sbin/iptables-nft -> ...     each program at its host path; a symbolic
                                      link keeps its name, which multi-call
                                      programs such as xtables-nft-multi read
    /lib/x86_64-linux-gnu/libc.so.6   each shared library at the path where the
    /lib64/ld-linux-x86-64.so.2       host's dynamic loader found it
    /usr/lib/x86_64-linux-gnu/xtables iptables extensions, when libxtables is in
    /etc/protocols, /etc/ethertypes   name databases iptables reads, if present
    /etc/fckernel-env.sh              PATH, library paths and aliases, which
                                      /init and each probe source
    /dev/console, /proc, /run, ...    mount points and the kernel's first console

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

from fckernel.arch import host_arch
from fckernel.cache import Cache, atomic_write, cleanup_temps, sha256_file
from fckernel.cpio import CpioWriter
from fckernel.elf import EM_X86_64, read_elf_header
from fckernel.errors import HostError, InputError
from fckernel.process import capture

# Bump when the image layout changes, so that cached images of the old layout
# are not reused.
LAYOUT_VERSION = 1

BUSYBOX = Path("/bin/busybox")
# Searched in this order for a probe's programs; the guest's PATH is the same.
PROGRAM_DIRS = (
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
)
# libxtables loads the match and target extensions from here at run time.
XTABLES_DIR = Path("/usr/lib/x86_64-linux-gnu/xtables")
XTABLES_LIBRARY = "libxtables.so"
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
    files: Mapping[str, bytes] | None = None,
) -> Initramfs:
    """Build, or take from the cache, the initramfs for a boot test.

    `init_script` becomes /init, `programs` are host program names the guest
    needs (found in PROGRAM_DIRS), and `files` maps more archive paths to
    their content. Raises HostError when the host is not x86_64 or lacks
    busybox-static or a program, and InputError for a program name that is a
    path.
    """
    started = time.monotonic()
    manifest = collect_manifest(init_script, programs, files or {})
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
    init_script: str, programs: Sequence[str], files: Mapping[str, bytes]
) -> Manifest:
    """List every entry of the image without reading the files' contents."""
    _check_host()
    manifest = Manifest()
    for mount_point in MOUNT_POINTS:
        manifest.add_dir(mount_point)

    busybox = _find_busybox()
    manifest.add_host_file(str(BUSYBOX), busybox)
    applets = _add_applet_links(manifest, busybox, skip=set(programs))
    found = {name: _find_program(name) for name in programs}
    executables = [busybox, *(_add_program(manifest, path) for path in found.values())]

    library_dirs = _add_libraries(manifest, executables)
    xtables = any(XTABLES_LIBRARY in Path(path).name for path in manifest.entries)
    if xtables:
        library_dirs |= _add_xtables_extensions(manifest, executables)
    for data_file in DATA_FILES:
        if Path(data_file).is_file():
            manifest.add_host_file(data_file, Path(data_file))

    env = _environment(sorted(library_dirs), xtables, _applet_aliases(found, applets))
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


def _check_host() -> None:
    if host_arch() != "x86_64":
        raise HostError(
            f"boot tests need an x86_64 host, not {host_arch()}",
            "run the boot test on an x86_64 machine, because the guest's "
            "initramfs is made of the host's programs",
        )


def _find_busybox() -> Path:
    if not BUSYBOX.is_file():
        raise HostError(
            f"busybox not found at {BUSYBOX}",
            "install the Debian package busybox-static: apt-get install busybox-static",
        )
    return BUSYBOX


def _find_program(name: str) -> Path:
    if not name or "/" in name:
        raise InputError(
            f"probe program {name!r} is not a program name",
            "list bare names such as 'tc' in a probe's programs",
        )
    for folder in PROGRAM_DIRS:
        candidate = Path(folder) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    package = package_for(name)
    hint = (
        f"install the Debian package {package}: apt-get install {package}"
        if package
        else f"install the package that provides {name}; `apt-file search "
        f"/usr/sbin/{name}` finds it"
    )
    searched = ":".join(PROGRAM_DIRS)
    raise HostError(f"program {name!r} not found on this host in {searched}", hint)


def _add_program(manifest: Manifest, host_path: Path) -> Path:
    """Add the program under the name the guest calls it by, linked to the file
    it resolves to when that differs; return that file.
    """
    real = host_path.resolve()
    if real != host_path:
        # Multi-call programs such as xtables-nft-multi read the name they
        # were called by, so the link must keep it.
        manifest.add_symlink(str(host_path), str(real))
    manifest.add_host_file(str(real), real)
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
            manifest.add_symlink(path, str(busybox))
    return names


def _applet_aliases(found: Mapping[str, Path], applets: set[str]) -> list[str]:
    """Return aliases that make busybox sh run the host's program, not the
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


def _add_libraries(manifest: Manifest, binaries: Iterable[Path]) -> set[str]:
    """Add the shared libraries and the loader the binaries need; return the
    folders they are in.
    """
    folders: set[str] = set()
    for binary in binaries:
        loader = _loader_of(binary)
        if loader is not None:
            folders |= _add_loader_listing(manifest, loader, binary)
    return folders


def _add_xtables_extensions(manifest: Manifest, binaries: Iterable[Path]) -> set[str]:
    """Add iptables' extension modules and the libraries they need."""
    loader = next(filter(None, map(_loader_of, binaries)))
    folders = {str(XTABLES_DIR)}
    for module in sorted(XTABLES_DIR.glob("*.so")):
        manifest.add_host_file(str(module), module)
        folders |= _add_loader_listing(manifest, loader, module)
    return folders


def _loader_of(binary: Path) -> str | None:
    """Return the dynamic loader `binary` names, or None for a static program or
    a script, which busybox sh runs in the guest.
    """
    header = read_elf_header(binary)
    if header is None:
        return None
    if header.machine != EM_X86_64:
        raise HostError(
            f"{binary} is not an x86_64 program",
            "the boot test copies host programs into an x86_64 guest",
        )
    return header.interpreter


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


def _environment(library_dirs: list[str], xtables: bool, aliases: list[str]) -> str:
    lines = [
        f"export PATH={':'.join(PROGRAM_DIRS)}",
        f"export LD_LIBRARY_PATH={':'.join(library_dirs)}",
        # Interactive shells read $ENV, so a person's shell gets the aliases too.
        f"export ENV={ENV_FILE}",
    ]
    if xtables:
        lines.append(f"export XTABLES_LIBDIR={XTABLES_DIR}")
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
