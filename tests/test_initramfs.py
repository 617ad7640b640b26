"""Tests for the newc writer and the boot test's initramfs."""

from __future__ import annotations

import gzip
import io
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from fckernel import initramfs
from fckernel.arch import get_arch
from fckernel.cache import Cache
from fckernel.cpio import CpioWriter
from fckernel.errors import HostError, InputError
from fckernel.initramfs import (
    BUSYBOX,
    ENV_FILE,
    build_initramfs,
    package_for,
    parse_loader_listing,
    userland_packages,
)
from fckernel.userland import Userland, host_userland

IPTABLES_PROGRAMS = ["iptables-nft", "ip6tables-legacy", "tc"]
INIT = "#!/bin/busybox sh\necho test init\n"
HOST = host_userland(get_arch("x86_64"))
XTABLES_DIR = "/usr/lib/x86_64-linux-gnu/xtables"

HOST_PROGRAMS_MISSING = (
    not Path(BUSYBOX).is_file()
    or shutil.which("xtables-nft-multi", path="/usr/sbin:/sbin") is None
    or shutil.which("tc", path="/usr/sbin:/sbin") is None
)
HOST_PROGRAMS_REASON = "needs the Debian packages busybox-static, iptables, iproute2"
needs_host_programs = pytest.mark.skipif(
    HOST_PROGRAMS_MISSING, reason=HOST_PROGRAMS_REASON
)


@dataclass(frozen=True)
class Member:
    """One entry read back from a newc archive."""

    mode: int
    nlink: int
    rdev: tuple[int, int]
    data: bytes

    @property
    def target(self) -> str:
        return self.data.decode()


def read_newc(archive: bytes) -> dict[str, Member]:
    """Parse a newc archive independently of the writer, up to its trailer."""
    members: dict[str, Member] = {}
    offset = 0
    while True:
        header = archive[offset : offset + 110]
        assert header[:6] == b"070701", f"bad magic at offset {offset}"
        fields = [int(header[6 + 8 * i : 14 + 8 * i], 16) for i in range(13)]
        size, name_size = fields[6], fields[11]
        name_start = offset + 110
        name = archive[name_start : name_start + name_size - 1].decode()
        data_start = _aligned(name_start + name_size)
        data = archive[data_start : data_start + size]
        offset = _aligned(data_start + size)
        if name == "TRAILER!!!":
            return members
        assert name not in members, f"{name} appears twice"
        members[name] = Member(fields[1], fields[4], (fields[9], fields[10]), data)


def _aligned(offset: int) -> int:
    return (offset + 3) & ~3


def write_sample_archive() -> bytes:
    buffer = io.BytesIO()
    writer = CpioWriter(buffer)
    writer.add_file("/bin/busybox", b"binary", 0o755)
    writer.add_symlink("/bin/sh", "/bin/busybox")
    writer.add_char_device("/dev/console", 5, 1)
    writer.add_file("usr/lib/deep/file.txt", b"odd length")
    writer.add_directory("/run")
    writer.close()
    return buffer.getvalue()


def test_cpio_entries_read_back() -> None:
    members = read_newc(write_sample_archive())

    assert members["bin/busybox"].data == b"binary"
    assert stat.S_IMODE(members["bin/busybox"].mode) == 0o755
    assert stat.S_ISLNK(members["bin/sh"].mode)
    assert members["bin/sh"].target == "/bin/busybox"
    assert stat.S_ISCHR(members["dev/console"].mode)
    assert members["dev/console"].rdev == (5, 1)
    assert members["usr/lib/deep/file.txt"].data == b"odd length"
    assert stat.S_ISDIR(members["run"].mode)


def test_cpio_parents_come_first() -> None:
    names = list(read_newc(write_sample_archive()))

    for name in names:
        parent = str(Path(name).parent)
        if parent != ".":
            assert names.index(parent) < names.index(name)


def test_cpio_files_have_one_link() -> None:
    # The kernel treats regular files with nlink > 1 as hard links to each other.
    members = read_newc(write_sample_archive())

    assert members["bin/busybox"].nlink == 1
    assert members["usr/lib/deep/file.txt"].nlink == 1


