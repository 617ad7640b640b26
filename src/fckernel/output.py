"""The output folder: staged while a job runs, published when it ends.

A job writes into a temporary folder inside OUTPUT. Publishing renames each
file into place, removes the files of an earlier job that this one did not
produce (a `vmlinux` next to a newer, failed report would look finished), and
writes report.json last. An interrupted job before publishing leaves OUTPUT as
the previous job left it.
"""

from __future__ import annotations

import fcntl
import os
import re
from pathlib import Path

from fckernel.cache import TEMP_PREFIX, remove, sha256_bytes
from fckernel.errors import InputError
from fckernel.report import REPORT_NAME, is_fckernel_report

ARTIFACT_NAMES = (
    "config",
    "build.log",
    "vmlinux",
    "Image",
    "OPTIONS.md",
    "test.log",
    REPORT_NAME,
)


# The temporary names fckernel uses in an output folder: the staging folder of
# a process and the report being written. Only these are removed as leftovers;
# a user's file with the same prefix is the user's.
_OWN_TEMP = re.compile(re.escape(TEMP_PREFIX) + r"(\d+|" + re.escape(REPORT_NAME) + ")")


def output_lock_name(path: Path) -> str:
    """Return the name of the cache lock that guards output folder `path`."""
    return "output-" + sha256_bytes(str(path.absolute()).encode())[:16]


class Output:
    """An output folder that only ever contains one job's complete results."""

    def __init__(self, path: Path) -> None:
        self.path = path.absolute()
        self.staging: Path | None = None
        self.created = False  # whether this job made the folder
        self.lock_fd: int | None = None

    def check(self) -> None:
        """Reject a folder that contains files fckernel did not write."""
        if self.path.exists() and not self.path.is_dir():
            raise InputError(
                f"output {self.path} exists and is not a folder",
                "pass -o with a new or empty folder",
            )
        if not self.path.is_dir():
            return
        foreign = [
            name
            for name in self._entries()
            if name not in ARTIFACT_NAMES or (self.path / name).is_dir()
        ]
        if foreign:
            raise InputError(
                f"output folder {self.path} contains files fckernel did not write "
                f"({', '.join(sorted(foreign)[:3])})",
                "pass -o with a new or empty folder, or one fckernel wrote before",
            )
        report = self.path / REPORT_NAME
        if not report.is_file() and any(self._entries()):
            raise InputError(
                f"output folder {self.path} has files but no report.json, so "
                "fckernel did not write them",
                "pass -o with a new or empty folder",
            )
        if report.is_file() and not is_fckernel_report(report):
            raise InputError(
                f"{report} was not written by fckernel",
                "pass -o with a new or empty folder",
            )

    def stage(self) -> Path:
        """Create and return the temporary folder this job writes into."""
        existed = self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        self.created = not existed
        self._lock_folder()
        for entry in self.path.iterdir():
            if _OWN_TEMP.fullmatch(entry.name):
                remove(entry)
        staging = self.path / f"{TEMP_PREFIX}{os.getpid()}"
        remove(staging)
        staging.mkdir()
        self.staging = staging
        return staging

    def publish(self, report_text: str) -> None:
        """Move the staged files into place, drop stale ones, write the report."""
        assert self.staging is not None
        staged = {entry.name for entry in self.staging.iterdir()}
        # The old report goes first: if publishing stops half-way (a full
        # disk), the folder has no report and so does not look finished.
        (self.path / REPORT_NAME).unlink(missing_ok=True)
        for name in ARTIFACT_NAMES:
            if name not in staged and name != REPORT_NAME:
                (self.path / name).unlink(missing_ok=True)
        for name in staged:
            os.replace(self.staging / name, self.path / name)
        self.created = False
        report = self.path / f"{TEMP_PREFIX}{REPORT_NAME}"
        try:
            report.write_text(report_text)
            os.replace(report, self.path / REPORT_NAME)
        except BaseException:
            report.unlink(missing_ok=True)
            raise
        self.discard()

    def _lock_folder(self) -> None:
        """Hold a lock on the folder itself until the job ends.

        The cache's lock already keeps out jobs that share this cache; this one
        keeps out a job that uses another cache (another FCKERNEL_CACHE).
        """
        fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            os.close(fd)
            raise InputError(
                f"another fckernel with another cache is writing {self.path}",
                "wait for it to finish, or pass another -o",
            ) from error
        self.lock_fd = fd

    def _entries(self) -> list[str]:
        return [
            entry.name
            for entry in self.path.iterdir()
            if not _OWN_TEMP.fullmatch(entry.name)
        ]

    def discard(self) -> None:
        """Remove the staged files, and the folder itself when this job made it
        and nothing was published into it.
        """
        if self.staging is not None:
            remove(self.staging)
            self.staging = None
        if self.created and self.path.is_dir() and not any(self.path.iterdir()):
            self.path.rmdir()
        self.created = False
        if self.lock_fd is not None:
            os.close(self.lock_fd)  # closing releases the lock
            self.lock_fd = None
