"""Kernel source trees: from a tarball, a folder, a URL or git, prepared in the cache.

fckernel never writes into a tree: builds go to a separate `make O=` folder, and
trees unpacked from tarballs live in the cache under the tarball's sha256.
"""

from __future__ import annotations

import json
import os
import re
import tarfile
import tomllib
import urllib.parse
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from fckernel.cache import (
    Cache,
    check_free_space,
    cleanup_temps,
    remove,
    sha256_bytes,
    sha256_file,
)
from fckernel.errors import FetchError, InputError
from fckernel.fetch import check_sha256, fetch, fetch_text
from fckernel.process import capture, run

SOURCE_META = ".fckernel-source.json"
# Kinds of source that fckernel chose by itself, and may choose again from the
# cache when no --source is given.
DEFAULT_KINDS = ("distribution", "kernel.org")
KERNEL_ORG_VARIABLE = "FCKERNEL_KERNEL_ORG_MIRROR"
TARBALL_SUFFIXES = (".tar", ".tar.xz", ".tar.gz", ".tgz", ".tar.bz2", ".tar.zst")
# An unpacked tree takes about ten times its xz tarball (6.1: 138 MB to 1.4 GB).
UNPACK_FACTOR = 12
_MAKEFILE_FIELD = re.compile(r"^(VERSION|PATCHLEVEL|SUBLEVEL|EXTRAVERSION)\s*=\s*(.*)$")


@dataclass(frozen=True)
class Source:
    """A prepared kernel tree and where it came from.

    `key` names the tree's content: the tarball's sha256, the git commit, or
    for a user's folder a digest of its path.
    """

    path: Path
    kind: str  # tarball, directory, url, git, distribution, kernel.org, cache
    spec: str
    key: str
    version: str
    sha256: str | None = None
    cache_entry: str | None = None  # its folder under sources/, when cached

    @property
    def series(self) -> str:
        return ".".join(self.version.split(".")[:2])

    def to_json(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "kind": self.kind,
            "path": str(self.path),
            "key": self.key,
            "version": self.version,
            "sha256": self.sha256,
        }


def prepare_source(
    spec: str | None, series: str | None, cache: Cache, sha256: str | None = None
) -> Source:
    """Return a ready tree for `spec`, or for the base config's `series` when
    `spec` is None.
    """
    if spec is None:
        return _default_source(series, cache)
    if spec.startswith("git+"):
        return _prepare_git(spec, cache)
    if spec.startswith(("https://", "http://")):
        digest = check_sha256(sha256, "--source-sha256") if sha256 else None
        return _prepare_url(spec, digest, cache)
    if "://" in spec:
        raise InputError(
            f"--source {spec}: unsupported URL scheme",
            "use an https:// tarball URL or git+URL@REF",
        )
    path = Path(spec)
    if path.is_dir():
        return _prepare_directory(spec, path)
    if path.is_file():
        return _prepare_tarball(path, cache, "tarball", spec)
    raise InputError(
        f"--source {spec}: no such file or folder",
        "pass a kernel tarball, a source folder, an https:// URL or git+URL@REF",
    )


def kernel_version(tree: Path) -> str:
    """Read the kernel version (e.g. 6.1.192) from a tree's top-level Makefile."""
    fields: dict[str, str] = {}
    try:
        with (tree / "Makefile").open(encoding="utf-8", errors="replace") as handle:
            for line, _ in zip(handle, range(20), strict=False):
                if match := _MAKEFILE_FIELD.match(line.strip()):
                    fields[match[1]] = match[2].strip()
    except OSError:
        pass
    if not fields.get("VERSION") or not fields.get("PATCHLEVEL"):
        raise InputError(
            f"{tree} is not a Linux kernel tree (no Makefile with VERSION and "
            "PATCHLEVEL)",
            "pass the top folder of a kernel source tree or its tarball",
        )
    version = (
        f"{fields['VERSION']}.{fields['PATCHLEVEL']}.{fields.get('SUBLEVEL') or 0}"
    )
    return version + fields.get("EXTRAVERSION", "")


def check_kernel_tree(tree: Path) -> str:
    """Return the version of `tree`, or raise if it is not a kernel tree."""
    version = kernel_version(tree)
    if not (tree / "Kconfig").is_file():
        raise InputError(
            f"{tree} is not a Linux kernel tree (no top-level Kconfig)",
            "pass the top folder of a kernel source tree or its tarball",
        )
    return version


def _prepare_directory(spec: str, path: Path) -> Source:
    tree = path.absolute()
    version = check_kernel_tree(tree)
    if (tree / ".config").exists() or (tree / "include" / "config").is_dir():
        raise InputError(
            f"--source {spec} has been configured or built in place, so an "
            "out-of-tree build would fail",
            f"run `make -C {spec} mrproper` or pass a clean copy",
        )
    key = "dir-" + sha256_bytes(str(tree).encode())[:16]
    return Source(tree, "directory", spec, key, version)


