"""Boot image formats: the file Firecracker loads must match its name."""

from __future__ import annotations

from pathlib import Path

from fckernel.arch import Arch
from fckernel.errors import InputError

ELF_MAGIC = b"\x7fELF"
ELF_CLASS_OFFSET = 4
ELF_CLASS_64 = 2
ELF_MACHINE_OFFSET = 18
ELF_MACHINE_X86_64 = 62
# The arm64 Image header: "ARM\x64" at byte 56 (Documentation/arm64/booting.rst).
ARM64_MAGIC = b"ARM\x64"
ARM64_MAGIC_OFFSET = 56
# A bzImage carries "HdrS" at byte 0x202 (Documentation/x86/boot.rst).
BZIMAGE_MAGIC = b"HdrS"
BZIMAGE_MAGIC_OFFSET = 0x202


FORMAT_NAMES = {
    "elf-x86_64": "an x86-64 ELF",
    "elf": "a non-x86-64 ELF",
    "arm64-image": "an arm64 Image",
    "bzimage": "a compressed bzImage",
    "unknown": "an unrecognized",
}


def image_format(path: Path) -> str:
    """Name the format of a kernel image: elf-x86_64, elf, arm64-image, bzimage or
    unknown.
    """
    with path.open("rb") as handle:
        header = handle.read(1024)
    if header.startswith(ELF_MAGIC):
        machine = int.from_bytes(
            header[ELF_MACHINE_OFFSET : ELF_MACHINE_OFFSET + 2], "little"
        )
        is_64 = header[ELF_CLASS_OFFSET] == ELF_CLASS_64
        return "elf-x86_64" if is_64 and machine == ELF_MACHINE_X86_64 else "elf"
    if header[ARM64_MAGIC_OFFSET : ARM64_MAGIC_OFFSET + 4] == ARM64_MAGIC:
        return "arm64-image"
    if header[BZIMAGE_MAGIC_OFFSET : BZIMAGE_MAGIC_OFFSET + 4] == BZIMAGE_MAGIC:
        return "bzimage"
    return "unknown"


def expected_format(arch: Arch) -> tuple[str, str]:
    """Return the image format Firecracker loads on `arch`, and its description."""
    if arch.name == "x86_64":
        return "elf-x86_64", "an uncompressed ELF vmlinux"
    return "arm64-image", "an arm64 Image"


def check_image(path: Path, arch: Arch) -> None:
    """Raise InputError unless `path` is the image format Firecracker loads on
    `arch`: an uncompressed x86-64 ELF vmlinux, or an arm64 Image.
    """
    expected, description = expected_format(arch)
    found = image_format(path)
    if found != expected:
        raise InputError(
            f"{path} is {FORMAT_NAMES[found]} file, but Firecracker on "
            f"{arch.name} loads {description}",
            f"use the {arch.image_path} file of the kernel build",
        )
