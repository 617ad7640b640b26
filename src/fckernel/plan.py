"""Build plans: several kernels in one run, each into its own output folder.

    fckernel build --plan kernels.toml -o out

A plan is a TOML file with one [[kernel]] table per kernel, and an optional
[defaults] table whose keys every kernel inherits:

    [defaults]
    features = ["docker"]

    [[kernel]]
    name = "x86_64-6.1"                 # its folder: out/x86_64-6.1
    arch = "x86_64"
    version = "6.1"                     # Firecracker's config of that series
    set = ["CONFIG_NET_SCH_SFQ=y"]

    [[kernel]]
    name = "aarch64-6.1"
    arch = "aarch64"
    base = "microvm-kernel-ci-aarch64-6.1.config"
    source = "/usr/src/linux-source-6.1.tar.xz"

The kernels are built one after another, each with all the make jobs of the
run: two compiles at once on the same cores would finish no sooner and would
need twice the memory. They share one cache, so a source tarball is unpacked
once and ccache serves every kernel. A kernel that fails is recorded and the
plan goes on; the run ends with a table of every kernel and `plan.json`.
"""

from __future__ import annotations

import json
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fckernel.arch import default_arch, get_arch
from fckernel.base import check_base_spec
from fckernel.build import Events, Job, run_job
from fckernel.cache import atomic_write
from fckernel.errors import ExitCode, FckernelError, InputError
from fckernel.report import REPORT_NAME

PLAN_REPORT = "plan.json"
# Keys of a [[kernel]] table, and the Job field each becomes.
_KEYS: dict[str, str | None] = {
    "name": None,
    "version": None,
    "base": "base",
    "base_sha256": "base_sha256",
    "source": "source",
    "source_sha256": "source_sha256",
    "arch": "arch",
    "features": "features",
    "default_features": "default_features",
    "fragments": "fragments",
    "set": "sets",
    "allow_unmet": "allow_unmet",
    "resolve_deps": "resolve_deps",
    "test": "test",
}
_LIST_KEYS = {"features", "fragments", "set", "allow_unmet"}
_BOOL_KEYS = {"default_features", "resolve_deps", "test"}
# A kernel's name becomes a folder name.
_NAME_CHARACTERS = set(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"
)


@dataclass(frozen=True)
class PlannedKernel:
    """One kernel of a plan: its name and the job that builds it."""

    name: str
    job: Job


@dataclass(frozen=True)
class KernelResult:
    """The outcome of one kernel of a plan."""

    name: str
    arch: str
    status: str  # built, cached, unmet, failed, interrupted
    exit_code: int
    seconds: float
    artifact: Path | None
    output: Path
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "arch": self.arch,
            "status": self.status,
            "exit_code": self.exit_code,
            "seconds": round(self.seconds, 1),
            "artifact": str(self.artifact) if self.artifact else None,
            "output": str(self.output),
            "error": self.error,
        }


def load_plan(
    path: Path, output_root: Path, make_job: Callable[..., Job]
) -> list[PlannedKernel]:
    """Read the plan at `path`; each kernel's output folder is under `output_root`.

    `make_job` receives the Job fields of one kernel (with the run-wide ones,
    such as jobs and rebuild, already bound) and returns its Job. Every kernel
    is checked before any is built: a mistake in the file fails at once.
    """
    _check_plan_report(output_root / PLAN_REPORT)
    data = _read_toml(path)
    unknown = sorted(set(data) - {"defaults", "kernel"})
    if unknown:
        raise InputError(
            f"plan {path}: unknown table {unknown[0]!r}",
            "a plan has an optional [defaults] table and [[kernel]] tables",
        )
    defaults = data.get("defaults", {})
    kernels = data.get("kernel", [])
    if not isinstance(defaults, dict) or not isinstance(kernels, list) or not kernels:
        raise InputError(
            f"plan {path}: no [[kernel]] tables",
            'add one per kernel, e.g. [[kernel]] name = "x86_64-6.1" arch = "x86_64"',
        )
    _check_keys(defaults, f"plan {path}: [defaults]", allow_name=False)
    planned: list[PlannedKernel] = []
    for number, table in enumerate(kernels, start=1):
        where = f"plan {path}: kernel {number}"
        if not isinstance(table, dict):
            raise InputError(f"{where} is not a table", "write it as [[kernel]]")
        entry = {**defaults, **table}
        _check_keys(entry, where, allow_name=True)
        name = _kernel_name(entry, where, {kernel.name for kernel in planned})
        fields = _job_fields(entry, path.parent)
        try:
            job = make_job(output=output_root / name, **fields)
            _check_local_inputs(job)
        except FckernelError as error:
            raise InputError(
                f"{where} ({name}): {error.message}", error.hint
            ) from error
        planned.append(PlannedKernel(name, job))
    return planned


def run_plan(
    planned: list[PlannedKernel],
    events: Events,
    on_start: Callable[[PlannedKernel, int], None] | None = None,
) -> list[KernelResult]:
    """Build every kernel in order, going on after a failure; return the results.

    An interrupt stops the plan: the kernel being built is recorded as
    interrupted and the rest are not started.
    """
    results: list[KernelResult] = []
    for number, kernel in enumerate(planned, start=1):
        if on_start is not None:
            on_start(kernel, number)
        started = time.monotonic()
        try:
            run_job(kernel.job, events)
        except FckernelError as error:
            status = "unmet" if error.exit_code == ExitCode.UNMET else "failed"
            if error.exit_code == ExitCode.INTERRUPTED:
                status = "interrupted"
            results.append(_result(kernel, status, error, started))
            if status == "interrupted":
                break
            continue
        except KeyboardInterrupt:
            results.append(_result(kernel, "interrupted", None, started))
            break
        results.append(_result(kernel, "built", None, started))
    return results


