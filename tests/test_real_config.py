"""`fckernel config` on Debian's real 6.1 tree with Firecracker's 6.1 base config.

Each test resolves a config with the kernel's own olddefconfig (a few seconds);
the tree is unpacked once per test run into a shared cache.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

import fckernel.build
from fckernel.build import Job, run_job
from fckernel.dotconfig import read_config
from fckernel.errors import HostError, InputError, UnmetRequestsError

from .conftest import LINUX_61, LINUX_612, firecracker_configs, require
from .test_features import DEFAULT_ADDITIONS

pytestmark = pytest.mark.tree

BASE_61 = "microvm-kernel-ci-x86_64-6.1.config"


def config_job(tmp_path: Path, **fields: object) -> Job:
    values: dict[str, object] = {
        "output": tmp_path / "out",
        "source": str(require(LINUX_61)),
        "arch": "x86_64",
        "compile": False,
    }
    values.update(fields)
    return Job(**values)  # type: ignore[arg-type]


def outcomes(output: Path) -> dict[str, dict[str, object]]:
    data = json.loads((output / "report.json").read_text())
    return {request["symbol"]: request for request in data["requests"]}


def test_default_job_resolves_all_additions(tmp_path: Path, real_env: Path) -> None:
    job = config_job(tmp_path)
    report = run_job(job)
    final = read_config(job.output / "config")
    for symbol in DEFAULT_ADDITIONS:
        assert final.get(symbol) == "y", symbol
    results = outcomes(job.output)
    for symbol in DEFAULT_ADDITIONS:
        assert results[symbol]["status"] in ("applied", "unchanged"), symbol
    assert results["NETFILTER_XT_MATCH_COMMENT"]["status"] == "applied"
    assert results["NETFILTER_XT_MATCH_COMMENT"]["base"] == "n"
    assert results["AUTOFS4_FS"]["status"] == "unchanged"
    assert report.kernel_version is not None
    assert report.kernel_version.startswith("6.1.")


def test_sed_recipe_does_nothing_fckernel_reports_truth(
    tmp_path: Path, real_env: Path
) -> None:
    base = tmp_path / "recipe.config"
    shutil.copy(firecracker_configs() / BASE_61, base)
    symbols = [
        "IP6_NF_IPTABLES",
        "NETFILTER_XT_MARK",
        "NETFILTER_XT_MATCH_COMMENT",
        "NETFILTER_XT_MATCH_MULTIPORT",
    ]
    for symbol in symbols:
        subprocess.run(
            ["sed", "-i", f"s/^# CONFIG_{symbol}=.*/CONFIG_{symbol}=y/", str(base)],
            check=True,
        )
    assert base.read_bytes() == (firecracker_configs() / BASE_61).read_bytes()
    assert read_config(base).get("NETFILTER_XT_MATCH_COMMENT") == "n"

    job = config_job(
        tmp_path,
        base=str(base),
        default_features=False,
        sets=[f"CONFIG_{symbol}=y" for symbol in symbols],
    )
    run_job(job)
    results = outcomes(job.output)
    assert {s: results[s]["status"] for s in symbols} == {
        "IP6_NF_IPTABLES": "unchanged",
        "NETFILTER_XT_MARK": "applied",
        "NETFILTER_XT_MATCH_COMMENT": "applied",
        "NETFILTER_XT_MATCH_MULTIPORT": "applied",
    }
    assert all(results[s]["final"] == "y" for s in symbols)


def test_module_request_promoted_without_modules(
    tmp_path: Path, real_env: Path
) -> None:
    job = config_job(
        tmp_path, default_features=False, sets=["CONFIG_NET_SCH_FQ_CODEL=m"]
    )
    run_job(job)
    result = outcomes(job.output)["NET_SCH_FQ_CODEL"]
    assert result["status"] == "promoted"
    assert result["final"] == "y"
    assert "CONFIG_MODULES is not set" in str(result["reason"])


def test_removed_and_misspelt_symbols_unknown(tmp_path: Path, real_env: Path) -> None:
    job = config_job(
        tmp_path,
        default_features=False,
        sets=[
            "CONFIG_NF_NAT_IPV4=y",
            "CONFIG_MEMCG_SWAP=y",
            "CONFIG_NETFILTER_XT_MATCH_COMENT=y",
        ],
    )
    with pytest.raises(UnmetRequestsError):
        run_job(job)
    results = outcomes(job.output)
    for symbol in ("NF_NAT_IPV4", "MEMCG_SWAP", "NETFILTER_XT_MATCH_COMENT"):
        assert results[symbol]["status"] == "unknown", symbol
    assert "removed in Linux 5.1; request CONFIG_NF_NAT and CONFIG_IP_NF_NAT" in str(
        results["NF_NAT_IPV4"]["reason"]
    )
    assert "request CONFIG_MEMCG instead" in str(results["MEMCG_SWAP"]["reason"])
    assert "did you mean CONFIG_NETFILTER_XT_MATCH_COMMENT" in str(
        results["NETFILTER_XT_MATCH_COMENT"]["reason"]
    )


def base_without_netfilter_advanced(tmp_path: Path) -> Path:
    base = tmp_path / "no-advanced.config"
    text = (firecracker_configs() / BASE_61).read_text()
    base.write_text(
        text.replace(
            "CONFIG_NETFILTER_ADVANCED=y", "# CONFIG_NETFILTER_ADVANCED is not set"
        )
    )
    return base


def test_dependency_off_makes_request_unmet(tmp_path: Path, real_env: Path) -> None:
    job = config_job(
        tmp_path,
        base=str(base_without_netfilter_advanced(tmp_path)),
        default_features=False,
        sets=["CONFIG_NETFILTER_XT_MATCH_COMMENT=y"],
    )
    with pytest.raises(UnmetRequestsError, match="CONFIG_NETFILTER_XT_MATCH_COMMENT"):
        run_job(job)
    result = outcomes(job.output)["NETFILTER_XT_MATCH_COMMENT"]
    assert result["status"] == "unmet"
    assert result["final"] is None
    assert "depends on NETFILTER_ADVANCED [=n]" in str(result["reason"])
    options = (job.output / "OPTIONS.md").read_text()
    assert "## CONFIG_NETFILTER_XT_MATCH_COMMENT" in options
    assert "comments in your iptables ruleset" in options


def test_resolve_deps_adds_dependency(tmp_path: Path, real_env: Path) -> None:
    job = config_job(
        tmp_path,
        base=str(base_without_netfilter_advanced(tmp_path)),
        default_features=False,
        sets=["CONFIG_NETFILTER_XT_MATCH_COMMENT=y"],
        resolve_deps=True,
    )
    report = run_job(job)
    results = outcomes(job.output)
    assert results["NETFILTER_XT_MATCH_COMMENT"]["status"] == "applied"
    assert results["NETFILTER_ADVANCED"]["status"] == "applied"
    assert results["NETFILTER_ADVANCED"]["origin"] == (
        "--resolve-deps for CONFIG_NETFILTER_XT_MATCH_COMMENT"
    )
    assert report.resolution is not None
    added = {(a["symbol"], a["value"]) for a in report.resolution["additions"]}
    assert ("NETFILTER_ADVANCED", "y") in added


def test_resolve_deps_keeps_explicit_choice(tmp_path: Path, real_env: Path) -> None:
    job = config_job(
        tmp_path,
        default_features=False,
        sets=["CONFIG_NETFILTER_ADVANCED=n", "CONFIG_NETFILTER_XT_MATCH_COMMENT=y"],
        resolve_deps=True,
    )
    with pytest.raises(UnmetRequestsError):
        run_job(job)
    report = json.loads((job.output / "report.json").read_text())
    rejected = {r["symbol"] for r in report["resolution"]["rejections"]}
    assert rejected == {"NETFILTER_XT_MATCH_COMMENT"}
    assert outcomes(job.output)["NETFILTER_ADVANCED"]["final"] == "n"


def test_other_arch_option_unmet_then_allowed(tmp_path: Path, real_env: Path) -> None:
    fragment = firecracker_configs() / "ci.config"
    job = config_job(tmp_path, default_features=False, fragments=[fragment])
    with pytest.raises(UnmetRequestsError, match="CONFIG_SERIO_GSCPS2"):
        run_job(job)
    result = outcomes(job.output)["SERIO_GSCPS2"]
    assert result["status"] == "unmet"
    assert "GSC is defined only for parisc, not for x86" in str(result["reason"])

    allowed = config_job(
        tmp_path,
        default_features=False,
        fragments=[fragment],
        allow_unmet=["CONFIG_SERIO_GSCPS2"],
    )
    report = run_job(allowed)
    assert report.status == "ok"
    assert outcomes(allowed.output)["SERIO_GSCPS2"]["allowed_unmet"] is True


def test_base_symbols_unknown_to_debian_tree(tmp_path: Path, real_env: Path) -> None:
    report = run_job(config_job(tmp_path, default_features=False))
    assert "AMAZON_DRIVER_UPDATES" in report.base_unknown_symbols
    assert "NET_SCH_FQ_CODEL" not in report.base_unknown_symbols


def test_btf_without_pahole_fails_before_compiling(
    tmp_path: Path, real_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_which = shutil.which

    def which_without_pahole(name: str) -> str | None:
        return None if name == "pahole" else real_which(name)

    monkeypatch.setattr(fckernel.build.shutil, "which", which_without_pahole)
    job = config_job(
        tmp_path,
        default_features=False,
        compile=True,
        fragments=[firecracker_configs() / "debug.config"],
    )
    with pytest.raises(HostError) as caught:
        run_job(job)
    assert "CONFIG_DEBUG_INFO_BTF=y needs pahole" in caught.value.message
    assert "apt-get install pahole" in str(caught.value.hint)
    assert not (job.output / "vmlinux").exists()


def test_renamed_symbols_on_612(tmp_path: Path, real_env: Path) -> None:
    job = config_job(
        tmp_path,
        source=str(require(LINUX_612)),
        default_features=False,
        sets=[
            "CONFIG_AUTOFS4_FS=y",
            "CONFIG_RANDOM_TRUST_CPU=y",
            "CONFIG_NETFILTER_XT_MATCH_COMENT=y",
        ],
    )
    with pytest.raises(UnmetRequestsError):
        run_job(job)
    results = outcomes(job.output)
    assert all(r["status"] == "unknown" for r in results.values())
    assert "request CONFIG_AUTOFS_FS instead" in str(results["AUTOFS4_FS"]["reason"])
    assert "random.trust_cpu=on" in str(results["RANDOM_TRUST_CPU"]["reason"])
    assert "did you mean CONFIG_NETFILTER_XT_MATCH_COMMENT" in str(
        results["NETFILTER_XT_MATCH_COMENT"]["reason"]
    )
    report = json.loads((job.output / "report.json").read_text())
    assert any("for 6.1" in warning for warning in report["warnings"])


def test_docker_and_entropy_features_resolve(tmp_path: Path, real_env: Path) -> None:
    job = config_job(tmp_path, features=["docker", "entropy"])
    report = run_job(job)
    assert report.status == "ok"
    results = outcomes(job.output)
    for symbol in ("VETH", "BRIDGE", "OVERLAY_FS", "IP_NF_TARGET_MASQUERADE"):
        assert results[symbol]["final"] == "y", symbol
    assert results["HW_RANDOM_VIRTIO"]["final"] == "y"


def test_default_job_on_612_follows_renames_and_reports_base_loss(
    tmp_path: Path, real_env: Path
) -> None:
    job = config_job(tmp_path, source=str(require(LINUX_612)))

    report = run_job(job)

    assert report.status == "ok"
    results = outcomes(job.output)
    assert "AUTOFS4_FS" not in results
    assert results["AUTOFS_FS"]["final"] == "y"
    assert results["AUTOFS_FS"]["origin"] == "feature autofs, for CONFIG_AUTOFS4_FS"
    data = json.loads((job.output / "report.json").read_text())
    assert data["followed_renames"] == [
        {
            "symbol": "AUTOFS4_FS",
            "value": "y",
            "origin": "feature autofs",
            "version": "6.6",
            "replaced_by": ["AUTOFS_FS"],
        }
    ]
    assert "AMAZON_DRIVER_UPDATES" in data["base_unknown_symbols"]
    unknown = len(data["base_unknown_symbols"])
    assert any(
        f"{unknown} symbols of the 6.1 base config do not exist" in warning
        for warning in data["warnings"]
    )
    # Values of requested symbols are the requests' doing, not losses.
    assert "NET_SCH_FQ_CODEL" not in data["base_changed"]


def test_618_base_config_accepted_on_612(tmp_path: Path, real_env: Path) -> None:
    job = config_job(
        tmp_path,
        source=str(require(LINUX_612)),
        base="microvm-kernel-ci-x86_64-6.18.config",
    )

    report = run_job(job)

    assert report.status == "ok"
    assert any("is for 6.18" in warning for warning in report.warnings)
    final = read_config(job.output / "config")
    for symbol in ("VIRTIO_MMIO", "SERIAL_8250_CONSOLE", "PVH"):
        assert final.get(symbol) == "y", symbol


def test_aarch64_default_job_maps_crypto_to_arm64(
    tmp_path: Path, real_env: Path
) -> None:
    job = config_job(
        tmp_path, arch="aarch64", base="microvm-kernel-ci-aarch64-6.1.config"
    )

    report = run_job(job)

    assert report.status == "ok"
    assert "crypto-accel-arm64" in report.features
    assert "crypto-accel" not in report.features
    final = read_config(job.output / "config")
    for symbol in ("CRYPTO_AES_ARM64_CE_BLK", "CRYPTO_GHASH_ARM64_CE", "INPUT_EVDEV"):
        assert final.get(symbol) == "y", symbol
    assert final.get("CRYPTO_AES_NI_INTEL") is None


def test_config_turned_32_bit_is_rejected(tmp_path: Path, real_env: Path) -> None:
    job = config_job(
        tmp_path,
        default_features=False,
        sets=["CONFIG_64BIT=n", "CONFIG_X86_64=n"],
    )

    with pytest.raises(InputError) as caught:
        run_job(job)

    assert caught.value.message.startswith(
        "the resolved config is not for x86_64: CONFIG_X86_64 is n after olddefconfig"
    )
    assert "CONFIG_64BIT=n (--set #1)" in caught.value.message
    assert json.loads((job.output / "report.json").read_text())["status"] == "failed"