def _prepare_tarball(
    tarball: Path, cache: Cache, kind: str, spec: str, digest: str | None = None
) -> Source:
    digest = digest or sha256_file(tarball)
    sources = cache.folder("sources")
    target = sources / digest
    with cache.lock(
        f"source-{digest}", f"waiting for another fckernel to unpack {spec}"
    ):
        if _read_meta(target) is None:
            cleanup_temps(sources)
            remove(target)  # a damaged entry, if any, is unpacked again
            check_free_space(sources, tarball.stat().st_size * UNPACK_FACTOR, spec)
            _unpack(tarball, target, cache, spec, kind)
    meta = _read_meta(target) or {}
    os.utime(target / SOURCE_META)  # marks the tree as recently used for pruning
    tree = (target / meta["tree"]).resolve()
    return Source(tree, kind, spec, digest, kernel_version(tree), digest, digest)


def _read_meta(target: Path) -> dict[str, Any] | None:
    """Return a prepared tree's metadata, or None when it is missing or damaged."""
    try:
        meta = json.loads((target / SOURCE_META).read_text())
    except (OSError, ValueError):
        return None
    fields_ok = isinstance(meta, dict) and isinstance(meta.get("tree"), str)
    return meta if fields_ok and "version" in meta and "spec" in meta else None


def _unpack(tarball: Path, target: Path, cache: Cache, spec: str, kind: str) -> None:
    temp = cache.temp_dir(target.parent)
    try:
        try:
            with tarfile.open(tarball) as archive:
                archive.extractall(temp, filter=_strict_filter)
        except (tarfile.TarError, EOFError, OSError, ValueError) as error:
            raise InputError(
                f"cannot unpack {spec}: {error}",
                "the archive is corrupt, unsafe or not a tarball; download it again",
            ) from error
        tree = _single_tree(temp)
        tree_name = tree.name if tree != temp else "."
        try:
            version = check_kernel_tree(tree)
        except InputError as error:
            raise InputError(
                f"{spec} does not contain a Linux kernel tree: "
                + error.message.split("(", 1)[-1].rstrip(")"),
                "pass a kernel source tarball such as linux-6.1.tar.xz",
            ) from error
        meta = {"version": version, "spec": spec, "tree": tree_name, "kind": kind}
        (temp / SOURCE_META).write_text(json.dumps(meta))
        remove(target)
        temp.rename(target)
    except BaseException:
        remove(temp)
        raise


def _strict_filter(member: tarfile.TarInfo, destination: str) -> tarfile.TarInfo:
    """Apply tarfile's data filter, and reject absolute names that it would only
    strip: a kernel tarball never has them, so one means a crafted archive.
    """
    if member.name.startswith("/"):
        raise tarfile.AbsolutePathError(member)
    return tarfile.data_filter(member, destination)


def _single_tree(folder: Path) -> Path:
    """Return the kernel tree in an unpacked folder: its one top-level folder."""
    entries = [e for e in folder.iterdir() if e.name != SOURCE_META]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return folder


def _prepare_url(
    url: str, sha256: str | None, cache: Cache, kind: str = "url"
) -> Source:
    if sha256 is None:
        sha256 = _kernel_org_checksum(url)
    path, digest = fetch(url, cache, sha256, label="kernel source download")
    return _prepare_tarball(path, cache, kind, url, digest)


def _kernel_org_checksum(url: str) -> str:
    """Look up the sha256 of a kernel.org tarball in its folder's sha256sums.asc."""
    folder, _, name = url.rpartition("/")
    if not _is_kernel_org(folder):
        raise InputError(
            f"--source {url}: no checksum to verify the download against",
            "pass --source-sha256 DIGEST (only kernel.org tarballs are "
            "verified without it)",
        )
    mirror = os.environ.get(KERNEL_ORG_VARIABLE)
    # The checksum list vouches for the tarball, so it comes over https, or
    # over plain http only from a mirror on this machine.
    local_mirror = bool(mirror) and _is_loopback(str(mirror))
    sums = fetch_text(
        f"{folder}/sha256sums.asc",
        label="kernel.org checksum list",
        allow_http=local_mirror and folder.startswith(str(mirror)),
    )
    for line in sums.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[1] == name:
            return check_sha256(fields[0], "sha256sums.asc")
    raise FetchError(
        f"{name} is not listed in {folder}/sha256sums.asc",
        "check the version in the URL",
    )


def _is_kernel_org(folder: str) -> bool:
    mirror = _kernel_org_base()
    return (
        folder.startswith(mirror)
        or re.match(r"https://([a-z0-9-]+\.)*kernel\.org/", folder + "/") is not None
    )


