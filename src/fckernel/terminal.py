"""Terminal output on stderr: a line per phase, warnings, errors, and on a
terminal a live progress line while make compiles.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.status import Status as Spinner

PROGRESS_INTERVAL_SECONDS = 0.2
STATUS_STYLES = {
    "applied": "green",
    "unchanged": "dim",
    "promoted": "cyan",
    "unmet": "red",
    "unknown": "red",
}


class Terminal:
    """Prints job events; implements fckernel.build.Events."""

    def __init__(self, quiet: bool = False) -> None:
        # Paths and values are printed as they are: no markup, no emoji codes.
        self.console = Console(
            stderr=True, highlight=False, soft_wrap=True, emoji=False
        )
        self.live = self.console.is_terminal
        self.quiet = quiet
        self.spinner: Spinner | None = None
        self.last_update = 0.0

    def phase_started(self, name: str, detail: str) -> None:
        if self.live and not self.quiet:
            self.spinner = self.console.status(escape(f"{name}: {detail}"))
            self.spinner.start()
        elif not self.quiet:
            self.console.print(f"I: {name}: {detail}", markup=False)

    def phase_finished(self, name: str, seconds: float) -> None:
        self._stop_spinner()
        if not self.quiet:
            self.console.print(f"I: {name} done in {seconds:.1f} s", markup=False)

    def compile_progress(self, done: int, expected: int | None) -> None:
        now = time.monotonic()
        if self.spinner is None or now - self.last_update < PROGRESS_INTERVAL_SECONDS:
            return
        self.last_update = now
        estimate = f" of about {expected}" if expected else ""
        self.spinner.update(f"compile: {done}{estimate} files compiled")

    def warning(self, message: str) -> None:
        self._stop_spinner()
        self.console.print(f"[yellow]W:[/] {escape(message)}", markup=True)

    def info(self, message: str) -> None:
        if not self.quiet:
            self.console.print(f"I: {message}", markup=False)

    def error(self, message: str) -> None:
        self._stop_spinner()
        self.console.print(f"[red]E:[/] {escape(message)}", markup=True)

    def requests_table(self, requests: list[dict[str, Any]]) -> None:
        self._stop_spinner()
        if self.quiet:
            return
        for request in requests:
            status = request["status"]
            style = STATUS_STYLES.get(status, "")
            assignment = escape(f"CONFIG_{request['symbol']}={request['requested']}")
            line = f"  [{style}]{status:9}[/] {assignment}"
            if status in ("unmet", "unknown", "promoted") and request["reason"]:
                line += f"  ({escape(request['reason'])})"
            if request["allowed_unmet"]:
                line += "  \\[allowed]"
            self.console.print(line, markup=True, highlight=False)

    def probe_table(self, test: dict[str, Any]) -> None:
        if self.quiet:
            return
        for probe in test["probes"]:
            passed = probe["status"] == "pass"
            style = "green" if passed else "red"
            line = (
                f"  [{style}]{probe['status']:5}[/] "
                f"{escape(probe['feature'])}/{escape(probe['probe'])}"
            )
            if not passed:
                detail = probe["reason"] or (probe["output"] or "").strip()
                line += f"  ({escape(detail.splitlines()[-1] if detail else '')})"
            self.console.print(line, markup=True, highlight=False)
        self.info(
            f"boot test: {test['runner']}, init after {test['seconds_to_init']} s, "
            f"last probe after {test['seconds_to_last_probe']} s"
        )

    def plan_table(self, kernels: list[dict[str, Any]], planned: int) -> None:
        """Print one line per kernel of a plan: status, time and artifact."""
        self._stop_spinner()
        self.console.print(
            f"{'kernel':24} {'arch':8} {'status':11} {'time':>8}  result"
        )
        for kernel in kernels:
            style = "green" if kernel["exit_code"] == 0 else "red"
            result = kernel["artifact"] or kernel["error"] or kernel["output"]
            self.console.print(
                f"{escape(kernel['name']):24} {kernel['arch']:8} "
                f"[{style}]{kernel['status']:11}[/] {kernel['seconds']:7.1f}s  "
                f"{escape(str(result))}"
            )
        missing = planned - len(kernels)
        if missing:
            self.console.print(f"not started: {missing} of {planned} kernels")

    def close(self) -> None:
        self._stop_spinner()
        sys.stderr.flush()

    def _stop_spinner(self) -> None:
        if self.spinner is not None:
            self.spinner.stop()
            self.spinner = None
