"""A writer for the cpio "newc" format, the format the kernel unpacks as initramfs.

The kernel's Documentation/driver-api/early-userspace/buffer-format.rst defines
it: each entry is a 110-byte ASCII header, the NUL-terminated name and the data,
with the name and the data each padded to a multiple of 4 bytes.

fckernel writes archives itself instead of running GNU cpio over a staging
folder, for three reasons. Every entry must be owned by root, and the archive
must contain /dev/console, which an unprivileged user cannot create in a
folder. Files come from scattered host paths and take other names, which
would need copying first. Fixed mtimes and inode numbers make equal inputs
give equal bytes.
"""

from __future__ import annotations

import stat
from pathlib import PurePosixPath
from typing import Protocol

NEWC_MAGIC = b"070701"
TRAILER_NAME = "TRAILER!!!"
ALIGNMENT = 4
# Entries get this mtime so that equal inputs produce equal archives.
FIXED_MTIME = 0


class BinaryWriter(Protocol):
    """A binary stream, such as an open file or a gzip.GzipFile."""

    def write(self, data: bytes, /) -> int: ...


class CpioWriter:
    """Writes newc entries to a binary stream, creating missing parent folders.

    Every entry is owned by uid 0 and gid 0. Call close() to write the trailer
    that ends the archive; the stream itself stays open.
    """

    def __init__(self, stream: BinaryWriter) -> None:
        self._stream = stream
        self._names: set[str] = set()
        self._next_inode = 1
        self._closed = False

    def add_directory(self, path: str, mode: int = 0o755) -> None:
        name = self._claim(path)
        if name is not None:
            self._entry(name, stat.S_IFDIR | mode, b"", nlink=2)

    def add_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(self._require_new(path), stat.S_IFREG | mode, data)

    def add_symlink(self, path: str, target: str) -> None:
        self._entry(self._require_new(path), stat.S_IFLNK | 0o777, target.encode())

    def add_char_device(
        self, path: str, major: int, minor: int, mode: int = 0o600
    ) -> None:
        name = self._require_new(path)
        self._entry(name, stat.S_IFCHR | mode, b"", rdev=(major, minor))

    def close(self) -> None:
        """Write the trailer entry; later additions raise ValueError."""
        if not self._closed:
            self._entry(TRAILER_NAME, 0, b"", nlink=1, inode=0)
            self._closed = True

    def _require_new(self, path: str) -> str:
        name = self._claim(path)
        if name is None:
            raise ValueError(f"cpio archive already contains {path!r}")
        return name

    def _claim(self, path: str) -> str | None:
        """Return `path` as an archive name and add its missing parents, or
        return None when the archive already contains it.
        """
        if self._closed:
            raise ValueError("cpio archive is already closed")
        name = _archive_name(path)
        if name in self._names:
            return None
        parent = str(PurePosixPath(name).parent)
        if parent != ".":
            self.add_directory(parent)
        self._names.add(name)
        return name

    def _entry(
        self,
        name: str,
        mode: int,
        data: bytes,
        *,
        nlink: int = 1,
        rdev: tuple[int, int] = (0, 0),
        inode: int | None = None,
    ) -> None:
        if inode is None:
            inode = self._next_inode
            self._next_inode += 1
        encoded = name.encode() + b"\0"
        # ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor,
        # rdevmajor, rdevminor, namesize, check: the field order of newc.
        fields = (
            *(inode, mode, 0, 0, nlink, FIXED_MTIME, len(data)),
            *(0, 0, *rdev, len(encoded), 0),
        )
        header = NEWC_MAGIC + b"".join(b"%08X" % value for value in fields)
        self._write_padded(header + encoded)
        self._write_padded(data)

    def _write_padded(self, chunk: bytes) -> None:
        self._stream.write(chunk)
        self._stream.write(b"\0" * (-len(chunk) % ALIGNMENT))


def _archive_name(path: str) -> str:
    """Return `path` relative to the archive root, as the kernel expects names."""
    pure = PurePosixPath("/", path)
    if ".." in pure.parts:
        raise ValueError(f"cpio entry name must not contain '..': {path!r}")
    relative = str(pure.relative_to("/"))
    if relative == ".":
        raise ValueError("cpio entry name must not be the archive root")
    return relative