@pytest.mark.skipif(shutil.which("cpio") is None, reason="needs GNU cpio")
def test_cpio_tool_lists_the_archive() -> None:
    listing = subprocess.run(
        ["cpio", "-t", "--quiet"],
        input=write_sample_archive(),
        capture_output=True,
        check=True,
    ).stdout.decode()

    assert listing.split() == list(read_newc(write_sample_archive()))


def test_cpio_rejects_duplicate_file() -> None:
    writer = CpioWriter(io.BytesIO())
    writer.add_file("/etc/protocols", b"a")

    with pytest.raises(ValueError, match="already contains"):
        writer.add_file("etc/protocols", b"b")


def test_cpio_rejects_parent_reference() -> None:
    writer = CpioWriter(io.BytesIO())

    with pytest.raises(ValueError, match=r"\.\."):
        writer.add_file("/tmp/../etc/passwd", b"")


def test_cpio_rejects_entries_after_close() -> None:
    writer = CpioWriter(io.BytesIO())
    writer.close()

    with pytest.raises(ValueError, match="closed"):
        writer.add_directory("/proc")


def test_loader_listing_keeps_paths() -> None:
    listing = (
        "\tlinux-vdso.so.1 (0x00007ffd)\n"
        "\tlibxtables.so.12 => /lib/x86_64-linux-gnu/libxtables.so.12 (0x7f)\n"
        "\t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n"
    )

    paths = parse_loader_listing(listing, Path("/usr/sbin/tc"))

    assert paths == [
        "/lib/x86_64-linux-gnu/libxtables.so.12",
        "/lib64/ld-linux-x86-64.so.2",
    ]


def test_loader_listing_missing_library() -> None:
    listing = "\tlibgone.so.1 => not found\n"

    with pytest.raises(HostError, match="libgone.so.1") as raised:
        parse_loader_listing(listing, Path("/usr/sbin/tc"))
    assert "/usr/sbin/tc" in raised.value.message


def test_package_for_known_programs() -> None:
    assert package_for("ip6tables-legacy") == "iptables"
    assert package_for("tc") == "iproute2"
    assert package_for("busybox") == "busybox-static"
    assert package_for("no-such-tool") is None


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Cache, bytes]:
    if HOST_PROGRAMS_MISSING:
        pytest.skip(HOST_PROGRAMS_REASON)
    cache = Cache(tmp_path_factory.mktemp("cache"))
    files = {"/fckernel/probes/0.sh": b"true\n"}
    image = build_initramfs(INIT, IPTABLES_PROGRAMS, cache, HOST, files)
    return cache, gzip.decompress(image.path.read_bytes())


@pytest.fixture(scope="module")
def members(built: tuple[Cache, bytes]) -> dict[str, Member]:
    return read_newc(built[1])


def test_image_contains_init_and_busybox(members: dict[str, Member]) -> None:
    assert members["init"].data == INIT.encode()
    assert stat.S_IMODE(members["init"].mode) == 0o755
    assert members["bin/busybox"].data == Path(BUSYBOX).read_bytes()
    assert members["bin/sh"].target == BUSYBOX
    assert members["dev/console"].rdev == (5, 1)
    assert members["fckernel/probes/0.sh"].data == b"true\n"


def test_image_keeps_multicall_names(members: dict[str, Member]) -> None:
    # xtables-nft-multi picks iptables or ip6tables by the name it runs as.
    link = members["usr/sbin/iptables-nft"]

    assert stat.S_ISLNK(link.mode)
    target = link.target.lstrip("/")
    assert Path(target).name == "xtables-nft-multi"
    assert stat.S_ISREG(members[target].mode)
    assert Path(members["usr/sbin/ip6tables-legacy"].target).name == (
        "xtables-legacy-multi"
    )


def test_image_contains_libraries(members: dict[str, Member]) -> None:
    names = set(members)

    assert "lib64/ld-linux-x86-64.so.2" in names
    assert any(name.endswith("/libc.so.6") for name in names)
    assert any(name.endswith("/libxtables.so.12") for name in names)
    assert any(name.endswith("/libmnl.so.0") for name in names)


