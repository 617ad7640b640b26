"""The few ELF header fields fckernel reads: class, machine and interpreter.

Offsets and constants follow the System V ABI's ELF specification (the `elf.h`
names are kept so that a reader can look them up).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

ELF_MAGIC = b"\x7fELF"
EI_CLASS = 4
EI_DATA = 5
ELFCLASS32 = 1
ELFCLASS64 = 2
ELFDATA2LSB = 1
ELFDATA2MSB = 2
PT_INTERP = 3

EM_X86_64 = 62
EM_AARCH64 = 183

# e_machine, then e_phoff, e_phentsize and e_phnum, for each ELF class.
_MACHINE_FORMAT = "H"
_MACHINE_OFFSET = 18
_PROGRAM_TABLE = {
    ELFCLASS32: ("I", 28, 42),
    ELFCLASS64: ("Q", 32, 54),
}
# p_type, p_offset and p_filesz of a program header, by class.
_SEGMENT_FORMAT = {
    ELFCLASS32: "II8xI",
    ELFCLASS64: "I4xQ16xQ",
}
# The interpreter path is short; this bounds what a corrupt header can make us read.
_MAX_INTERPRETER_BYTES = 4096


@dataclass(frozen=True)
class ElfHeader:
    """The fields fckernel reads from an ELF file's header and program headers."""

    bits: int
    little_endian: bool
    machine: int
    # PT_INTERP, the dynamic loader; None in static programs and shared libraries
    interpreter: str | None


def read_elf_header(path: Path) -> ElfHeader | None:
    """Read `path`'s ELF header, or return None when it is not an ELF file.

    Raises OSError when the file cannot be read, and ValueError when it starts
    with the ELF magic but its headers are cut short.
    """
    with path.open("rb") as handle:
        ident = handle.read(16)
        if len(ident) < 16 or ident[:4] != ELF_MAGIC:
            return None
        elf_class, data = ident[EI_CLASS], ident[EI_DATA]
        if elf_class not in _PROGRAM_TABLE or data not in (ELFDATA2LSB, ELFDATA2MSB):
            return None
        order = "<" if data == ELFDATA2LSB else ">"
        handle.seek(0)
        header = handle.read(64)
        machine = _unpack(order + _MACHINE_FORMAT, header, _MACHINE_OFFSET)
        interpreter = _read_interpreter(handle, header, elf_class, order)
    return ElfHeader(
        bits=32 if elf_class == ELFCLASS32 else 64,
        little_endian=data == ELFDATA2LSB,
        machine=machine,
        interpreter=interpreter,
    )


def _read_interpreter(
    handle: BinaryIO, header: bytes, elf_class: int, order: str
) -> str | None:
    offset_format, offset_at, size_at = _PROGRAM_TABLE[elf_class]
    table_offset = _unpack(order + offset_format, header, offset_at)
    entry_size = _unpack(order + "H", header, size_at)
    count = _unpack(order + "H", header, size_at + 2)
    segment = struct.Struct(order + _SEGMENT_FORMAT[elf_class])
    for index in range(count):
        handle.seek(table_offset + index * entry_size)
        entry = handle.read(segment.size)
        if len(entry) < segment.size:
            raise ValueError("program header table is cut short")
        kind, offset, size = segment.unpack(entry)
        if kind == PT_INTERP:
            handle.seek(offset)
            raw = handle.read(min(size, _MAX_INTERPRETER_BYTES))
            return raw.split(b"\0", 1)[0].decode("utf-8", errors="replace")
    return None


def _unpack(fmt: str, data: bytes, offset: int) -> int:
    try:
        (value,) = struct.unpack_from(fmt, data, offset)
    except struct.error as error:
        raise ValueError("ELF header is cut short") from error
    return int(value)
