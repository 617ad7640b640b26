"""Virtual machines for boot tests: Firecracker when it can run, else QEMU microvm.

Runners, in order of preference:

- "firecracker": a `firecracker` binary on PATH and a working KVM. It boots
  from a `--config-file` without its API socket and prints the guest's serial
  console on stdout.
- "qemu-kvm": QEMU's `microvm` machine, which is close to Firecracker's (no
  PCI, a serial console, a PVH boot of the ELF vmlinux), accelerated by KVM.
- "qemu-tcg": the same machine under QEMU's emulator, when KVM does not work,
  and always for a guest of another arch than the host's.

An aarch64 guest boots on QEMU's `virt` machine. Firecracker's aarch64
configs have no driver for virt's PL011 UART, so its console is a virtio
console (hvc0), which the configs build in.

/dev/kvm existing is no proof that KVM works: under nested virtualization QEMU
can abort on an MSR it cannot set, or stop with "KVM internal error" early in
the guest's boot. So the first boot test of a process boots the kernel once
under KVM without an initramfs and takes KVM as working only when the kernel
reaches its final "unable to mount root" panic. The decision holds for the rest
of the process.

Every VM runs under a hard time limit from coreutils' `timeout`, which stops
QEMU or Firecracker as a process group. The whole console goes to the log.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from fckernel.arch import host_arch
from fckernel.errors import HostError, InputError
from fckernel.guest import PANIC_TEXT
from fckernel.process import run

FIRECRACKER = "firecracker"
KVM_DEVICE = Path("/dev/kvm")

RUNNER_FIRECRACKER = "firecracker"
RUNNER_QEMU_KVM = "qemu-kvm"
RUNNER_QEMU_TCG = "qemu-tcg"

DEFAULT_MEMORY_MIB = 512
DEFAULT_VCPUS = 1

# panic=-1 resets at once on a panic, and both VMMs exit on a reset: QEMU
# because of -no-reboot, Firecracker always. So a crashed guest ends the VM.
BASE_BOOT_ARGS = "panic=-1"
# Firecracker's serial console is ttyS0 on both arches.
FIRECRACKER_CONSOLE = "ttyS0"
# Firecracker stops on a keyboard-controller reset and has no PCI bus.
FIRECRACKER_BOOT_ARGS = "reboot=k pci=off"
# With an rdinit that does not exist, the kernel runs no /init from a built-in
# initramfs. It mounts the root file system instead, and without a disk that
# ends its boot with a "VFS: Unable to mount root fs" panic.
KVM_CHECK_BOOT_ARGS = "rdinit=/fckernel-kvm-check"

# A kernel reaches its root mount in seconds under KVM; this bounds a check
# that hangs without printing a KVM error. An estimate, with a wide margin.
KVM_CHECK_TIMEOUT_SECONDS = 60.0
# Lines by which QEMU reports that KVM cannot run this guest.
# QEMU prints this, then exits, when the image is not a kernel it can boot,
# such as an ELF vmlinux without a PVH note.
QEMU_LOAD_ERROR = "Error loading"
KVM_FAILURE_TEXTS = (
    "KVM internal error",
    "failed to initialize kvm",
    "Could not access KVM kernel module",
    "failed to set MSR",
)

# Under TCG without icount, the guest's TSC follows the host's clock but the
# emulated PIT follows QEMU's. On a busy host, Linux 6.1 then failed to
# calibrate its TSC against the PIT and hung in early boot every time (QEMU
# 7.2, two cores busy with a kernel build). With icount, both clocks follow
# the count of emulated instructions, and the same boots took 3.5 s.
TCG_ICOUNT = "shift=auto"

# Both VMMs give the guest a virtio entropy device, as Firecracker's
# "entropy" config does, so that the entropy feature's probe can find it.
QEMU_ENTROPY_DEVICE = "virtio-rng-device"

# coreutils `timeout` exits with 124 when the time limit stopped the command.
TIMEOUT_EXIT_CODE = 124
# After SIGTERM, a VM gets this long to exit before SIGKILL.
KILL_GRACE_SECONDS = 5

ConsoleCallback = Callable[[float, str], None]


@dataclass(frozen=True)
class QemuMachine:
    """The QEMU binary, machine and console for guests of one arch."""

    binary: str
    package: str  # the Debian package that provides `binary`
    machine: str
    kvm_machine: str
    console: str  # the guest's console device, for console=
    tcg_options: tuple[str, ...] = ()


QEMU_MACHINES = {
    "x86_64": QemuMachine(
        "qemu-system-x86_64",
        "qemu-system-x86",
        "microvm",
        "microvm",
        "ttyS0",
        ("-icount", TCG_ICOUNT),
    ),
    # NOTE: only the TCG line of this entry has run; the KVM one is for
    # aarch64 hosts, which fckernel has not been tested on.
    "aarch64": QemuMachine(
        "qemu-system-aarch64",
        "qemu-system-arm",
        "virt",
        "virt,gic-version=host",
        "hvc0",
    ),
}


@dataclass(frozen=True)
class VmConfig:
    """The kernel and initramfs to boot, and the size of the machine."""

    kernel: Path
    initrd: Path | None
    boot_args: str = ""  # appended to the runner's own boot arguments
    memory_mib: int = DEFAULT_MEMORY_MIB
    vcpus: int = DEFAULT_VCPUS
    arch: str = "x86_64"


@dataclass(frozen=True)
class VmRun:
    """A finished VM: which runner, how it ended and how long it ran."""

    runner: str
    command: tuple[str, ...]
    returncode: int | None  # None when fckernel stopped it early
    timed_out: bool
    stop_reason: str | None  # why fckernel stopped it early
    seconds: float


@dataclass(frozen=True)
class KvmDecision:
    """Whether KVM works for guests on this host, and if not, why."""

    usable: bool
    reason: str


class StopVm(Exception):
    """Raised by a console callback to stop the VM at once."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_kvm_decision: KvmDecision | None = None


