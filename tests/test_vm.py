"""Tests for the VM runners: Firecracker's config, QEMU's command, KVM checks."""

from __future__ import annotations

import copy
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fckernel import vm
from fckernel.errors import HostError
from fckernel.vm import (
    RUNNER_FIRECRACKER,
    RUNNER_QEMU_KVM,
    RUNNER_QEMU_TCG,
    StopVm,
    VmConfig,
    choose_runner,
    firecracker_config,
    qemu_command,
    run_bounded,
    vm_command,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
SCHEMA_ENV = "FCKERNEL_FIRECRACKER_API_SCHEMA"
KERNEL = Path("/images/vmlinux")
INITRD = Path("/images/initramfs.cpio.gz")

# Stand-ins for QEMU: each records its arguments, then acts out one host.
QEMU_KVM_INTERNAL_ERROR = """\
case " $* " in
*" kvm "*) echo "KVM internal error. Suberror: 1"; exec sleep 600 ;;
esac
"""
QEMU_MSR_ABORT = """\
echo "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69"
exit 134
"""
QEMU_SILENT_EXIT = "exit 1\n"
QEMU_SILENT_HANG = "exec sleep 600\n"
QEMU_KVM_WORKS = """\
echo "[    0.9] Kernel panic - not syncing: VFS: Unable to mount root fs"
"""


def api_schema_path() -> Path:
    configured = os.environ.get(SCHEMA_ENV)
    if configured:
        return Path(configured)
    return REPO_ROOT.parent / "shared" / "firecracker" / "firecracker-api.yaml"


def strict_definitions(definitions: dict[str, Any]) -> dict[str, Any]:
    """Forbid keys that a definition does not declare, so typos fail the check."""
    strict = copy.deepcopy(definitions)
    for definition in strict.values():
        if "properties" in definition:
            definition.setdefault("additionalProperties", False)
    return strict


@pytest.fixture(scope="module")
def config_validator() -> Any:
    yaml = pytest.importorskip("yaml")
    jsonschema = pytest.importorskip("jsonschema")
    path = api_schema_path()
    if not path.is_file():
        pytest.skip(f"Firecracker's API schema not found at {path}; set {SCHEMA_ENV}")
    api = yaml.safe_load(path.read_text())
    schema = {
        "$ref": "#/definitions/FullVmConfiguration",
        "definitions": strict_definitions(api["definitions"]),
    }
    return jsonschema.Draft4Validator(schema)


def test_firecracker_config_matches_schema(config_validator: Any) -> None:
    config = firecracker_config(VmConfig(KERNEL, INITRD))

    errors = [error.message for error in config_validator.iter_errors(config)]

    assert errors == []


def test_schema_check_catches_typos(config_validator: Any) -> None:
    config = firecracker_config(VmConfig(KERNEL, INITRD))
    config["machine-config"]["vcpus"] = 1

    assert not config_validator.is_valid(config)


def test_firecracker_config_fields() -> None:
    config = firecracker_config(VmConfig(KERNEL, INITRD, memory_mib=256, vcpus=2))
    boot_args = config["boot-source"]["boot_args"].split()

    assert config["boot-source"]["kernel_image_path"] == str(KERNEL)
    assert config["boot-source"]["initrd_path"] == str(INITRD)
    assert config["machine-config"] == {"vcpu_count": 2, "mem_size_mib": 256}
    assert config["drives"] == []
    assert config["entropy"] == {}
    assert "console=ttyS0" in boot_args
    assert "reboot=k" in boot_args
    assert "panic=-1" in boot_args


def test_firecracker_config_without_initrd() -> None:
    config = firecracker_config(VmConfig(KERNEL, None, boot_args="quiet"))

    assert "initrd_path" not in config["boot-source"]
    assert config["boot-source"]["boot_args"].endswith(" quiet")


def test_firecracker_command_writes_config(tmp_path: Path) -> None:
    config = VmConfig(KERNEL, INITRD)

    command = vm_command(config, RUNNER_FIRECRACKER, tmp_path)

    assert command[:3] == ["firecracker", "--no-api", "--config-file"]
    written = json.loads(Path(command[3]).read_text())
    assert written == firecracker_config(config)


def test_qemu_tcg_command() -> None:
    command = qemu_command(VmConfig(KERNEL, INITRD), "tcg")

    assert command[0] == "qemu-system-x86_64"
    assert _option(command, "-M") == "microvm"
    assert _option(command, "-accel") == "tcg"
    assert _option(command, "-cpu") == "max"
    assert _option(command, "-icount") == "shift=auto"
    assert _option(command, "-m") == "512"
    assert _option(command, "-serial") == "stdio"
    assert _option(command, "-monitor") == "none"
    assert _option(command, "-kernel") == str(KERNEL)
    assert _option(command, "-initrd") == str(INITRD)
    assert _option(command, "-device") == "virtio-rng-device"
    assert "-no-reboot" in command
    assert "console=ttyS0" in _option(command, "-append").split()


def test_qemu_kvm_command() -> None:
    command = qemu_command(VmConfig(KERNEL, None), "kvm")

    assert _option(command, "-accel") == "kvm"
    assert _option(command, "-cpu") == "host"
    assert "-icount" not in command
    assert "-initrd" not in command


def test_qemu_interactive_command() -> None:
    command = qemu_command(VmConfig(KERNEL, INITRD), "tcg", interactive=True)

    assert _option(command, "-serial") == "mon:stdio"
    assert "-monitor" not in command


def _option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


class FakeHost:
    """A PATH with stand-in VM programs, and the calls they received."""

    def __init__(self, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.bin = folder / "bin"
        self.bin.mkdir()
        self.calls = folder / "calls"
        self.calls.touch()
        monkeypatch.setenv("PATH", f"{self.bin}{os.pathsep}{os.environ['PATH']}")
        monkeypatch.setenv("FAKE_CALLS", str(self.calls))

    def install(self, name: str, body: str) -> None:
        script = self.bin / name
        script.write_text(f'#!/bin/sh\necho "{name} $*" >> "$FAKE_CALLS"\n{body}')
        script.chmod(0o755)

    def call_count(self, name: str) -> int:
        lines = self.calls.read_text().splitlines()
        return sum(line.startswith(f"{name} ") for line in lines)


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHost]:
    monkeypatch.setattr(vm, "_kvm_decision", None)
    monkeypatch.setattr(vm, "_kvm_device_usable", lambda: True)
    yield FakeHost(tmp_path, monkeypatch)


def test_kvm_internal_error_falls_back(host: FakeHost) -> None:
    host.install("qemu-system-x86_64", QEMU_KVM_INTERNAL_ERROR)
    log = io.StringIO()

    runner, warnings = choose_runner(KERNEL, "x86_64", log)

    assert runner == RUNNER_QEMU_TCG
    assert len(warnings) == 1
    assert "KVM internal error" in warnings[0]
    assert "KVM internal error" in log.getvalue()


def test_kvm_decision_is_remembered(host: FakeHost) -> None:
    host.install("qemu-system-x86_64", QEMU_KVM_INTERNAL_ERROR)
    choose_runner(KERNEL, "x86_64", io.StringIO())

    runner, warnings = choose_runner(KERNEL, "x86_64", io.StringIO())

    assert runner == RUNNER_QEMU_TCG
    assert warnings == []
    assert host.call_count("qemu-system-x86_64") == 1


def test_kvm_msr_abort_falls_back(host: FakeHost) -> None:
    host.install("qemu-system-x86_64", QEMU_MSR_ABORT)

    decision = vm.kvm_decision(KERNEL, "x86_64", io.StringIO())

    assert not decision.usable
    assert "failed to set MSR" in decision.reason


def test_kvm_exit_before_boot_falls_back(host: FakeHost) -> None:
    host.install("qemu-system-x86_64", QEMU_SILENT_EXIT)

    decision = vm.kvm_decision(KERNEL, "x86_64", io.StringIO())

    assert not decision.usable
    assert "status 1" in decision.reason


def test_kvm_check_hang_falls_back(
    host: FakeHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    host.install("qemu-system-x86_64", QEMU_SILENT_HANG)
    monkeypatch.setattr(vm, "KVM_CHECK_TIMEOUT_SECONDS", 1.0)

    decision = vm.kvm_decision(KERNEL, "x86_64", io.StringIO())

    assert not decision.usable
    assert "timed out after 1 s" in decision.reason


def test_working_kvm_uses_qemu_kvm(host: FakeHost) -> None:
    host.install("qemu-system-x86_64", QEMU_KVM_WORKS)

    runner, warnings = choose_runner(KERNEL, "x86_64", io.StringIO())

    assert runner == RUNNER_QEMU_KVM
    assert warnings == []


def test_working_kvm_prefers_firecracker(host: FakeHost) -> None:
    host.install("qemu-system-x86_64", QEMU_KVM_WORKS)
    host.install("firecracker", "exit 0\n")

    runner, _warnings = choose_runner(KERNEL, "x86_64", io.StringIO())

    assert runner == RUNNER_FIRECRACKER


def test_unusable_kvm_device_skips_check(
    host: FakeHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    host.install("qemu-system-x86_64", QEMU_KVM_WORKS)
    monkeypatch.setattr(vm, "_kvm_device_usable", lambda: False)

    runner, warnings = choose_runner(KERNEL, "x86_64", io.StringIO())

    assert runner == RUNNER_QEMU_TCG
    assert "/dev/kvm" in warnings[0]
    assert host.call_count("qemu-system-x86_64") == 0


def test_missing_qemu_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(HostError, match="qemu-system-x86_64 not found") as raised:
        choose_runner(KERNEL, "x86_64", io.StringIO())
    assert raised.value.hint is not None
    assert "qemu-system-x86" in raised.value.hint


def test_foreign_guest_runs_under_tcg_without_kvm_check(host: FakeHost) -> None:
    host.install("qemu-system-aarch64", QEMU_KVM_WORKS)
    host.install("firecracker", "exit 0\n")

    runner, warnings = choose_runner(KERNEL, "aarch64", io.StringIO())

    assert runner == RUNNER_QEMU_TCG
    assert warnings == [
        "booting an aarch64 guest on an x86_64 host under QEMU's emulator "
        "(TCG), which is slower"
    ]
    assert host.call_count("qemu-system-aarch64") == 0


def test_missing_foreign_qemu_names_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(HostError, match="qemu-system-aarch64 not found") as raised:
        choose_runner(KERNEL, "aarch64", io.StringIO())
    assert raised.value.hint is not None
    assert "apt-get install qemu-system-arm" in raised.value.hint


def test_run_bounded_times_out() -> None:
    log = io.StringIO()

    run = run_bounded("test", ["sleep", "30"], log, lambda _s, _l: None, 1)

    assert run.timed_out
    assert run.returncode == vm.TIMEOUT_EXIT_CODE
    assert "timed out after 1 s" in log.getvalue()


def test_callback_stops_vm() -> None:
    lines: list[str] = []

    def stop_when_ready(_seconds: float, line: str) -> None:
        lines.append(line)
        if line == "ready":
            raise StopVm("saw ready")

    command = ["sh", "-c", "echo ready; exec sleep 30"]
    run = run_bounded("test", command, io.StringIO(), stop_when_ready, 60)

    assert run.stop_reason == "saw ready"
    assert run.returncode is None
    assert not run.timed_out
    assert lines == ["ready"]


def test_qemu_aarch64_command_uses_virtio_console() -> None:
    command = qemu_command(VmConfig(KERNEL, INITRD, arch="aarch64"), "tcg")

    assert command[0] == "qemu-system-aarch64"
    assert _option(command, "-M") == "virt"
    assert _option(command, "-cpu") == "max"
    assert _option(command, "-chardev") == "stdio,id=console"
    assert "virtconsole,chardev=console" in command
    assert "-serial" not in command
    assert "-icount" not in command
    assert "console=hvc0" in _option(command, "-append").split()


def test_qemu_aarch64_interactive_command_shares_the_monitor() -> None:
    config = VmConfig(KERNEL, INITRD, arch="aarch64")

    command = qemu_command(config, "tcg", interactive=True)

    assert _option(command, "-chardev") == "stdio,id=console,mux=on"
    assert _option(command, "-mon") == "chardev=console"
