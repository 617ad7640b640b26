"""The Firecracker readiness check: configs, output folders and images."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from fckernel.arch import get_arch
from fckernel.build import Job, run_job
from fckernel.cli import main
from fckernel.dotconfig import parse_config
from fckernel.errors import ExitCode, InputError
from fckernel.fccheck import check_config, check_path, embedded_config

from .conftest import LINUX_61, firecracker_configs, require
from .test_images import bzimage, elf_header

READY = """\
CONFIG_X86_64=y
CONFIG_SERIAL_8250_CONSOLE=y
CONFIG_BLK_DEV_INITRD=y
CONFIG_VIRTIO_MMIO=y
CONFIG_VIRTIO_BLK=y
CONFIG_VIRTIO_NET=y
CONFIG_EXT4_FS=y
CONFIG_KVM_GUEST=y
CONFIG_PVH=y
CONFIG_ACPI=y
CONFIG_PCI=y
"""
X86 = get_arch("x86_64")


def findings(text: str) -> dict[str, str]:
    result = check_config(parse_config(text), X86)
    return {finding.requirement: finding.severity for finding in result.findings}


def test_ready_config_has_no_findings() -> None:
    assert findings(READY) == {}


def test_acpi_without_pci_on_mainline() -> None:
    text = READY.replace("CONFIG_PCI=y", "# CONFIG_PCI is not set")
    result = check_config(parse_config(text), X86)
    assert not result.ok
    (finding,) = result.findings
    assert finding.requirement == "acpi-virtio-discovery"
    assert finding.actual == {"PCI": "n", "VIRTIO_MMIO_CMDLINE_DEVICES": "n"}
    assert finding.fix == "CONFIG_PCI=y or CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES=y"
    assert "cannot open its root disk" in finding.why


def test_acpi_without_pci_fine_on_amazon_tree() -> None:
    text = READY.replace("CONFIG_PCI=y", "") + "CONFIG_AMAZON_DRIVER_UPDATES=y\n"
    assert findings(text) == {}


def test_no_acpi_needs_cmdline_devices() -> None:
    text = READY.replace("CONFIG_ACPI=y", "# CONFIG_ACPI is not set")
    assert findings(text) == {"legacy-virtio-discovery": "error"}


def test_virtio_mmio_module_fails() -> None:
    text = READY.replace("CONFIG_VIRTIO_MMIO=y", "CONFIG_VIRTIO_MMIO=m")
    result = check_config(parse_config(text), X86)
    assert not result.ok
    assert result.findings[0].requirement == "virtio-mmio"
    assert result.findings[0].actual == {"VIRTIO_MMIO": "m"}


def test_missing_root_filesystem_driver() -> None:
    text = READY.replace("CONFIG_EXT4_FS=y", "CONFIG_EXT4_FS=m")
    assert findings(text) == {"root-filesystem": "error"}


def test_firecracker_base_configs_are_ready() -> None:
    for name in (
        "microvm-kernel-ci-x86_64-6.1.config",
        "microvm-kernel-ci-x86_64-6.18.config",
    ):
        result = check_path(firecracker_configs() / name)
        assert result.ok, name
        assert result.arch == "x86_64"


def test_bzimage_named_vmlinux_in_output(tmp_path: Path) -> None:
    (tmp_path / "config").write_text(READY)
    (tmp_path / "vmlinux").write_bytes(bzimage())
    result = check_path(tmp_path)
    assert not result.ok
    assert result.image_format == "bzimage"
    assert result.findings[-1].requirement == "image-format"
    assert "loads an uncompressed ELF vmlinux" in result.findings[-1].why


def test_image_with_embedded_config(tmp_path: Path) -> None:
    image = tmp_path / "vmlinux"
    config = READY.replace("CONFIG_VIRTIO_BLK=y", "")
    image.write_bytes(
        elf_header(62) + b"IKCFG_ST" + gzip.compress(config.encode()) + b"IKCFG_ED"
    )
    assert embedded_config(image) == config
    result = check_path(image)
    assert [f.requirement for f in result.findings] == ["virtio-blk"]


def test_image_without_embedded_config(tmp_path: Path) -> None:
    image = tmp_path / "vmlinux"
    image.write_bytes(elf_header(62))
    with pytest.raises(InputError, match="without an embedded config"):
        check_path(image)


def test_cli_check_exit_codes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.config"
    good.write_text(READY)
    bad = tmp_path / "bad.config"
    bad.write_text(READY.replace("CONFIG_VIRTIO_MMIO=y", "CONFIG_VIRTIO_MMIO=m"))
    assert main(["check", str(good)]) == ExitCode.OK
    assert main(["check", str(bad), "--json"]) == ExitCode.NOT_READY
    captured = capsys.readouterr()
    assert json.loads(captured.out)["ok"] is False
    assert (
        "E: CONFIG_VIRTIO_MMIO=m: Firecracker's devices are virtio-mmio" in captured.err
    )


@pytest.mark.tree
def test_debian_tree_without_pci_flagged(
    tmp_path: Path, real_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job = Job(
        output=tmp_path / "out",
        source=str(require(LINUX_61)),
        arch="x86_64",
        compile=False,
        default_features=False,
        sets=["CONFIG_PCI=n"],
    )
    report = run_job(job)
    assert report.firecracker_check is not None
    requirements = [f["requirement"] for f in report.firecracker_check["findings"]]
    assert "acpi-virtio-discovery" in requirements
    assert main(["check", str(job.output)]) == ExitCode.NOT_READY
    shutil.rmtree(job.output)


def test_embedded_config_bomb_is_not_expanded(tmp_path: Path) -> None:
    image = tmp_path / "vmlinux"
    bomb = gzip.compress(b"#" * (64 << 20))
    image.write_bytes(elf_header(62) + b"IKCFG_ST" + bomb + b"IKCFG_ED")

    assert embedded_config(image) is None


def test_check_rejects_a_config_of_the_other_arch(tmp_path: Path) -> None:
    config = tmp_path / "x86.config"
    config.write_text("CONFIG_X86_64=y\nCONFIG_VIRTIO_MMIO=y\n")

    with pytest.raises(
        InputError, match="is not an aarch64 config: it sets CONFIG_X86_64=y"
    ):
        check_path(config, "aarch64")