def choose_runner(kernel: Path, arch: str, log: IO[str]) -> tuple[str, list[str]]:
    """Return the runner for boot tests of an `arch` kernel and any warning
    about falling back.

    The first call may boot `kernel` once to check KVM (see the module's
    docstring). Raises HostError when neither Firecracker nor QEMU is usable.
    """
    qemu = QEMU_MACHINES[arch]
    has_qemu = shutil.which(qemu.binary) is not None
    install = (
        f"install the Debian package {qemu.package}: apt-get install {qemu.package}"
    )
    if arch != host_arch():
        if not has_qemu:
            raise HostError(
                f"{qemu.binary} not found; an {arch} guest on this "
                f"{host_arch()} host boots only under QEMU's emulator",
                install,
            )
        return RUNNER_QEMU_TCG, [
            f"booting an {arch} guest on an {host_arch()} host under QEMU's "
            "emulator (TCG), which is slower"
        ]
    has_firecracker = shutil.which(FIRECRACKER) is not None
    if not has_qemu:
        if has_firecracker and _kvm_device_usable():
            return RUNNER_FIRECRACKER, []
        raise HostError(
            f"{qemu.binary} not found, and Firecracker cannot run here", install
        )

    first_decision = _kvm_decision is None
    decision = kvm_decision(kernel, arch, log)
    if decision.usable:
        return (RUNNER_FIRECRACKER if has_firecracker else RUNNER_QEMU_KVM), []
    warnings = []
    if first_decision:
        warnings.append(
            f"KVM does not work here ({decision.reason}); booting under QEMU's "
            "emulator (TCG) instead, which is slower"
        )
    return RUNNER_QEMU_TCG, warnings


def kvm_decision(kernel: Path, arch: str, log: IO[str]) -> KvmDecision:
    """Check once per process whether KVM can boot guests, by trying it."""
    global _kvm_decision
    if _kvm_decision is None:
        if _kvm_device_usable():
            _kvm_decision = _try_kvm(kernel, arch, log)
        else:
            _kvm_decision = KvmDecision(
                False, f"{KVM_DEVICE} is missing or not readable and writable"
            )
    return _kvm_decision


