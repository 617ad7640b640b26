"""The whole pipeline on the fake kernel tree: statuses, outputs, failures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from fckernel.build import Job, run_job
from fckernel.cache import TEMP_PREFIX
from fckernel.cli import main
from fckernel.errors import (
    BuildError,
    ExitCode,
    HostError,
    InputError,
    UnmetRequestsError,
)

from .conftest import fake_build_args, fckernel_command

MakeJob = Callable[..., Job]


def report_of(output: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((output / "report.json").read_text())


def statuses(output: Path) -> dict[str, str]:
    return {r["symbol"]: r["status"] for r in report_of(output)["requests"]}


def test_build_writes_outputs(fake_job: MakeJob) -> None:
    job = fake_job(sets=["CONFIG_PLAIN=n"])
    report = run_job(job)
    assert report.status == "ok"
    assert (job.output / "vmlinux").read_bytes()[:4] == b"\x7fELF"
    assert "# CONFIG_PLAIN is not set" in (job.output / "config").read_text()
    assert "CC      init/main.o" in (job.output / "build.log").read_text()
    data = report_of(job.output)
    assert data["artifacts"][0]["name"] == "vmlinux"
    assert data["artifacts"][0]["size"] == (job.output / "vmlinux").stat().st_size
    assert data["kernel_version"] == "6.1.99"
    assert set(data["timings"]) >= {"base", "source", "configure", "verify", "compile"}


def test_every_status_in_one_job(fake_job: MakeJob, tmp_path: Path) -> None:
    fragment = tmp_path / "extra.config"
    fragment.write_text("CONFIG_PARENT=y\nCONFIG_COUNT=1\n")
    job = fake_job(
        fragments=[fragment],
        sets=["CONFIG_PLAIN=m", "CONFIG_NF_NAT_IPV4=y", "CONFIG_CHILD=y"],
        allow_unmet=["CONFIG_NF_NAT_IPV4"],
    )
    run_job(job)
    assert statuses(job.output) == {
        "PARENT": "applied",
        "COUNT": "unchanged",
        "PLAIN": "promoted",
        "NF_NAT_IPV4": "unknown",
        "CHILD": "applied",
    }


def test_unmet_request_fails_after_writing_report(fake_job: MakeJob) -> None:
    job = fake_job(sets=["CONFIG_CHILD=y"])
    with pytest.raises(UnmetRequestsError) as caught:
        run_job(job)
    assert "CONFIG_CHILD" in caught.value.message
    data = report_of(job.output)
    assert data["status"] == "unmet"
    assert data["exit_code"] == ExitCode.UNMET
    assert statuses(job.output) == {"CHILD": "unmet"}
    assert not (job.output / "vmlinux").exists()


def test_base_unknown_symbols_are_warnings(fake_job: MakeJob) -> None:
    job = fake_job()
    run_job(job)
    assert report_of(job.output)["base_unknown_symbols"] == ["AMAZON_ONLY"]


def test_conflicting_user_inputs_reported(fake_job: MakeJob, tmp_path: Path) -> None:
    fragment = tmp_path / "a.config"
    fragment.write_text("CONFIG_PLAIN=y\n")
    job = fake_job(fragments=[fragment], sets=["CONFIG_PLAIN=n"])
    run_job(job)
    data = report_of(job.output)
    expected = f"CONFIG_PLAIN: --set #1 sets n, overriding y from fragment {fragment}:1"
    assert data["conflicts"] == [expected]
    assert expected in data["warnings"]
    assert statuses(job.output) == {"PLAIN": "applied"}


def test_repeat_within_fragment_reported(fake_job: MakeJob, tmp_path: Path) -> None:
    fragment = tmp_path / "a.config"
    fragment.write_text("CONFIG_PLAIN=y\nCONFIG_COUNT=1\nCONFIG_PLAIN=n\n")
    job = fake_job(fragments=[fragment])
    run_job(job)
    expected = (
        f"CONFIG_PLAIN: fragment {fragment}:3 sets n, overriding y from "
        f"fragment {fragment}:1"
    )
    warnings = report_of(job.output)["warnings"]
    assert [w for w in warnings if w.startswith("CONFIG_")] == [expected]
    assert statuses(job.output)["PLAIN"] == "applied"


def test_wrong_type_rejected_before_make(fake_job: MakeJob) -> None:
    job = fake_job(sets=["CONFIG_COUNT=0x10"])
    with pytest.raises(InputError, match="not a valid int value"):
        run_job(job)


def test_failed_make_keeps_no_image(fake_job: MakeJob) -> None:
    job = fake_job(sets=["CONFIG_FAIL_BUILD=y"])
    with pytest.raises(BuildError) as caught:
        run_job(job)
    assert "fake compile error" in caught.value.message
    assert "build.log" in str(caught.value.hint)
    assert report_of(job.output)["status"] == "failed"
    assert not (job.output / "vmlinux").exists()


def test_full_disk_during_make_is_reported_as_such(fake_job: MakeJob) -> None:
    job = fake_job(sets=["CONFIG_DISK_FULL_BUILD=y"])

    with pytest.raises(HostError) as caught:
        run_job(job)

    assert caught.value.exit_code == ExitCode.HOST
    assert caught.value.message.startswith("the disk filled up while compiling in ")
    assert "super.o.d: No space left on device" in caught.value.message
    assert "free some space" in str(caught.value.hint)
    assert not (job.output / "vmlinux").exists()


def test_failed_run_removes_stale_image(fake_job: MakeJob) -> None:
    run_job(fake_job())
    job = fake_job(sets=["CONFIG_FAIL_BUILD=y"])
    assert (job.output / "vmlinux").exists()
    with pytest.raises(BuildError):
        run_job(job)
    assert not (job.output / "vmlinux").exists()


def test_config_only_writes_no_image(fake_job: MakeJob) -> None:
    job = fake_job(compile=False)
    run_job(job)
    assert (job.output / "config").is_file()
    assert not (job.output / "vmlinux").exists()
    assert report_of(job.output)["command"] == "config"


def test_output_with_foreign_files_rejected(fake_job: MakeJob) -> None:
    job = fake_job()
    job.output.mkdir()
    (job.output / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="contains files fckernel did not write"):
        run_job(job)
    assert (job.output / "notes.txt").read_text() == "mine"


def test_build_folder_reused(fake_job: MakeJob) -> None:
    first = run_job(fake_job())
    second = run_job(fake_job(sets=["CONFIG_PLAIN=n"]))
    assert first.build["folder"] == second.build["folder"]


def test_arch_mismatch_with_base(fake_job: MakeJob) -> None:
    with pytest.raises(InputError, match="is for x86_64, but the job builds for"):
        run_job(fake_job(arch="aarch64"))


def test_forbidden_environment_variable(
    fake_job: MakeJob, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CROSS_COMPILE", "aarch64-linux-gnu-")
    with pytest.raises(InputError, match="environment variable CROSS_COMPILE is set"):
        run_job(fake_job())


def test_cli_exit_codes(
    fake_tree: Path, fake_base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = [
        "--source",
        str(fake_tree),
        "--base",
        str(fake_base),
        "--no-default-features",
        "--arch",
        "x86_64",
    ]
    out = str(tmp_path / "o")
    assert main(["config", *common, "-o", out]) == ExitCode.OK
    assert main(["config", *common, "-o", out, "--set", "CONFIG_CHILD=y"]) == 3
    assert main(["build", *common, "-o", out, "--set", "CONFIG_FAIL_BUILD=y"]) == 4
    assert main(["config", *common, "-o", out, "--set", "CHILD=maybe"]) == 1
    assert main(["config", *common, "-o", out, "--feature", "nope"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "E: --set #1: invalid value 'maybe' for CONFIG_CHILD" in err


def test_cli_json_report(
    fake_tree: Path, fake_base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "config",
            "--source",
            str(fake_tree),
            "--base",
            str(fake_base),
            "--no-default-features",
            "--set",
            "CONFIG_PARENT=y",
            "-o",
            str(tmp_path / "o"),
            "--json",
        ]
    )
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["requests"][0]["symbol"] == "PARENT"
    assert data["requests"][0]["status"] == "applied"


def test_cli_features_lists_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["features"]) == 0
    out = capsys.readouterr().out
    assert "iptables" in out
    assert "docker" in out


def test_interrupt_stops_make_and_keeps_previous_output(
    fake_tree: Path, fake_base: Path, tmp_path: Path
) -> None:
    output = tmp_path / "o"
    common = fckernel_command("build", *fake_build_args(fake_tree, fake_base, output))
    subprocess.run(common, check=True, capture_output=True)
    previous = (output / "report.json").read_text()

    process = subprocess.Popen(
        [*common, "--set", "CONFIG_SLOW_BUILD=y"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    pid_file = next(iter(Path(os.environ["FCKERNEL_CACHE"]).glob("build/*")))
    sleep_pid = wait_for_file(pid_file / "sleep.pid")
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)

    assert process.returncode == ExitCode.INTERRUPTED
    assert "interrupted" in err
    assert "Traceback" not in err
    assert not pid_alive(sleep_pid)
    assert (output / "report.json").read_text() == previous
    assert not [p for p in output.iterdir() if p.name.startswith(TEMP_PREFIX)]


def wait_for_file(path: Path) -> int:
    for _ in range(300):
        if path.is_file() and path.read_text().strip():
            return int(path.read_text())
        time.sleep(0.1)
    raise AssertionError(f"{path} never appeared")


def pid_alive(pid: int) -> bool:
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        time.sleep(0.1)
    return True


def test_unchanged_config_not_resolved_again(fake_job: MakeJob) -> None:
    run_job(fake_job())
    job = fake_job()
    run_job(job)
    assert "olddefconfig" not in (job.output / "build.log").read_text()
    assert (job.output / "config").is_file()

    changed = fake_job(sets=["CONFIG_PLAIN=n"])
    run_job(changed)
    assert "olddefconfig" in (changed.output / "build.log").read_text()
    assert "# CONFIG_PLAIN is not set" in (changed.output / "config").read_text()
