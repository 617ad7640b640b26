"""Firecracker's 6.1 aarch64 config cross-compiled from Debian's 6.1 tree with
the default features that apply to aarch64, then booted under
qemu-system-aarch64 with probe programs from Debian's arm64 packages (slow:
about 13 minutes on 2 cores).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from fckernel.build import Job, run_job
from fckernel.cli import main
from fckernel.dotconfig import read_config
from fckernel.errors import BootTestError, ExitCode
from fckernel.images import image_format

from .conftest import LINUX_61, firecracker_configs, require

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def aarch64_build(
    real_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """Build and boot-test the aarch64 default job once; yield its output folder."""
    require(LINUX_61)
    output = tmp_path_factory.mktemp("aarch64-build") / "out"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FCKERNEL_CACHE", str(real_cache))
        patch.setenv("FCKERNEL_FIRECRACKER_MIRROR", str(firecracker_configs()))
        job = Job(output=output, source=str(LINUX_61), arch="aarch64", test=True)
        # A failed boot test still writes the report, whose probes a test checks.
        with contextlib.suppress(BootTestError):
            run_job(job)
    yield output


def test_aarch64_build_is_an_arm64_image(aarch64_build: Path) -> None:
    image = aarch64_build / "Image"

    assert image_format(image) == "arm64-image"
    assert not (aarch64_build / "vmlinux").exists()
    report = json.loads((aarch64_build / "report.json").read_text())
    assert report["status"] == "ok"
    assert report["arch"] == "aarch64"
    assert report["inputs"]["base"]["spec"] == "microvm-kernel-ci-aarch64-6.1.config"
    assert report["toolchain"]["cc"].startswith("aarch64-linux-gnu-gcc")
    assert report["artifacts"][0]["name"] == "Image"


def test_aarch64_build_has_the_default_features_that_apply(
    aarch64_build: Path,
) -> None:
    final = read_config(aarch64_build / "config")
    report = json.loads((aarch64_build / "report.json").read_text())

    assert "crypto-accel" not in report["features"]
    assert "crypto-accel-arm64" in report["features"]
    for symbol in (
        "IP6_NF_IPTABLES",
        "NETFILTER_XT_MATCH_COMMENT",
        "NETFILTER_XT_MATCH_MULTIPORT",
        "NETFILTER_XT_MARK",
        "INPUT_EVDEV",
        "NET_SCH_FQ_CODEL",
        "AUTOFS4_FS",
        "CRYPTO_AES_ARM64_CE_BLK",
        "CRYPTO_GHASH_ARM64_CE",
    ):
        assert final.get(symbol) == "y", symbol


def test_aarch64_probes_pass_under_qemu(aarch64_build: Path) -> None:
    test = json.loads((aarch64_build / "report.json").read_text())["test"]

    assert test["passed"], test["probes"]
    assert test["runner"] == "qemu-tcg"
    probes = {(p["feature"], p["probe"]): p["status"] for p in test["probes"]}
    assert probes[("crypto-accel-arm64", "ghash-ce")] == "pass"
    assert probes[("iptables", "ip6tables-nft")] == "pass"
    assert probes[("fq-codel", "fq_codel-qdisc")] == "pass"
    assert all(status == "pass" for status in probes.values())
    log = (aarch64_build / "test.log").read_text()
    assert "qemu-system-aarch64" in log


def test_aarch64_output_is_ready_for_firecracker(
    aarch64_build: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["check", str(aarch64_build)])

    assert code == ExitCode.OK, capsys.readouterr().err
    assert "ready for Firecracker on aarch64" in capsys.readouterr().err