def boot(
    config: VmConfig,
    runner: str,
    log: IO[str],
    on_line: ConsoleCallback,
    timeout: float,
    work_dir: Path,
) -> VmRun:
    """Boot `config` with `runner` and wait until the VM exits or times out.

    `on_line` receives each console line with the seconds since the VM
    started, and may raise StopVm to stop the VM. Firecracker's config file
    is written to `work_dir`.
    """
    command = vm_command(config, runner, work_dir)
    return run_bounded(runner, command, log, on_line, timeout)


def vm_command(config: VmConfig, runner: str, work_dir: Path) -> list[str]:
    """Return the command that boots `config` with `runner`, console on stdout.

    For Firecracker, first write its config file to `work_dir`.
    """
    if runner == RUNNER_FIRECRACKER:
        # NOTE: no machine that fckernel was tested on had Firecracker, so this
        # runner is checked only against Firecracker's API schema.
        config_file = work_dir / "firecracker.json"
        config_file.write_text(json.dumps(firecracker_config(config), indent=2))
        return [FIRECRACKER, "--no-api", "--config-file", str(config_file)]
    accel = "kvm" if runner == RUNNER_QEMU_KVM else "tcg"
    return qemu_command(config, accel)


def firecracker_config(config: VmConfig) -> dict[str, Any]:
    """Return the `--config-file` document that boots `config` in Firecracker."""
    boot_source = {
        "kernel_image_path": str(config.kernel),
        "boot_args": _boot_args(
            FIRECRACKER_CONSOLE, FIRECRACKER_BOOT_ARGS, config.boot_args
        ),
    }
    if config.initrd is not None:
        boot_source["initrd_path"] = str(config.initrd)
    return {
        "boot-source": boot_source,
        "machine-config": {
            "vcpu_count": config.vcpus,
            "mem_size_mib": config.memory_mib,
        },
        "entropy": {},
        # Firecracker releases whose config parser gives "drives" no default
        # reject a file without it, so the guest gets an empty list.
        "drives": [],
    }


def qemu_command(config: VmConfig, accel: str, interactive: bool = False) -> list[str]:
    """Return the QEMU command for `config` under `accel` (kvm or tcg).

    The console is on stdio. For `interactive`, QEMU's monitor shares it, so
    that Ctrl-A X quits.
    """
    qemu = QEMU_MACHINES[config.arch]
    machine = qemu.kvm_machine if accel == "kvm" else qemu.machine
    command = [
        qemu.binary,
        *("-M", machine, "-accel", accel, "-cpu", _qemu_cpu(accel)),
        *("-m", str(config.memory_mib), "-smp", str(config.vcpus)),
        *("-nodefaults", "-no-user-config", "-display", "none", "-no-reboot"),
        *_console_options(qemu, interactive),
        *("-kernel", str(config.kernel)),
        *("-append", _boot_args(qemu.console, config.boot_args)),
        # Both machines describe their virtio-mmio devices to the kernel:
        # microvm on its command line, virt in its device tree.
        *("-device", QEMU_ENTROPY_DEVICE),
    ]
    if accel == "tcg":
        command += qemu.tcg_options
    if not interactive:
        command += ["-monitor", "none"]
    if config.initrd is not None:
        command += ["-initrd", str(config.initrd)]
    return command


def _console_options(qemu: QemuMachine, interactive: bool) -> list[str]:
    if qemu.console.startswith("ttyS"):
        return ["-serial", "mon:stdio" if interactive else "stdio"]
    mux = ",mux=on" if interactive else ""
    options = [
        *("-chardev", f"stdio,id=console{mux}"),
        *("-device", "virtio-serial-device"),
        *("-device", "virtconsole,chardev=console"),
    ]
    if interactive:
        options += ["-mon", "chardev=console"]
    return options


