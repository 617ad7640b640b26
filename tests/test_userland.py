"""Tests for the guest's userland: links resolved inside a root, ELF needs, and
the Debian arm64 packages that an aarch64 boot test's initramfs is made of.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest

from fckernel import userland as userland_module
from fckernel.arch import get_arch
from fckernel.cache import Cache
from fckernel.elf import EM_AARCH64, read_elf_header
from fckernel.errors import HostError
from fckernel.initramfs import ENV_FILE, build_initramfs, userland_packages
from fckernel.userland import Userland, debian_userland, needed_libraries
from tests.test_initramfs import INIT, IPTABLES_PROGRAMS, Member, read_newc

AARCH64 = get_arch("aarch64")


def make_root(tmp_path: Path) -> Userland:
    root = tmp_path / "root"
    (root / "usr/lib/aarch64-linux-gnu").mkdir(parents=True)
    (root / "usr/lib/aarch64-linux-gnu/libc.so.6").write_bytes(b"libc")
    (root / "lib").symlink_to("usr/lib")
    (root / "usr/sbin").mkdir()
    (root / "usr/sbin/xtables-nft-multi").write_bytes(b"multi")
    (root / "usr/sbin/iptables-nft").symlink_to("xtables-nft-multi")
    (root / "usr/sbin/absolute").symlink_to("/usr/sbin/xtables-nft-multi")
    (root / "usr/sbin/up").symlink_to("../lib/aarch64-linux-gnu/libc.so.6")
    return Userland(root, AARCH64)


def test_resolve_keeps_absolute_links_inside_the_root(tmp_path: Path) -> None:
    userland = make_root(tmp_path)

    assert userland.resolve("/usr/sbin/absolute") == "/usr/sbin/xtables-nft-multi"
    assert userland.resolve("/lib/aarch64-linux-gnu/libc.so.6") == (
        "/usr/lib/aarch64-linux-gnu/libc.so.6"
    )
    assert userland.resolve("/usr/sbin/up") == "/usr/lib/aarch64-linux-gnu/libc.so.6"
    assert userland.is_file("/usr/sbin/iptables-nft")
    assert not userland.is_file("/usr/sbin/missing")


def test_resolve_stops_on_a_link_loop(tmp_path: Path) -> None:
    userland = make_root(tmp_path)
    (userland.root / "loop").symlink_to("/loop")

    with pytest.raises(HostError, match="too many symbolic links in /loop"):
        userland.resolve("/loop")


def test_needed_libraries_of_host_programs() -> None:
    tc = Path("/usr/sbin/tc")
    if not tc.is_file():
        pytest.skip("needs the Debian package iproute2")

    needed, runpath = needed_libraries(tc)

    assert "libc.so.6" in needed
    assert runpath == []
    assert needed_libraries(Path("/bin/busybox")) == ([], [])


def test_needed_libraries_of_a_corrupt_elf(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(9))

    with pytest.raises(HostError, match=f"cannot read the ELF file {broken}"):
        needed_libraries(broken)


def test_missing_mmdebstrap_names_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(userland_module, "MMDEBSTRAP", "fckernel-no-mmdebstrap")

    with pytest.raises(HostError, match="needs fckernel-no-mmdebstrap") as raised:
        debian_userland(AARCH64, ["busybox-static"], Cache(tmp_path))
    assert raised.value.hint is not None
    assert "apt-get install" in raised.value.hint


def test_failed_unpack_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(userland_module, "MMDEBSTRAP", "false")
    cache = Cache(tmp_path)

    with pytest.raises(HostError, match="could not unpack the arm64 packages"):
        debian_userland(AARCH64, ["busybox-static"], cache)
    assert list(cache.folder("userland").iterdir()) == []


# The real arm64 packages, fetched through the host's apt sources.


@pytest.fixture(scope="module")
def arm64_image(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Member]:
    if shutil.which("mmdebstrap") is None:
        pytest.fail("mmdebstrap is missing: run scripts/setup")
    cache = Cache(tmp_path_factory.mktemp("cache"))
    packages = userland_packages(IPTABLES_PROGRAMS)
    userland = debian_userland(AARCH64, packages, cache)
    image = build_initramfs(INIT, IPTABLES_PROGRAMS, cache, userland)
    return read_newc(gzip.decompress(image.path.read_bytes()))


def test_arm64_image_holds_arm64_programs(
    arm64_image: dict[str, Member], tmp_path: Path
) -> None:
    busybox = tmp_path / "busybox"
    busybox.write_bytes(arm64_image["bin/busybox"].data)
    header = read_elf_header(busybox)

    assert header is not None
    assert header.machine == EM_AARCH64
    assert arm64_image["bin/sh"].target == "/bin/busybox"
    assert "lib/ld-linux-aarch64.so.1" in arm64_image
    assert not any("x86_64" in name for name in arm64_image)


def test_arm64_image_holds_libraries_and_extensions(
    arm64_image: dict[str, Member],
) -> None:
    libraries = "usr/lib/aarch64-linux-gnu"

    assert f"{libraries}/libxtables.so.12" in arm64_image
    assert f"{libraries}/libmnl.so.0" in arm64_image
    assert f"{libraries}/xtables/libxt_comment.so" in arm64_image
    assert f"{libraries}/xtables/libxt_MARK.so" in arm64_image
    assert Path(arm64_image["usr/sbin/iptables-nft"].target).name == (
        "xtables-nft-multi"
    )


def test_arm64_image_environment(arm64_image: dict[str, Member]) -> None:
    env = arm64_image[ENV_FILE.lstrip("/")].data.decode()

    assert "export XTABLES_LIBDIR=/usr/lib/aarch64-linux-gnu/xtables\n" in env
    assert "alias tc=/sbin/tc\n" in env
