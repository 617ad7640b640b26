from __future__ import annotations

from pathlib import Path

import pytest

from fckernel.arch import get_arch
from fckernel.errors import InputError
from fckernel.images import check_image, image_format


def elf_header(machine: int) -> bytes:
    header = bytearray(64)
    header[0:4] = b"\x7fELF"
    header[4] = 2
    header[18:20] = machine.to_bytes(2, "little")
    return bytes(header)


def bzimage() -> bytes:
    data = bytearray(1024)
    data[0x202:0x206] = b"HdrS"
    return bytes(data)


def arm64_image() -> bytes:
    data = bytearray(1024)
    data[56:60] = b"ARM\x64"
    return bytes(data)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (elf_header(62), "elf-x86_64"),
        (elf_header(183), "elf"),
        (bzimage(), "bzimage"),
        (arm64_image(), "arm64-image"),
        (b"hello", "unknown"),
    ],
)
def test_image_format(tmp_path: Path, data: bytes, expected: str) -> None:
    path = tmp_path / "image"
    path.write_bytes(data)
    assert image_format(path) == expected


def test_bzimage_named_vmlinux_rejected(tmp_path: Path) -> None:
    path = tmp_path / "vmlinux"
    path.write_bytes(bzimage())
    with pytest.raises(InputError) as caught:
        check_image(path, get_arch("x86_64"))
    assert "is a compressed bzImage file" in caught.value.message
    assert "uncompressed ELF vmlinux" in caught.value.message


def test_arm64_image_accepted(tmp_path: Path) -> None:
    path = tmp_path / "Image"
    path.write_bytes(arm64_image())
    check_image(path, get_arch("aarch64"))
