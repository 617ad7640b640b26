"""Bad input and faults: one clear message, nothing of the user's lost."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from fckernel.build import Job, run_job
from fckernel.cli import main
from fckernel.dotconfig import parse_config
from fckernel.errors import BuildError, ExitCode, InputError, host_error_from
from fckernel.features import load_feature_file, select_features
from fckernel.output import Output
from fckernel.prune import parse_size

from .conftest import fake_build_args

MakeJob = Callable[..., Job]


def test_hidden_user_file_in_output_kept(fake_job: MakeJob) -> None:
    job = fake_job()
    job.output.mkdir()
    (job.output / ".tmp-notes").write_text("mine")
    with pytest.raises(InputError, match="contains files fckernel did not write"):
        run_job(job)
    assert (job.output / ".tmp-notes").read_text() == "mine"


def test_early_failure_prints_no_old_report(
    fake_tree: Path,
    fake_base: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    args = fake_build_args(fake_tree, fake_base, tmp_path / "o")
    assert main(["build", *args, "--set", "CONFIG_PLAIN=y"]) == 0
    capsys.readouterr()
    monkeypatch.setenv("ARCH", "arm64")
    assert main(["build", *args, "--json", "--set", "CONFIG_PLAIN=n"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "environment variable ARCH is set" in captured.err


def test_failure_before_configure_keeps_output(
    fake_job: MakeJob, tmp_path: Path
) -> None:
    good = fake_job()
    run_job(good)
    before = {p.name: p.read_bytes() for p in good.output.iterdir()}
    with pytest.raises(InputError, match="no such file or folder"):
        run_job(fake_job(source=str(tmp_path / "missing")))
    assert {p.name: p.read_bytes() for p in good.output.iterdir()} == before


def test_unwritable_cache_is_one_line(
    fake_tree: Path,
    fake_base: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("FCKERNEL_CACHE", str(blocker / "cache"))
    code = main(["config", *fake_build_args(fake_tree, fake_base, tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == ExitCode.HOST
    assert "Traceback" not in err
    assert str(blocker) in err


@pytest.mark.parametrize(
    ("number", "message"),
    [
        (errno.ENOSPC, "the disk is full: cannot write /o/vmlinux"),
        (errno.EACCES, "permission denied: cannot write /o/vmlinux"),
        (errno.EROFS, "permission denied: cannot write /o/vmlinux"),
    ],
)
def test_file_errors_named(number: int, message: str) -> None:
    error = host_error_from(OSError(number, os.strerror(number), "/o/vmlinux"))
    assert error.message == message
    assert error.exit_code == ExitCode.HOST


def test_markup_in_values_printed_plainly(
    fake_tree: Path, fake_base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = fake_build_args(fake_tree, fake_base, tmp_path / "o")
    assert main(["config", *args, "--set", 'CONFIG_NAME="[/]"']) == 0
    assert 'CONFIG_NAME="[/]"' in capsys.readouterr().err


def test_binary_feature_file(tmp_path: Path) -> None:
    path = tmp_path / "bin.toml"
    path.write_bytes(b"\x7fELF\xff\xfe")
    with pytest.raises(InputError, match="is not a text file"):
        load_feature_file(path)


def test_feature_option_cannot_inject_lines(tmp_path: Path) -> None:
    path = tmp_path / "evil.toml"
    path.write_text('[options]\n"PLAIN=y\\nCONFIG_FAIL_BUILD" = "y"\n')
    with pytest.raises(InputError, match="invalid option"):
        load_feature_file(path)


def test_feature_arches_must_be_list(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('arches = "x86_64"\n')
    with pytest.raises(InputError, match="arches must be a list"):
        load_feature_file(path)


def test_user_feature_file_replaces_builtin(tmp_path: Path) -> None:
    folder = tmp_path / "my"
    folder.mkdir()
    (folder / "iptables.toml").write_text('[options]\nVETH = "y"\n')
    features, _ = select_features(
        [str(folder / "iptables.toml")], with_defaults=True, arch="x86_64"
    )
    chosen = {f.name: f for f in features}
    assert chosen["iptables"].options == {"VETH": "y"}


def test_not_set_line_with_note_still_counts() -> None:
    config = parse_config("# CONFIG_PLAIN is not set (not needed)\n")
    assert config.get("PLAIN") == "n"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"base_sha256": "xyz"}, "is not a sha256 digest"),
        ({"base_sha256": "a" * 64}, "--base-sha256 applies only to a URL"),
        ({"source_sha256": "b" * 64}, "--source-sha256 applies only to a URL"),
        ({"arch": ""}, "--arch is empty"),
        ({"base": " "}, "--base is empty"),
        ({"allow_unmet": ["garbage=1"]}, "is not a symbol name"),
        ({"jobs": 0}, "must be 1 or more"),
    ],
)
def test_invalid_job_fields(
    fake_job: MakeJob, fields: dict[str, object], message: str
) -> None:
    with pytest.raises(InputError, match=message):
        fake_job(**fields)


def test_allow_unmet_not_requested_warns(fake_job: MakeJob) -> None:
    report = run_job(fake_job(allow_unmet=["CONFIG_OTHER"]))
    assert "--allow-unmet CONFIG_OTHER: nothing requests it" in report.warnings


def test_make_without_image_is_build_error(fake_job: MakeJob, fake_tree: Path) -> None:
    script = fake_tree / "fake_vmlinux.sh"
    script.write_text(script.read_text().replace('cp /bin/true "$out/vmlinux"', ""))
    with pytest.raises(BuildError, match="make finished but wrote no"):
        run_job(fake_job())


def test_base_arch_read_from_content(tmp_path: Path, fake_tree: Path) -> None:
    base = tmp_path / "base-arm.config"
    base.write_text("CONFIG_ARM64=y\n")
    job = Job(output=tmp_path / "o", base=str(base), source=str(fake_tree))
    assert job.resolved_arch().name == "aarch64"


def test_many_unknown_requests_capped(fake_job: MakeJob, tmp_path: Path) -> None:
    fragment = tmp_path / "many.config"
    fragment.write_text("".join(f"CONFIG_NOPE_{i}=y\n" for i in range(50)))
    with pytest.raises(Exception) as caught:
        run_job(fake_job(fragments=[fragment]))
    assert "and 40 more" in str(caught.value)
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    assert data["summary"]["unknown"] == 50


@pytest.mark.parametrize("text", ["", "5iB", "lots", "-1G"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(InputError):
        parse_size(text)


def test_set_string_without_quotes_suggests_quoting(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        Job(output=tmp_path / "out", sets=["CONFIG_NAME=foo bar"], arch="x86_64")

    assert caught.value.message == "--set #1: invalid value 'foo bar' for CONFIG_NAME"
    assert "protect its quotes from the shell: --set 'CONFIG_NAME=\"foo bar\"'" in str(
        caught.value.hint
    )


def test_failed_base_leaves_no_new_output_folder(
    tmp_path: Path, fake_tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "new-out"
    missing = "microvm-kernel-ci-x86_64-9.9.config"
    args = fake_build_args(fake_tree, tmp_path / "base.config", output)
    args[args.index("--base") + 1] = missing

    code = main(["config", *args])

    assert code == ExitCode.INPUT
    assert missing in capsys.readouterr().err
    assert not output.exists()


def test_failed_base_keeps_an_existing_empty_output_folder(
    tmp_path: Path, fake_tree: Path
) -> None:
    output = tmp_path / "mine"
    output.mkdir()
    args = fake_build_args(fake_tree, tmp_path / "base.config", output)
    args[args.index("--base") + 1] = "microvm-kernel-ci-x86_64-9.9.config"

    assert main(["config", *args]) == ExitCode.INPUT

    assert output.is_dir()


def test_output_folder_locked_across_caches(tmp_path: Path) -> None:
    first = Output(tmp_path / "out")
    first.stage()
    second = Output(tmp_path / "out")

    with pytest.raises(InputError, match="another fckernel with another cache"):
        second.stage()
    assert first.staging is not None
    assert first.staging.is_dir()

    first.discard()
    second.stage()
    second.discard()


def test_publish_drops_the_old_report_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = Output(tmp_path / "out")
    output.stage()
    assert output.staging is not None
    (output.staging / "config").write_text("CONFIG_A=y\n")
    output.publish('{"tool": "fckernel", "run": 1}\n')
    output.stage()
    assert output.staging is not None
    (output.staging / "config").write_text("CONFIG_A=n\n")

    def full_disk(self: Path, text: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(OSError):
        output.publish('{"tool": "fckernel", "run": 2}\n')
    monkeypatch.undo()
    output.discard()

    assert not (output.path / "report.json").exists()
    assert [p.name for p in output.path.iterdir()] == ["config"]


@pytest.mark.parametrize("kind", ["fifo", "device", "folder"])
def test_fragment_that_is_not_a_file(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "fragment"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    else:
        path = Path("/dev/zero")

    with pytest.raises(InputError) as caught:
        Job(output=tmp_path / "out", fragments=[path], arch="x86_64")

    assert caught.value.message == f"config file {path} is not a regular file"


def test_empty_output_is_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["config", "-o", "", "--no-default-features"])

    assert code == ExitCode.INPUT
    assert "output folder '.' is the current folder or empty" in (
        capsys.readouterr().err
    )


def test_unmet_module_request_suggests_y_for_bool_dependency(
    fake_job: MakeJob, tmp_path: Path
) -> None:
    base = tmp_path / "modules.config"
    base.write_text("CONFIG_X86_64=y\nCONFIG_MODULES=y\n# CONFIG_PARENT is not set\n")

    report = run_job(
        fake_job(base=str(base), sets=["CONFIG_CHILD=m"], allow_unmet=["CONFIG_CHILD"])
    )

    reason = report.outcomes[0].reason
    assert reason is not None
    assert "request CONFIG_PARENT=y" in reason
    assert "CONFIG_PARENT=m" not in reason


def test_explain_unknown_symbol_exits_with_input_error(
    fake_tree: Path, fake_base: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--source", str(fake_tree), "--base", str(fake_base), "--arch", "x86_64"]

    unknown = main(["explain", "CONFIG_PARENTT", *common])
    printed = capsys.readouterr().out
    known = main(["explain", "CONFIG_PARENT", *common])

    assert unknown == ExitCode.INPUT
    assert "CONFIG_PARENT" in printed
    assert known == ExitCode.OK


def test_folder_named_like_an_artifact_is_foreign(fake_job: MakeJob) -> None:
    job = fake_job()
    (job.output / "vmlinux").mkdir(parents=True)

    with pytest.raises(InputError, match="contains files fckernel did not write"):
        run_job(job)

    assert (job.output / "vmlinux").is_dir()


def test_unwritable_output_keeps_its_own_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = Output(tmp_path / "ro" / "out")

    def read_only(self: Path, *args: object, **kwargs: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "mkdir", read_only)
    with pytest.raises(OSError) as caught:
        output.stage()
    output.discard()

    assert caught.value.errno == errno.EROFS


def test_user_file_with_the_temp_prefix_is_kept(fake_job: MakeJob) -> None:
    run_job(fake_job())
    job = fake_job()
    mine = job.output / ".fckernel-tmp-mine"
    mine.write_text("mine")

    with pytest.raises(InputError, match="contains files fckernel did not write"):
        run_job(job)

    assert mine.read_text() == "mine"


def test_explain_with_an_output_folder_uses_its_tree(
    tmp_path: Path,
    fake_tree: Path,
    fake_base: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    output = tmp_path / "out"
    args = fake_build_args(fake_tree, fake_base, output)
    assert main(["config", *args, "--set", "CONFIG_PARENT=y", "--arch", "x86_64"]) == 0
    capsys.readouterr()

    code = main(["explain", "CONFIG_CHILD", "--config", str(output), "--json"])

    report = json.loads(capsys.readouterr().out)
    assert code == ExitCode.OK
    assert report["arch"] == "x86"
    assert report["definitions"][0].startswith("Kconfig:")