def write_plan_report(results: list[KernelResult], output_root: Path) -> Path:
    """Write `output_root/plan.json` with every kernel's result; return its path."""
    output_root.mkdir(parents=True, exist_ok=True)
    path = output_root / PLAN_REPORT
    document = {
        "tool": "fckernel",
        "kind": "plan",
        "kernels": [result.to_json() for result in results],
    }
    atomic_write(path, (json.dumps(document, indent=2) + "\n").encode())
    return path


def plan_exit_code(results: list[KernelResult], planned: int) -> int:
    """Return 0 when every planned kernel was built, else the first failure's code."""
    for result in results:
        if result.exit_code != ExitCode.OK:
            return result.exit_code
    return int(ExitCode.OK if len(results) == planned else ExitCode.INTERRUPTED)


def _result(
    kernel: PlannedKernel,
    status: str,
    error: FckernelError | None,
    started: float,
) -> KernelResult:
    output = kernel.job.output
    arch = kernel.job.resolved_arch()
    artifact = output / arch.image_name
    cached = False
    report_path = output / REPORT_NAME
    if status == "built" and report_path.is_file():
        cached = bool(json.loads(report_path.read_text())["build"].get("cached"))
    if status == "interrupted":
        code = int(ExitCode.INTERRUPTED)
    else:
        code = int(error.exit_code) if error is not None else int(ExitCode.OK)
    return KernelResult(
        name=kernel.name,
        arch=arch.name,
        status="cached" if cached else status,
        exit_code=code,
        seconds=time.monotonic() - started,
        artifact=artifact if status == "built" and artifact.is_file() else None,
        output=output,
        error=str(error) if error is not None else None,
    )


def _check_plan_report(path: Path) -> None:
    """Reject an output folder whose plan.json fckernel did not write."""
    if not path.exists() and not path.is_symlink():
        return
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = None
    if not isinstance(data, dict) or data.get("kind") != "plan":
        raise InputError(
            f"{path} exists and fckernel did not write it",
            "pass -o with a new folder, or one an earlier plan wrote",
        )


def _check_local_inputs(job: Job) -> None:
    """Check what needs no download before any kernel builds: a named base
    config exists, and a local source exists.
    """
    if job.base:
        check_base_spec(job.base)
    source = job.source
    remote = source is None or "://" in source or source.startswith("git+")
    if not remote and not Path(str(source)).exists():
        raise InputError(
            f"source not found: {source}",
            "pass an existing tarball or folder, a URL or git+URL@REF",
        )


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise InputError(
            f"plan {path} not found", "pass the path of a kernels.toml"
        ) from error
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(
            f"cannot read plan {path}: {error}", "pass a TOML text file"
        ) from error
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise InputError(
            f"plan {path}: invalid TOML: {error}",
            "see `fckernel build --help` for the plan format",
        ) from error


def _check_keys(entry: dict[str, Any], where: str, allow_name: bool) -> None:
    for key, value in entry.items():
        if key not in _KEYS or (key == "name" and not allow_name):
            raise InputError(
                f"{where}: unknown key {key!r}",
                f"allowed keys: {', '.join(sorted(_KEYS))}",
            )
        if key in _LIST_KEYS:
            valid = isinstance(value, list) and all(isinstance(v, str) for v in value)
            kind = "a list of strings"
        elif key in _BOOL_KEYS:
            valid, kind = isinstance(value, bool), "true or false"
        else:
            valid, kind = isinstance(value, str) and bool(value.strip()), "a string"
        if not valid:
            raise InputError(f"{where}: {key} must be {kind}, not {value!r}")


def _kernel_name(entry: dict[str, Any], where: str, used_names: set[str]) -> str:
    name = entry.get("name")
    if name is None:
        raise InputError(f"{where} has no name", 'add name = "x86_64-6.1" or alike')
    if name in (".", "..", PLAN_REPORT) or not set(name) <= _NAME_CHARACTERS:
        raise InputError(
            f"{where}: name {name!r} is not a folder name",
            "use letters, digits, '.', '_' and '-'",
        )
    if name in used_names:
        raise InputError(f"{where}: name {name!r} is used twice", "give each a name")
    return str(name)


def _job_fields(entry: dict[str, Any], plan_folder: Path) -> dict[str, Any]:
    fields: dict[str, Any] = {
        field: value for key, value in entry.items() if (field := _KEYS[key])
    }
    if "fragments" in fields:
        fields["fragments"] = [plan_folder / name for name in fields["fragments"]]
    for key in ("base", "source"):
        # A local file named relative to the plan, not to the current folder.
        value = str(fields.get(key) or "")
        local = value and "://" not in value and not value.startswith("git+")
        if local and not Path(value).is_absolute() and (plan_folder / value).exists():
            fields[key] = str(plan_folder / value)
    version = entry.get("version")
    if version is not None:
        if "base" in entry:
            raise InputError(
                f"kernel {entry['name']!r} has both version and base",
                "give the version (Firecracker's config of that series) or a base",
            )
        arch = get_arch(entry["arch"]) if "arch" in entry else default_arch()
        fields["base"] = f"microvm-kernel-ci-{arch.name}-{version}.config"
    return fields