def test_image_contains_xtables_runtime(members: dict[str, Member]) -> None:
    extensions = XTABLES_DIR.lstrip("/")

    assert f"{extensions}/libxt_comment.so" in members
    assert f"{extensions}/libxt_multiport.so" in members
    assert f"{extensions}/libxt_MARK.so" in members
    assert f"{extensions}/libip6t_icmp6.so" in members
    assert "etc/protocols" in members
    assert stat.S_ISDIR(members["run"].mode)
    assert stat.S_ISDIR(members["var/lib"].mode)


def test_image_environment(members: dict[str, Member]) -> None:
    env = members[ENV_FILE.lstrip("/")].data.decode()

    assert f"export XTABLES_LIBDIR={XTABLES_DIR}\n" in env
    assert "export PATH=/usr/local/sbin:" in env
    assert "/lib/x86_64-linux-gnu" in env
    # busybox has its own tc applet, which its sh would run instead.
    assert "alias tc=/usr/sbin/tc\n" in env


def test_image_skips_shadowed_applets(members: dict[str, Member]) -> None:
    assert members["usr/sbin/tc"].data == Path("/usr/sbin/tc").read_bytes()
    assert "sbin/tc" not in members
    assert members["sbin/ifconfig"].target == BUSYBOX


def test_build_reuses_cached_image(built: tuple[Cache, bytes]) -> None:
    cache = built[0]
    files = {"/fckernel/probes/0.sh": b"true\n"}

    again = build_initramfs(INIT, IPTABLES_PROGRAMS, cache, HOST, files)

    assert again.cached
    assert gzip.decompress(again.path.read_bytes()) == built[1]
    assert len(list(cache.folder("initramfs").iterdir())) == 1


@needs_host_programs
def test_build_key_follows_init(tmp_path: Path) -> None:
    first = build_initramfs(INIT, ["ip"], Cache(tmp_path), HOST)

    second = build_initramfs(INIT + "echo more\n", ["ip"], Cache(tmp_path), HOST)

    assert first.key != second.key
    assert not second.cached


@needs_host_programs
def test_build_is_reproducible(tmp_path: Path) -> None:
    first = build_initramfs(INIT, ["ip"], Cache(tmp_path / "one"), HOST)
    second = build_initramfs(INIT, ["ip"], Cache(tmp_path / "two"), HOST)

    assert first.path.read_bytes() == second.path.read_bytes()


@needs_host_programs
def test_missing_program_names_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(initramfs, "PROGRAM_DIRS", (str(tmp_path),))

    with pytest.raises(HostError, match="'tc' not found") as raised:
        build_initramfs(INIT, ["tc"], Cache(tmp_path / "cache"), HOST)
    assert raised.value.hint is not None
    assert "apt-get install iproute2" in raised.value.hint


@needs_host_programs
def test_unknown_program_hint(tmp_path: Path) -> None:
    with pytest.raises(HostError, match="fckernel-no-such-tool") as raised:
        build_initramfs(INIT, ["fckernel-no-such-tool"], Cache(tmp_path), HOST)
    assert raised.value.hint is not None
    assert "apt-file search" in raised.value.hint


@needs_host_programs
def test_program_path_rejected(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a program name"):
        build_initramfs(INIT, ["/usr/sbin/tc"], Cache(tmp_path), HOST)


def test_missing_busybox_names_package(tmp_path: Path) -> None:
    empty = Userland(tmp_path / "root", get_arch("x86_64"))

    with pytest.raises(HostError, match="busybox not found") as raised:
        build_initramfs(INIT, [], Cache(tmp_path), empty)
    assert raised.value.hint is not None
    assert "busybox-static" in raised.value.hint


def test_userland_packages_for_probe_programs() -> None:
    packages = userland_packages(["tc", "iptables-nft", "ip6tables-legacy"])

    assert packages == ["busybox-static", "iproute2", "iptables"]


def test_userland_packages_reject_unknown_program() -> None:
    with pytest.raises(HostError, match="'my-tool'") as raised:
        userland_packages(["tc", "my-tool"])
    assert raised.value.hint is not None
    assert "host of the guest's arch" in raised.value.hint
