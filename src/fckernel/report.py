"""The record of one job, written as OUTPUT/report.json."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fckernel import __version__
from fckernel.verify import Outcome, Status

REPORT_NAME = "report.json"
REPORT_SCHEMA = 1


@dataclass
class Report:
    """The record of one job: its requests, inputs, results and phase timings."""

    command: str
    arch: str
    status: str = "running"  # ok, unmet, failed, interrupted
    error: str | None = None
    exit_code: int | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    kernel_version: str | None = None
    toolchain: dict[str, str | None] = field(default_factory=dict)
    features: list[str] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    base_unknown_symbols: list[str] = field(default_factory=list)
    # Base values that this tree's Kconfig changed: symbol -> (base, final)
    base_changed: dict[str, tuple[str, str]] = field(default_factory=dict)
    followed_renames: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    build: dict[str, Any] = field(default_factory=dict)
    firecracker_check: dict[str, Any] | None = None
    resolution: dict[str, Any] | None = None
    test: dict[str, Any] | None = None

    def count(self, status: Status) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status == status)

    def failed_outcomes(self) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if outcome.failed]

    def to_json(self) -> dict[str, Any]:
        return {
            "tool": "fckernel",
            "tool_version": __version__,
            "schema": REPORT_SCHEMA,
            "command": self.command,
            "status": self.status,
            "error": self.error,
            "exit_code": self.exit_code,
            "arch": self.arch,
            "kernel_version": self.kernel_version,
            "inputs": self.inputs,
            "toolchain": self.toolchain,
            "features": self.features,
            "requests": [outcome.to_json() for outcome in self.outcomes],
            "summary": {str(s): self.count(s) for s in Status},
            "conflicts": self.conflicts,
            "base_unknown_symbols": self.base_unknown_symbols,
            "base_changed": {
                symbol: {"base": base, "final": final}
                for symbol, (base, final) in self.base_changed.items()
            },
            "followed_renames": self.followed_renames,
            "warnings": self.warnings,
            "timings": {name: round(t, 3) for name, t in self.timings.items()},
            "build": self.build,
            "artifacts": self.artifacts,
            "firecracker_check": self.firecracker_check,
            "resolution": self.resolution,
            "test": self.test,
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2) + "\n"


def is_fckernel_report(path: Path) -> bool:
    """Return whether `path` is a report.json that fckernel wrote."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("tool") == "fckernel"