def run_bounded(
    runner: str,
    command: list[str],
    log: IO[str],
    on_line: ConsoleCallback,
    timeout: float,
) -> VmRun:
    """Run a VM command under a hard time limit, passing each console line on."""
    started = time.monotonic()

    def forward(line: str) -> None:
        on_line(time.monotonic() - started, line.rstrip("\r\n"))

    bounded = ["timeout", f"--kill-after={KILL_GRACE_SECONDS}", f"{timeout:g}"]
    try:
        result = run([*bounded, *command], log=log, on_line=forward)
    except StopVm as stop:
        log.write(f"fckernel: stopped the VM: {stop.reason}\n")
        seconds = time.monotonic() - started
        return VmRun(runner, tuple(command), None, False, stop.reason, seconds)
    seconds = time.monotonic() - started
    timed_out = result.returncode == TIMEOUT_EXIT_CODE
    if timed_out:
        log.write(f"fckernel: the VM timed out after {timeout:g} s and was stopped\n")
    return VmRun(runner, tuple(command), result.returncode, timed_out, None, seconds)


def run_interactive(config: VmConfig, runner: str, work_dir: Path) -> int:
    """Boot `config` with the terminal attached to its console; return the exit
    status of the VM.
    """
    if runner == RUNNER_FIRECRACKER:
        command = vm_command(config, runner, work_dir)
    else:
        accel = "kvm" if runner == RUNNER_QEMU_KVM else "tcg"
        command = qemu_command(config, accel, interactive=True)
    # process.run() closes stdin and captures the output, but a person needs
    # this terminal as the guest's console, so the VM inherits all three.
    return subprocess.call(command)


def _try_kvm(kernel: Path, arch: str, log: IO[str]) -> KvmDecision:
    """Boot `kernel` under KVM until its root-mount panic, watching for errors."""
    saw_panic = False
    load_error = ""

    def watch(_seconds: float, line: str) -> None:
        nonlocal saw_panic, load_error
        saw_panic = saw_panic or PANIC_TEXT in line
        if QEMU_LOAD_ERROR in line:
            load_error = line.strip()
            raise StopVm(load_error)
        for text in KVM_FAILURE_TEXTS:
            if text in line:
                raise StopVm(f"QEMU reported {line.strip()!r}")

    log.write("fckernel: checking that KVM works by booting without an initramfs\n")
    config = VmConfig(kernel, None, KVM_CHECK_BOOT_ARGS, arch=arch)
    command = qemu_command(config, "kvm")
    vm = run_bounded(RUNNER_QEMU_KVM, command, log, watch, KVM_CHECK_TIMEOUT_SECONDS)
    if load_error:
        # The kernel itself is the problem, whatever the accelerator.
        raise InputError(
            f"QEMU cannot load {kernel}: {load_error}",
            "boot a vmlinux built with CONFIG_PVH=y, as Firecracker's configs have",
        )
    if vm.stop_reason is not None:
        return KvmDecision(False, vm.stop_reason)
    if vm.timed_out:
        return KvmDecision(
            False, f"a KVM boot timed out after {KVM_CHECK_TIMEOUT_SECONDS:g} s"
        )
    if vm.returncode != 0 or not saw_panic:
        return KvmDecision(
            False, f"QEMU exited with status {vm.returncode} before the kernel booted"
        )
    return KvmDecision(True, "")


def _kvm_device_usable() -> bool:
    return KVM_DEVICE.exists() and os.access(KVM_DEVICE, os.R_OK | os.W_OK)


def _qemu_cpu(accel: str) -> str:
    # TCG's "max" model offers AES-NI, PCLMULQDQ and SSE4.2 in QEMU 7.2, which
    # the x86 crypto drivers need before they register.
    return "host" if accel == "kvm" else "max"


def _boot_args(console: str, *parts: str) -> str:
    words = (f"console={console}", BASE_BOOT_ARGS, *parts)
    return " ".join(word for word in words if word)