def _prepare_git(spec: str, cache: Cache) -> Source:
    url, _, ref = spec.removeprefix("git+").rpartition("@")
    if not url or not ref or url.startswith("-") or ref.startswith("-"):
        raise InputError(
            f"--source {spec}: expected git+URL@REF",
            "for example git+https://example.org/linux.git@v6.1",
        )
    sources = cache.folder("sources")
    ref_key = "git-" + sha256_bytes(f"{url}@{ref}".encode())[:32]
    target = sources / ref_key
    with cache.lock(
        f"source-{ref_key}", f"waiting for another fckernel to fetch {spec}"
    ):
        if _read_meta(target) is None:
            cleanup_temps(sources)
            remove(target)  # a damaged entry, if any, is cloned again
            _clone(url, ref, target, cache, spec)
    meta = _read_meta(target) or {}
    os.utime(target / SOURCE_META)  # marks the tree as recently used for pruning
    tree = target / meta["tree"]
    key = "git-" + meta["commit"]
    return Source(tree, "git", spec, key, kernel_version(tree), None, ref_key)


def _clone(url: str, ref: str, target: Path, cache: Cache, spec: str) -> None:
    temp = cache.temp_dir(target.parent)
    tree = temp / "linux"
    try:
        steps = [
            ["git", "init", "-q", str(tree)],
            ["git", "-C", str(tree), "fetch", "-q", "--depth", "1", "--", url, ref],
            ["git", "-C", str(tree), "checkout", "-q", "FETCH_HEAD"],
        ]
        for command in steps:
            result = run(command)
            if not result.ok:
                raise FetchError(
                    f"git failed for --source {spec}: "
                    + (result.tail[-1] if result.tail else f"exit {result.returncode}"),
                    "check the repository URL and that REF is a branch, tag or commit",
                )
        commit = (capture(["git", "-C", str(tree), "rev-parse", "HEAD"]) or "").strip()
        version = check_kernel_tree(tree)
        meta = {"version": version, "spec": spec, "tree": "linux", "commit": commit}
        (temp / SOURCE_META).write_text(json.dumps(meta))
        remove(target)
        temp.rename(target)
    except BaseException:
        remove(temp)
        raise


def _default_source(series: str | None, cache: Cache) -> Source:
    if series is None:
        raise InputError(
            "cannot tell the base config's kernel series, so no default source",
            "pass --source with a kernel tarball, folder, URL or git+URL@REF",
        )
    if cached := _cached_source(series, cache):
        return cached
    for pattern in _kernel_table()["distribution"]["paths"]:
        tarball = Path(pattern.format(series=series))
        if tarball.is_file():
            return _prepare_tarball(tarball, cache, "distribution", str(tarball))
    return _kernel_org_source(series, cache)


def _cached_source(series: str, cache: Cache) -> Source | None:
    """Return the most recently prepared default tree of `series`, if any.

    Only trees that an earlier default choice prepared count, so a tarball the
    user passed once with --source never becomes the default.
    """
    candidates = []
    for meta_path in cache.folder("sources").glob(f"*/{SOURCE_META}"):
        meta = _read_meta(meta_path.parent)
        if meta is None or meta.get("kind") not in DEFAULT_KINDS:
            continue
        if ".".join(meta["version"].split(".")[:2]) == series:
            candidates.append((meta_path.stat().st_mtime, meta_path.parent, meta))
    if not candidates:
        return None
    _, folder, meta = max(candidates, key=lambda item: item[0])
    os.utime(folder / SOURCE_META)  # marks the tree as recently used for pruning
    tree = (folder / meta["tree"]).resolve()
    key = "git-" + meta["commit"] if "commit" in meta else folder.name
    sha256 = None if "commit" in meta else folder.name
    version = kernel_version(tree)
    return Source(tree, "cache", meta["spec"], key, version, sha256, folder.name)


def _kernel_org_source(series: str, cache: Cache) -> Source:
    releases = _kernel_table()["releases"]
    if series not in releases:
        raise InputError(
            f"no pinned kernel.org release for series {series}",
            f"pass --source; pinned series: {', '.join(releases)}",
        )
    version = releases[series]
    major = version.split(".")[0]
    url = f"{_kernel_org_base()}/v{major}.x/linux-{version}.tar.xz"
    return _prepare_url(url, None, cache, kind="kernel.org")


def _is_loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def _kernel_org_base() -> str:
    return os.environ.get(KERNEL_ORG_VARIABLE) or _kernel_table()["url"]


@cache
def _kernel_table() -> dict[str, Any]:
    text = (resources.files("fckernel") / "data" / "kernels.toml").read_text()
    return tomllib.loads(text)
