"""The default job compiled for real from Debian's 6.1 tree (slow: about 10
minutes on 2 cores), then an incremental rebuild with one option changed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fckernel.build import Job, run_job
from fckernel.cache import Cache
from fckernel.cli import main
from fckernel.dotconfig import read_config
from fckernel.errors import ExitCode
from fckernel.images import image_format
from fckernel.testrun import run_test, target_from_kernel

from .conftest import LINUX_61
from .test_features import DEFAULT_ADDITIONS

pytestmark = pytest.mark.slow


def test_default_build_is_elf_with_additions(default_build: Path) -> None:
    vmlinux = default_build / "vmlinux"
    assert image_format(vmlinux) == "elf-x86_64"
    final = read_config(default_build / "config")
    for symbol in DEFAULT_ADDITIONS:
        assert final.get(symbol) == "y", symbol

    report = json.loads((default_build / "report.json").read_text())
    assert report["status"] == "ok"
    statuses = {r["symbol"]: r["status"] for r in report["requests"]}
    for symbol in DEFAULT_ADDITIONS:
        assert statuses[symbol] in ("applied", "unchanged"), symbol
    artifact = report["artifacts"][0]
    assert artifact["name"] == "vmlinux"
    assert artifact["size"] == vmlinux.stat().st_size
    assert report["toolchain"]["cc"].startswith("gcc")


def test_one_option_rebuilds_incrementally(
    default_build: Path,
    real_cache: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FCKERNEL_CACHE", str(real_cache))
    cold = json.loads((default_build / "report.json").read_text())
    job = Job(
        output=tmp_path / "out",
        source=str(LINUX_61),
        arch="x86_64",
        sets=["CONFIG_NET_SCH_SFQ=y"],
    )
    report = run_job(job)
    assert report.build["folder"] == cold["build"]["folder"]
    assert read_config(job.output / "config").get("NET_SCH_SFQ") == "y"
    compiled = report.build["objects_compiled"]
    assert 0 < compiled < cold["build"]["objects_compiled"] / 10


def test_without_nf_tables_ipv6_nft_probe_fails(
    default_build: Path,
    real_cache: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("FCKERNEL_CACHE", str(real_cache))
    output = tmp_path / "out"
    code = main(
        [
            "build",
            "--source",
            str(LINUX_61),
            "--set",
            "CONFIG_NF_TABLES_IPV6=n",
            "--test",
            "-o",
            str(output),
        ]
    )
    assert code == ExitCode.TEST
    assert "ip6tables-nft" in capsys.readouterr().err

    report = json.loads((output / "report.json").read_text())
    assert report["status"] == "test-failed"
    probes = {p["probe"]: p for p in report["test"]["probes"]}
    assert probes["ip6tables-nft"]["status"] == "fail"
    assert "Operation not supported" in probes["ip6tables-nft"]["output"]
    assert probes["ip6tables-legacy"]["status"] == "pass"
    assert probes["iptables-nft"]["status"] == "pass"
    assert "ip6tables-nft" in (output / "test.log").read_text()


def test_docker_and_entropy_probes_pass(
    default_build: Path, tmp_path: Path, real_cache: Path
) -> None:
    target = target_from_kernel(
        default_build / "vmlinux", "x86_64", ["docker", "entropy"], False
    )
    result = run_test(target, tmp_path / "test.log", Cache(real_cache))
    statuses = {p.probe: p.status for p in result.probes}
    assert statuses == {
        "bridge": "pass",
        "veth": "pass",
        "overlay": "pass",
        "masquerade": "pass",
        "virtio-rng": "pass",
    }
