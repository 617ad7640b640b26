"""Tests for build plans: several kernels in one run, on the fake tree."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from fckernel.cli import main
from fckernel.errors import ExitCode

from .conftest import fckernel_command
from .test_build import wait_for_file


def write_plan(folder: Path, text: str) -> Path:
    path = folder / "kernels.toml"
    path.write_text(text)
    return path


@pytest.fixture
def plan_defaults(fake_tree: Path, fake_base: Path) -> str:
    """A [defaults] table that builds on the fake tree without default features."""
    return (
        "[defaults]\n"
        f'base = "{fake_base}"\n'
        f'source = "{fake_tree}"\n'
        'arch = "x86_64"\n'
        "default_features = false\n"
    )


def run_plan_command(plan: Path, output: Path, *more: str) -> int:
    return main(["build", "--plan", str(plan), "-o", str(output), *more])


def test_failed_kernel_does_not_stop_the_plan(
    tmp_path: Path, plan_defaults: str, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = write_plan(
        tmp_path,
        plan_defaults
        + '[[kernel]]\nname = "broken"\nset = ["CONFIG_NO_SUCH_OPTION=y"]\n'
        + '[[kernel]]\nname = "good"\nset = ["CONFIG_PARENT=y"]\n',
    )
    output = tmp_path / "out"

    code = run_plan_command(plan, output)

    assert code == ExitCode.UNMET
    kernels = json.loads((output / "plan.json").read_text())["kernels"]
    assert [(k["name"], k["status"]) for k in kernels] == [
        ("broken", "unmet"),
        ("good", "built"),
    ]
    assert kernels[0]["artifact"] is None
    assert "CONFIG_NO_SUCH_OPTION" in kernels[0]["error"]
    assert kernels[1]["artifact"] == str(output / "good" / "vmlinux")
    assert (output / "good" / "vmlinux").is_file()
    assert not (output / "broken" / "vmlinux").exists()
    table = capsys.readouterr().err
    assert "broken" in table
    assert "unmet" in table
    assert f"{output / 'good' / 'vmlinux'}" in table


def test_plan_goes_on_after_a_failed_build(tmp_path: Path, plan_defaults: str) -> None:
    plan = write_plan(
        tmp_path,
        plan_defaults
        + '[[kernel]]\nname = "broken"\nset = ["CONFIG_FAIL_BUILD=y"]\n'
        + '[[kernel]]\nname = "good"\n',
    )
    output = tmp_path / "out"

    code = run_plan_command(plan, output)

    assert code == ExitCode.BUILD
    kernels = json.loads((output / "plan.json").read_text())["kernels"]
    assert [k["status"] for k in kernels] == ["failed", "built"]
    assert "fake compile error" in kernels[0]["error"]


@pytest.mark.parametrize(
    ("kernel", "message"),
    [
        ('source = "/nowhere/linux.tar.xz"', "source not found: /nowhere/linux.tar.xz"),
        ('base = "microvm-kernel-ci-x86_64-9.9.config"', "unknown Firecracker base"),
        ('arch = "x86_64"\nversion = "6.12"', "microvm-kernel-ci-x86_64-6.12.config"),
    ],
)
def test_plan_checks_local_inputs_before_any_build(
    tmp_path: Path,
    plan_defaults: str,
    kernel: str,
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    defaults = plan_defaults.replace(f'base = "{tmp_path}/base.config"\n', "")
    plan = write_plan(
        tmp_path,
        defaults + '[[kernel]]\nname = "good"\n'
        f'base = "{tmp_path}/base.config"\n'
        f'[[kernel]]\nname = "bad"\n{kernel}\n',
    )
    output = tmp_path / "out"

    code = run_plan_command(plan, output)

    assert code == ExitCode.INPUT
    assert message in capsys.readouterr().err
    assert not (output / "good").exists()


def test_second_run_of_a_plan_is_cached(
    tmp_path: Path, plan_defaults: str, fake_tree: Path
) -> None:
    # Only a tarball or git source has the content key the artifact cache needs.
    tarball = tmp_path / "linux-6.1.99.tar.gz"
    with tarfile.open(tarball, "w:gz") as archive:
        archive.add(fake_tree, arcname="linux-6.1.99")
    kernel = f'[[kernel]]\nname = "one"\nsource = "{tarball}"\n'
    plan = write_plan(tmp_path, plan_defaults + kernel)
    output = tmp_path / "out"
    assert run_plan_command(plan, output) == 0

    code = run_plan_command(plan, output)

    kernels = json.loads((output / "plan.json").read_text())["kernels"]
    assert code == 0
    assert kernels[0]["status"] == "cached"


def test_plan_fragments_are_relative_to_the_plan(
    tmp_path: Path, plan_defaults: str
) -> None:
    folder = tmp_path / "plans"
    folder.mkdir()
    (folder / "extra.config").write_text("CONFIG_PARENT=y\n")
    plan = write_plan(
        folder,
        plan_defaults + '[[kernel]]\nname = "one"\nfragments = ["extra.config"]\n',
    )
    output = tmp_path / "out"

    assert run_plan_command(plan, output) == 0

    config = (output / "one" / "config").read_text()
    assert "CONFIG_PARENT=y" in config.splitlines()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[kernel]]\nname = "a"\ncolour = "red"\n', "kernel 1: unknown key 'colour'"),
        ('[[kernel]]\narch = "x86_64"\n', "kernel 1 has no name"),
        ('[[kernel]]\nname = "../up"\n', "name '../up' is not a folder name"),
        ('[[kernel]]\nname = "plan.json"\n', "'plan.json' is not a folder name"),
        ('[[kernel]]\nname = "a"\n[[kernel]]\nname = "a"\n', "'a' is used twice"),
        ('[[kernel]]\nname = "a"\nset = "CONFIG_X=y"\n', "set must be a list"),
        ('[[kernel]]\nname = "a"\narch = "sparc"\n', "(a): unknown arch 'sparc'"),
        ("[[kernel]\n", "invalid TOML"),
        ('[[kernels]]\nname = "a"\n', "unknown table 'kernels'"),
        ("", "no [[kernel]] tables"),
    ],
)
def test_bad_plan_fails_before_any_build(
    tmp_path: Path,
    text: str,
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    plan = write_plan(tmp_path, text)
    output = tmp_path / "out"

    code = run_plan_command(plan, output)

    assert code == ExitCode.INPUT
    assert message in capsys.readouterr().err
    assert not output.exists()


def test_plan_keeps_a_users_plan_json(
    tmp_path: Path, plan_defaults: str, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "out"
    output.mkdir()
    (output / "plan.json").write_text('{"mine": true}\n')
    plan = write_plan(tmp_path, plan_defaults + '[[kernel]]\nname = "one"\n')

    code = run_plan_command(plan, output)

    assert code == ExitCode.INPUT
    assert f"{output / 'plan.json'} exists and fckernel did not write it" in (
        capsys.readouterr().err
    )
    assert (output / "plan.json").read_text() == '{"mine": true}\n'
    assert not (output / "one").exists()


def test_plan_refuses_per_kernel_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = write_plan(tmp_path, '[[kernel]]\nname = "a"\n')

    code = run_plan_command(plan, tmp_path / "out", "--set", "CONFIG_X=y")

    assert code == ExitCode.INPUT
    assert "--set does not go with --plan" in capsys.readouterr().err


def test_missing_plan_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run_plan_command(tmp_path / "nothing.toml", tmp_path / "out")

    assert code == ExitCode.INPUT
    assert f"plan {tmp_path / 'nothing.toml'} not found" in capsys.readouterr().err


def test_version_names_the_firecracker_config(tmp_path: Path) -> None:
    from fckernel.build import Job
    from fckernel.plan import load_plan

    plan = write_plan(
        tmp_path, '[[kernel]]\nname = "arm"\narch = "arm64"\nversion = "6.18"\n'
    )

    planned = load_plan(plan, tmp_path / "out", Job)

    assert planned[0].job.base == "microvm-kernel-ci-aarch64-6.18.config"
    assert planned[0].job.output == tmp_path / "out" / "arm"


def test_interrupt_stops_the_plan(tmp_path: Path, plan_defaults: str) -> None:
    plan = write_plan(
        tmp_path,
        plan_defaults
        + '[[kernel]]\nname = "slow"\nset = ["CONFIG_SLOW_BUILD=y"]\n'
        + '[[kernel]]\nname = "never"\n',
    )
    output = tmp_path / "out"
    process = subprocess.Popen(
        fckernel_command("build", "--plan", str(plan), "-o", str(output)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    build_folders = Path(os.environ["FCKERNEL_CACHE"]) / "build"
    wait_for_file(next(iter(_poll_folders(build_folders))) / "sleep.pid")

    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)

    assert process.returncode == ExitCode.INTERRUPTED
    assert "Traceback" not in err
    kernels = json.loads((output / "plan.json").read_text())["kernels"]
    assert [(k["name"], k["status"]) for k in kernels] == [("slow", "interrupted")]
    assert "not started: 1 of 2 kernels" in err
    assert not (output / "never").exists()


def _poll_folders(folder: Path) -> list[Path]:
    for _ in range(300):
        if folder.is_dir() and any(folder.iterdir()):
            return list(folder.iterdir())
        time.sleep(0.1)
    raise AssertionError(f"nothing appeared in {folder}")
