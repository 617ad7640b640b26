"""Errors that fckernel reports to its users, and the exit code of each kind."""

from __future__ import annotations

import errno
from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of the `fckernel` command; README.md lists them for users."""

    OK = 0
    INPUT = 1  # invalid input: a fragment, an option, a missing file
    USAGE = 2  # argparse uses 2 for unknown options and missing arguments
    UNMET = 3  # a request did not hold in the resolved config
    BUILD = 4  # make failed
    HOST = 5  # the host lacks a tool, disk space or network access
    TEST = 6  # the kernel booted but a probe failed, or it did not boot
    NOT_READY = 7  # fckernel check found an error for Firecracker
    INTERNAL = 70  # a bug in fckernel: an error it did not expect (EX_SOFTWARE)
    INTERRUPTED = 130  # Ctrl-C or SIGTERM, as shells report SIGINT


class FckernelError(Exception):
    """An expected failure: its message is for the user, without a traceback.

    `hint` tells the user what to do about it, in one sentence.
    """

    exit_code = ExitCode.INPUT

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class InputError(FckernelError):
    """A user input is invalid: a file, an option or a value."""


class HostError(FckernelError):
    """The host cannot do the work: a missing tool, no disk space, no network."""

    exit_code = ExitCode.HOST


class FetchError(HostError):
    """A download failed or did not match its checksum."""


class BuildError(FckernelError):
    """A `make` step failed; the message carries the last lines of its output."""

    exit_code = ExitCode.BUILD


class UnmetRequestsError(FckernelError):
    """Some requested options did not hold after Kconfig resolved the config."""

    exit_code = ExitCode.UNMET


class BootTestError(FckernelError):
    """The kernel did not boot, or a feature probe failed in the guest."""

    exit_code = ExitCode.TEST


class Interrupted(FckernelError):
    """The user pressed Ctrl-C or the process received SIGTERM."""

    exit_code = ExitCode.INTERRUPTED


def host_error_from(error: OSError) -> HostError:
    """Describe a failed file operation as one line that names the path."""
    path = error.filename or "a file"
    if error.errno == errno.ENOSPC:
        return HostError(
            f"the disk is full: cannot write {path}",
            "free some space, or point FCKERNEL_CACHE or -o at a larger disk",
        )
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return HostError(
            f"permission denied: cannot write {path}",
            "choose an output folder and FCKERNEL_CACHE that you can write",
        )
    return HostError(f"{path}: {error.strerror or error}")
