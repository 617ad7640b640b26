"""The artifact cache, ccache wiring, pruning and locking, on the fake tree."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from fckernel.artifacts import KeyInputs, lookup
from fckernel.build import Job, run_job
from fckernel.cache import TEMP_PREFIX, Cache
from fckernel.cli import main
from fckernel.errors import InputError
from fckernel.prune import list_entries, parse_size, prune

from .conftest import fake_build_args, fckernel_command

MakeJob = Callable[..., Job]


@pytest.fixture
def tar_job(fake_job: MakeJob, fake_tree: Path, tmp_path: Path) -> MakeJob:
    """Make jobs on a tarball of the fake tree: only tarball and git sources
    have a content key, so only they use the artifact cache.
    """
    tarball = tmp_path / "linux-6.1.99.tar.gz"
    with tarfile.open(tarball, "w:gz") as archive:
        archive.add(fake_tree, arcname="linux-6.1.99")

    def make(**overrides: object) -> Job:
        return fake_job(**{"source": str(tarball), **overrides})

    return make


KEY = KeyInputs(
    source_key="abc",
    config_text="CONFIG_A=y\n",
    arch="x86_64",
    toolchain={"cc": "gcc 12", "ld": "ld 2.40", "make": "make 4.3"},
    make_variables=("ARCH=x86", "vmlinux"),
)


@pytest.mark.parametrize(
    "change",
    [
        {"source_key": "abd"},
        {"config_text": "CONFIG_A=m\n"},
        {"arch": "aarch64"},
        {"toolchain": {"cc": "gcc 13", "ld": "ld 2.40", "make": "make 4.3"}},
        {"toolchain": {"cc": "gcc 12", "ld": "ld 2.41", "make": "make 4.3"}},
        {"make_variables": ("ARCH=x86", "CROSS_COMPILE=x-", "vmlinux")},
    ],
)
def test_each_input_changes_key(change: dict[str, object]) -> None:
    assert dataclasses.replace(KEY, **change).key() != KEY.key()  # type: ignore[arg-type]


def test_same_inputs_same_key() -> None:
    assert dataclasses.replace(KEY).key() == KEY.key()


def test_output_path_does_not_change_key(tar_job: MakeJob, tmp_path: Path) -> None:
    first = run_job(tar_job(output=tmp_path / "one"))
    second = run_job(tar_job(output=tmp_path / "two"))
    assert first.build["artifact_key"] == second.build["artifact_key"]


def test_second_build_is_cached(tar_job: MakeJob) -> None:
    first = run_job(tar_job())
    second = run_job(tar_job())
    assert first.build["cached"] is False
    assert second.build["cached"] is True
    assert "compile" not in second.timings
    assert second.artifacts == first.artifacts


def test_rebuild_compiles_again(tar_job: MakeJob) -> None:
    run_job(tar_job())
    report = run_job(tar_job(rebuild=True))
    assert report.build["cached"] is False
    assert "compile" in report.timings


def test_changed_option_misses(tar_job: MakeJob) -> None:
    first = run_job(tar_job())
    second = run_job(tar_job(sets=["CONFIG_PLAIN=n"]))
    assert second.build["cached"] is False
    assert second.build["artifact_key"] != first.build["artifact_key"]


def test_folder_source_never_cached(fake_job: MakeJob, fake_tree: Path) -> None:
    run_job(fake_job())
    (fake_tree / "fake_vmlinux.sh").write_text(
        (fake_tree / "fake_vmlinux.sh").read_text().replace("/bin/true", "/bin/false")
    )
    job = fake_job()
    report = run_job(job)
    assert report.build["cached"] is False
    assert (job.output / "vmlinux").read_bytes() == Path("/bin/false").read_bytes()


def test_half_written_entry_ignored_and_repaired(tar_job: MakeJob) -> None:
    first = run_job(tar_job())
    key = first.build["artifact_key"]
    cache = Cache()
    entry = cache.root / "artifacts" / key
    (entry / "entry.json").unlink()  # as if the writer died before finishing
    (entry / "vmlinux").write_bytes(b"\x7fELF truncated")
    leftover = cache.root / "artifacts" / f"{TEMP_PREFIX}crashed"
    leftover.mkdir()
    assert lookup(cache, key, "vmlinux") is None

    second = run_job(tar_job())
    assert second.build["cached"] is False
    assert second.artifacts == first.artifacts
    assert lookup(cache, key, "vmlinux") is not None
    assert not leftover.exists()


def test_prune_keep_and_max_size(tar_job: MakeJob) -> None:
    run_job(tar_job())
    run_job(tar_job(sets=["CONFIG_PLAIN=n"]))
    cache = Cache()
    artifacts = [e for e in list_entries(cache) if e.kind == "artifacts"]
    assert len(artifacts) == 2

    removed = prune(cache, keep=1)
    assert [e.path for e in removed if e.kind == "artifacts"] == [artifacts[1].path]
    assert artifacts[0].path.exists()

    prune(cache, max_size=0)
    assert list_entries(cache) == []


def test_prune_skips_locked_entry(tar_job: MakeJob) -> None:
    report = run_job(tar_job())
    cache = Cache()
    build_dir = Path(report.build["folder"])
    with cache.lock(build_dir.name):
        removed = prune(cache, max_size=0)
    assert build_dir.exists()
    assert build_dir not in [e.path for e in removed]


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("500M", 500 << 20),
        ("20G", 20 << 30),
        ("1.5GiB", int(1.5 * (1 << 30))),
        ("7", 7),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_parse_size_invalid() -> None:
    with pytest.raises(InputError, match="is not a size"):
        parse_size("lots")


def test_cli_cache_list_and_prune(
    tar_job: MakeJob, capsys: pytest.CaptureFixture[str]
) -> None:
    run_job(tar_job())
    assert main(["cache", "list"]) == 0
    assert "artifacts" in capsys.readouterr().out
    assert main(["cache", "prune"]) == 1
    assert main(["cache", "prune", "--keep", "0"]) == 0
    assert "removed artifacts/" in capsys.readouterr().out


def test_two_concurrent_builds_share_cache(
    fake_tree: Path, fake_base: Path, tmp_path: Path
) -> None:
    def start(output: str, *extra: str) -> subprocess.Popen[str]:
        args = fake_build_args(fake_tree, fake_base, tmp_path / output)
        command = fckernel_command("build", *args, *extra)
        env = {**os.environ, "FAKE_SLEEP": "3"}
        return subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)

    slow = start("one", "--set", "CONFIG_SLOW_BUILD=y")
    time.sleep(1.5)
    other = start("two", "--set", "CONFIG_PLAIN=n")
    _, slow_err = slow.communicate(timeout=60)
    _, other_err = other.communicate(timeout=60)

    assert slow.returncode == 0, slow_err
    assert other.returncode == 0, other_err
    assert "waiting for another fckernel" in other_err
    one = json.loads((tmp_path / "one" / "report.json").read_text())
    two = json.loads((tmp_path / "two" / "report.json").read_text())
    assert {r["symbol"]: r["final"] for r in one["requests"]} == {"SLOW_BUILD": "y"}
    assert {r["symbol"]: r["final"] for r in two["requests"]} == {"PLAIN": "n"}


def test_build_folder_of_a_moved_source_is_listed_and_pruned(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    build = cache.folder("build", "gone-x86_64")
    (build / "vmlinux.o").write_bytes(bytes(4096))
    # Kbuild leaves this link to the tree, which dangles once the tree is gone.
    (build / "source").symlink_to(tmp_path / "deleted-tree")

    entries = list_entries(cache)

    assert [(e.kind, e.path) for e in entries] == [("build", build)]
    assert entries[0].size >= 4096
    assert [e.path for e in prune(cache, max_size=0)] == [build]
    assert not build.exists()


def test_build_variables_change_the_key(
    tar_job: MakeJob, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = run_job(tar_job())
    monkeypatch.setenv("LOCALVERSION", "-custom")

    second = run_job(tar_job())

    assert second.build["cached"] is False
    assert second.build["artifact_key"] != first.build["artifact_key"]


def test_corrupt_cached_image_is_rebuilt(tar_job: MakeJob) -> None:
    first = run_job(tar_job())
    key = first.build["artifact_key"]
    cache = Cache(Path(os.environ["FCKERNEL_CACHE"]))
    cached_image = cache.root / "artifacts" / key / "vmlinux"
    cached_image.write_bytes(cached_image.read_bytes()[:100])

    second = run_job(tar_job())

    assert second.build["cached"] is False
    assert second.artifacts == first.artifacts
    assert run_job(tar_job()).build["cached"] is True


def test_using_a_source_refreshes_its_last_use(tar_job: MakeJob) -> None:
    run_job(tar_job())
    cache = Cache(Path(os.environ["FCKERNEL_CACHE"]))
    (source,) = [e for e in list_entries(cache) if e.kind == "sources"]
    os.utime(source.path / ".fckernel-source.json", (1, 1))
    os.utime(source.path, (1, 1))

    run_job(tar_job(sets=["CONFIG_PLAIN=n"]))

    (again,) = [e for e in list_entries(cache) if e.kind == "sources"]
    assert again.used > 1_000_000


def test_userland_folders_are_cache_entries(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    unpacked = cache.folder("userland", "arm64-0123456789abcdef")
    (unpacked / "busybox").write_bytes(bytes(100))

    assert [(e.kind, e.path) for e in list_entries(cache)] == [("userland", unpacked)]
    assert [e.path for e in prune(cache, keep=0)] == [unpacked]
