"""`fckernel test`: boot a built kernel and record the probes' results.

For an output folder, the kernel, arch and features come from its report.json,
and the results go back into it (`test` section) with the console in test.log.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from fckernel.arch import Arch, get_arch
from fckernel.boottest import BootTestResult, run_boot_test
from fckernel.cache import Cache, atomic_write
from fckernel.errors import InputError
from fckernel.features import Feature, load_features, select_features
from fckernel.images import image_format
from fckernel.output import output_lock_name
from fckernel.report import REPORT_NAME, is_fckernel_report

TEST_LOG = "test.log"


@dataclass(frozen=True)
class TestTarget:
    """A kernel to boot, its arch and the features whose probes to run."""

    kernel: Path
    arch: Arch
    features: list[Feature]
    output: Path | None  # the output folder whose report gets the results


def target_from_output(output: Path, extra_features: list[str]) -> TestTarget:
    """Read the kernel, arch and features that an output folder's report names."""
    report_path = output / REPORT_NAME
    if not is_fckernel_report(report_path):
        raise InputError(
            f"{output} is not an output folder of fckernel build (no report.json)",
            "pass the -o folder of a finished build, or --kernel FILE",
        )
    report = json.loads(report_path.read_text())
    if not isinstance(report.get("arch"), str) or not isinstance(
        report.get("features", []), list
    ):
        raise InputError(
            f"{report_path} is malformed: it names no arch or features",
            "run fckernel build again to write a new report",
        )
    arch = get_arch(report["arch"])
    kernel = output / arch.image_name
    if not kernel.is_file():
        if report.get("command") == "config":
            raise InputError(
                f"{output} has no {arch.image_name}: fckernel config wrote it, "
                "and config builds no kernel",
                f"run fckernel build -o {output}, then fckernel test",
            )
        raise InputError(
            f"{output} has no {arch.image_name}: its build did not finish",
            "run fckernel build again, then fckernel test",
        )
    known = load_features()
    features = [known[name] for name in report.get("features", []) if name in known]
    features += _named_features(extra_features, arch, exclude=features)
    return TestTarget(kernel, arch, features, output)


def target_from_kernel(
    kernel: Path, arch_name: str | None, names: list[str], with_defaults: bool
) -> TestTarget:
    """Describe a kernel built elsewhere, with the named or default features."""
    if not kernel.is_file():
        raise InputError(
            f"kernel not found: {kernel}", "pass a vmlinux or an arm64 Image file"
        )
    # Without --arch, the image's own format names it.
    found = "aarch64" if image_format(kernel) == "arm64-image" else "x86_64"
    arch = get_arch(arch_name or found)
    features, _ = select_features(names, with_defaults, arch.name)
    return TestTarget(kernel, arch, features, None)


def run_test(target: TestTarget, log_path: Path, cache: Cache) -> BootTestResult:
    """Boot the target and run its probes; record the results in its report."""
    if target.output is None:
        return run_boot_test(
            target.kernel, target.arch, target.features, log_path, cache
        )
    # A build writing the same folder must not replace the kernel or the
    # report while they are tested.
    with cache.lock(
        output_lock_name(target.output),
        f"waiting for another fckernel writing {target.output}",
    ):
        result = run_boot_test(
            target.kernel, target.arch, target.features, log_path, cache
        )
        report_path = target.output / REPORT_NAME
        report = json.loads(report_path.read_text())
        report["test"] = result.to_json()
        # A build's report ends "ok" or "test-failed" by its boot test; this
        # test is now the latest, so the outcome follows it.
        if report.get("status") in ("ok", "test-failed"):
            failed = None if result.passed else result.failure_error()
            report["status"] = "ok" if failed is None else "test-failed"
            report["exit_code"] = 0 if failed is None else int(failed.exit_code)
            report["error"] = None if failed is None else failed.message
        text = json.dumps(report, indent=2) + "\n"
        atomic_write(report_path, text)
        report_path.chmod(REPORT_MODE)
    return result


# The mode of the files a job publishes (rw-r--r--), which a rewrite keeps.
REPORT_MODE = 0o644


def _named_features(
    names: list[str], arch: Arch, exclude: list[Feature]
) -> list[Feature]:
    features, _ = select_features(names, False, arch.name)
    have = {feature.name for feature in exclude}
    return [feature for feature in features if feature.name not in have]
