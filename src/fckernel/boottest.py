"""Boot tests: boot a kernel in a microVM and run the features' probes in it.

    result = run_boot_test(kernel, arch, features, log_path, cache)
    if not result.passed:
        raise result.failure_error()

The guest runs each probe once from its initramfs (see guest.py and
initramfs.py) and the host reads the results from the serial console, which
goes whole to `log_path`. An x86_64 kernel boots in a microVM of the host's
kind; an aarch64 kernel on an x86_64 host boots under QEMU's emulator, with
probe programs from Debian's arm64 packages (see userland.py and vm.py).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fckernel.arch import Arch, host_arch
from fckernel.cache import Cache
from fckernel.elf import ELF_MAGIC, EM_X86_64, read_elf_header
from fckernel.errors import BootTestError, InputError
from fckernel.features import Feature
from fckernel.guest import (
    ConsoleParser,
    GuestProbe,
    ProbeResult,
    guest_probes,
    probe_files,
    render_probe_init,
    render_shell_init,
)
from fckernel.images import FORMAT_NAMES, expected_format, image_format
from fckernel.initramfs import ENV_FILE, Initramfs, build_initramfs, userland_packages
from fckernel.userland import Userland, debian_userland, host_userland
from fckernel.vm import VmConfig, VmRun, boot, choose_runner, run_interactive

# Covers a boot under TCG, the slowest runner, and every probe, with a wide
# margin: a TCG boot to the last default probe took 5 to 7 s on a two-core
# x86_64 VM that was busy with a kernel build.
DEFAULT_TIMEOUT_SECONDS = 300.0
# Failed probes named in the message of failure_error(); the log has them all.
MAX_FAILURES_IN_MESSAGE = 5

MessageCallback = Callable[[str], None]


@dataclass(frozen=True)
class BootTestResult:
    """The outcome of a boot test: the runner, timings and one result per probe."""

    runner: str  # "firecracker", "qemu-kvm" or "qemu-tcg"
    probes: tuple[ProbeResult, ...]
    seconds_to_init: float | None  # from starting the VM to the guest's /init
    seconds_to_last_probe: float | None  # from starting the VM to the last result
    seconds: float  # from starting the VM until it exited
    timed_out: bool
    log_path: Path
    initramfs: Initramfs
    warnings: tuple[str, ...] = field(default=())

    @property
    def passed(self) -> bool:
        """Whether /init ran and every probe passed."""
        started = self.seconds_to_init is not None
        return started and all(probe.passed for probe in self.probes)

    @property
    def failures(self) -> list[ProbeResult]:
        return [probe for probe in self.probes if not probe.passed]

    def failure_error(self) -> BootTestError:
        """Return the error to raise when the test did not pass."""
        failures = self.failures
        if not failures:
            message = "the kernel did not start /init"
        else:
            named = ", ".join(
                f"{f.feature}/{f.probe} ({f.reason})"
                for f in failures[:MAX_FAILURES_IN_MESSAGE]
            )
            more = len(failures) - MAX_FAILURES_IN_MESSAGE
            named += f" and {more} more" if more > 0 else ""
            message = f"{len(failures)} of {len(self.probes)} probes failed: {named}"
        return BootTestError(message, f"read the guest's console in {self.log_path}")

    def to_json(self) -> dict[str, Any]:
        """Return the `test` section of report.json."""
        return {
            "passed": self.passed,
            "runner": self.runner,
            "seconds_to_init": _rounded(self.seconds_to_init),
            "seconds_to_last_probe": _rounded(self.seconds_to_last_probe),
            "seconds": _rounded(self.seconds),
            "timed_out": self.timed_out,
            "log": str(self.log_path),
            "initramfs": {
                "path": str(self.initramfs.path),
                "sha256": self.initramfs.key,
                "bytes": self.initramfs.size_bytes,
                "cached": self.initramfs.cached,
            },
            "probes": [probe.to_json() for probe in self.probes],
            "warnings": list(self.warnings),
        }


def run_boot_test(
    kernel: Path,
    arch: Arch,
    features: Sequence[Feature],
    log_path: Path,
    cache: Cache,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> BootTestResult:
    """Boot `kernel` and run the probes of `features` in it.

    Writes the guest's whole console to `log_path`, after the KVM check's
    console when this is the process's first boot. Returns the result whether
    or not the probes passed. Raises InputError for a kernel that is missing
    or not an x86_64 vmlinux, and HostError when the host lacks a VM runner,
    busybox or a probe's program.
    """
    check_kernel(kernel, arch)
    probes = guest_probes(features)
    image = _probe_image(probes, arch, cache)
    parser = ConsoleParser(probes)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log, tempfile.TemporaryDirectory() as work_dir:
        runner, warnings = choose_runner(kernel, arch.name, log)
        log.write(f"fckernel: booting {kernel} with {runner}\n")
        config = VmConfig(kernel, image.path, arch=arch.name)
        vm = boot(config, runner, log, parser.feed, timeout, Path(work_dir))

    return BootTestResult(
        runner=runner,
        probes=tuple(parser.results(_missing_reason(parser, vm, timeout))),
        seconds_to_init=parser.started_at,
        seconds_to_last_probe=parser.last_probe_at,
        seconds=vm.seconds,
        timed_out=vm.timed_out,
        log_path=log_path,
        initramfs=image,
        warnings=tuple(warnings + _run_warnings(parser, vm, timeout)),
    )


def boot_interactive(
    kernel: Path,
    arch: Arch,
    cache: Cache,
    features: Sequence[Feature] = (),
    on_message: MessageCallback | None = None,
) -> int:
    """Boot `kernel` to a busybox shell on the serial console of this terminal.

    The initramfs also contains the programs that the probes of `features`
    need. `on_message` receives warnings and how to leave the VM. Returns the
    VM's exit status once the shell exits.
    """
    check_kernel(kernel, arch)
    programs = required_programs(guest_probes(features))
    userland = _userland(arch, programs, cache)
    image = build_initramfs(render_shell_init(ENV_FILE), programs, cache, userland)
    notify = on_message or (lambda _message: None)
    log_path = cache.folder("logs") / "boot-kvm-check.log"
    with log_path.open("w") as log:
        runner, warnings = choose_runner(kernel, arch.name, log)
    for warning in warnings:
        notify(warning)
    notify(f"booting with {runner}; leave with `exit` (or Ctrl-A X in QEMU)")
    with tempfile.TemporaryDirectory() as work_dir:
        config = VmConfig(kernel, image.path, arch=arch.name)
        return run_interactive(config, runner, Path(work_dir))


def check_kernel(kernel: Path, arch: Arch) -> None:
    """Raise InputError unless `kernel` is an image of `arch` the VMs can boot:
    an x86_64 ELF vmlinux or an arm64 Image.
    """
    hint = f"pass the {arch.image_name} from the build's output folder"
    if arch.name != "x86_64":
        _check_image_format(kernel, arch, hint)
        return
    try:
        header = read_elf_header(kernel)
    except FileNotFoundError as error:
        raise InputError(f"kernel {kernel} not found", hint) from error
    except (OSError, ValueError) as error:
        raise InputError(f"cannot read kernel {kernel}: {error}", hint) from error
    if header is None:
        raise InputError(f"{kernel} is not an ELF file: {_format_guess(kernel)}", hint)
    if header.bits != 64 or not header.little_endian or header.machine != EM_X86_64:
        raise InputError(
            f"{kernel} is an ELF file for machine {header.machine}, "
            f"not x86_64 (machine {EM_X86_64})",
            hint,
        )


def _check_image_format(kernel: Path, arch: Arch, hint: str) -> None:
    try:
        found = image_format(kernel)
    except FileNotFoundError as error:
        raise InputError(f"kernel {kernel} not found", hint) from error
    except OSError as error:
        raise InputError(f"cannot read kernel {kernel}: {error}", hint) from error
    expected, description = expected_format(arch)
    if found != expected:
        raise InputError(
            f"{kernel} is {FORMAT_NAMES[found]} file, not {description} "
            f"for {arch.name}",
            hint,
        )


def required_programs(probes: Sequence[GuestProbe]) -> list[str]:
    """Return the host programs the probes need, each once, in probe order."""
    programs = (name for probe in probes for name in probe.probe.programs)
    return list(dict.fromkeys(programs))


def _probe_image(probes: Sequence[GuestProbe], arch: Arch, cache: Cache) -> Initramfs:
    init = render_probe_init(probes, ENV_FILE)
    programs = required_programs(probes)
    userland = _userland(arch, programs, cache)
    return build_initramfs(init, programs, cache, userland, probe_files(probes))


def _userland(arch: Arch, programs: Sequence[str], cache: Cache) -> Userland:
    """Return where the guest's programs come from: the host, when it runs
    `arch`, else Debian's packages of `arch`.
    """
    if arch.name == host_arch():
        return host_userland(arch)
    log_path = cache.folder("logs") / f"userland-{arch.debian_arch}.log"
    with log_path.open("w") as log:
        return debian_userland(arch, userland_packages(programs), cache, log)


def _format_guess(kernel: Path) -> str:
    found = image_format(kernel)
    if found == "bzimage":
        return "it is a compressed bzImage, which Firecracker does not boot on x86_64"
    if found == "arm64-image":
        return "it is an arm64 Image"
    with kernel.open("rb") as handle:
        start = handle.read(len(ELF_MAGIC))
    return f"it starts with {start.hex(' ')}, not the ELF magic {ELF_MAGIC.hex(' ')}"


def _missing_reason(parser: ConsoleParser, vm: VmRun, timeout: float) -> str:
    """Return why the console lacks results; it applies to every missing probe."""
    if parser.panic is not None:
        return f"no result: the kernel panicked: {parser.panic}"
    if vm.timed_out:
        return f"no result: the VM timed out after {timeout:g} s"
    if vm.stop_reason is not None:
        return f"no result: fckernel stopped the VM: {vm.stop_reason}"
    if parser.started_at is None:
        return f"no result: the VM exited (status {vm.returncode}) before /init ran"
    if parser.invalid_lines:
        return f"no valid result: {parser.invalid_lines[0]}"
    return f"no result: the VM exited (status {vm.returncode}) before this probe"


def _run_warnings(parser: ConsoleParser, vm: VmRun, timeout: float) -> list[str]:
    warnings = [
        f"ignored an invalid result line: {line}" for line in parser.invalid_lines
    ]
    if vm.timed_out and parser.complete:
        warnings.append(
            "the VM did not exit by itself after the last probe, so it was "
            f"stopped when it timed out after {timeout:g} s"
        )
    return warnings


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 2)
