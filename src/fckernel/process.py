"""Running external commands: one way, with output streamed to a log.

Every command runs from an argument list with stdin closed, in its own process
group, so that an interrupt stops it and all its children (make's compilers).
Output goes line by line to a log file and to an optional callback, and only
the last lines stay in memory, for the error message.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from fckernel.errors import Interrupted

TAIL_LINES = 30
TERMINATE_GRACE_SECONDS = 5.0

LineCallback = Callable[[str], None]


@dataclass(frozen=True)
class Result:
    """A finished command: its exit code and the last lines it printed."""

    command: tuple[str, ...]
    returncode: int
    tail: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def quoted(self) -> str:
        return shlex.join(self.command)


def run(
    command: Sequence[str],
    *,
    log: IO[str] | None = None,
    on_line: LineCallback | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Result:
    """Run `command`, streaming its merged stdout and stderr.

    Returns the Result whatever the exit code; raises Interrupted after
    stopping the whole process group when the user interrupts.
    """
    if log is not None:
        log.write(f"$ {shlex.join(command)}\n")
        log.flush()
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    process = subprocess.Popen(
        list(command),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=dict(env) if env is not None else None,
        cwd=cwd,
        text=True,
        errors="replace",
        bufsize=1,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if log is not None:
                log.write(line)
            tail.append(line.rstrip("\n"))
            if on_line is not None:
                on_line(line)
        returncode = process.wait()
    except BaseException:
        stop_process_group(process)
        raise
    finally:
        if log is not None:
            log.flush()
    if returncode in (-signal.SIGINT, -signal.SIGTERM):
        raise Interrupted(f"interrupted: {command[0]} was stopped by a signal")
    return Result(tuple(command), returncode, tuple(tail))


def capture(
    command: Sequence[str],
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> str | None:
    """Run a short command and return its stdout, or None when it fails or is
    missing.
    """
    try:
        completed = subprocess.run(
            list(command),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return completed.stdout if completed.returncode == 0 else None


def stop_process_group(process: subprocess.Popen[str]) -> None:
    """Stop `process` and its children: SIGTERM, then SIGKILL after a grace time."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=TERMINATE_GRACE_SECONDS)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        pass
    finally:
        # Also reached when a second Ctrl-C interrupts the grace wait.
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
