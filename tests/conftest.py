"""Shared fixtures: Firecracker's configs, a fake kernel tree, the real trees, and
one real build of the default job per test run.
"""

from __future__ import annotations

import http.server
import os
import shutil
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from fckernel.build import Job, run_job

REPO = Path(__file__).resolve().parent.parent
FAKE_KERNEL = Path(__file__).resolve().parent / "fakekernel"
LINUX_61 = Path("/usr/src/linux-source-6.1.tar.xz")
LINUX_612 = Path("/usr/src/linux-source-6.12.tar.xz")

FAKE_BASE = """\
CONFIG_X86_64=y
# CONFIG_MODULES is not set
# CONFIG_PARENT is not set
CONFIG_PLAIN=y
CONFIG_NAME="base"
CONFIG_COUNT=1
CONFIG_ADDRESS=0x10
CONFIG_AMAZON_ONLY=y
"""


def shared_dir() -> Path:
    """Return the offline copy of Firecracker's files that the tests read."""
    configured = os.environ.get("FCKERNEL_SHARED")
    return Path(configured) if configured else REPO.parent / "shared"


def firecracker_configs() -> Path:
    folder = shared_dir() / "firecracker" / "guest_configs"
    if not folder.is_dir():
        pytest.fail(f"Firecracker configs not found at {folder}; set FCKERNEL_SHARED")
    return folder


@pytest.fixture(autouse=True)
def _offline_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    monkeypatch.setenv("FCKERNEL_FIRECRACKER_MIRROR", str(firecracker_configs()))
    monkeypatch.setenv("FCKERNEL_CACHE", str(tmp_path_factory.mktemp("cache")))
    for name in ("ARCH", "CROSS_COMPILE", "O", "KBUILD_OUTPUT", "KCONFIG_CONFIG"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fake_tree(tmp_path: Path) -> Path:
    """A copy of the fake kernel tree, so no test can change the original."""
    tree = tmp_path / "linux-fake"
    shutil.copytree(FAKE_KERNEL, tree)
    return tree


@pytest.fixture
def fake_base(tmp_path: Path) -> Path:
    path = tmp_path / "base.config"
    path.write_text(FAKE_BASE)
    return path


@pytest.fixture
def fake_job(fake_tree: Path, fake_base: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Return a function that makes a Job on the fake tree with overrides."""

    def make(**overrides: object) -> Job:
        fields: dict[str, object] = {
            "output": tmp_path / "out",
            "base": str(fake_base),
            "source": str(fake_tree),
            "default_features": False,
            "arch": "x86_64",
        }
        fields.update(overrides)
        return Job(**fields)  # type: ignore[arg-type]

    return make


def fake_build_args(tree: Path, base: Path, output: Path) -> list[str]:
    """Return the options of a build on the fake tree without default features."""
    return [
        "--source",
        str(tree),
        "--base",
        str(base),
        "--no-default-features",
        "-o",
        str(output),
    ]


def fckernel_command(*args: str) -> list[str]:
    """Return the command line that runs fckernel in a separate process."""
    return [sys.executable, "-m", "fckernel", *args]


def require(path: Path) -> Path:
    if not path.is_file():
        pytest.fail(f"{path} is missing; run scripts/setup to install it")
    return path


@pytest.fixture(scope="session")
def real_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache shared by the tests on real trees, so each tarball unpacks once.

    FCKERNEL_TEST_CACHE keeps it across runs (the default build then compiles
    incrementally); by default it is new for each run, as in CI.
    """
    kept = os.environ.get("FCKERNEL_TEST_CACHE")
    if kept:
        Path(kept).mkdir(parents=True, exist_ok=True)
        return Path(kept)
    return tmp_path_factory.mktemp("real-cache")


@pytest.fixture
def real_env(real_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FCKERNEL_CACHE", str(real_cache))
    return real_cache


@pytest.fixture(scope="session")
def default_build(
    real_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """Build the default job for real, once per run: 6.1 source, Firecracker's
    6.1 x86_64 config, the default features. Yields the output folder.
    """
    require(LINUX_61)
    output = tmp_path_factory.mktemp("default-build") / "out"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FCKERNEL_CACHE", str(real_cache))
        patch.setenv("FCKERNEL_FIRECRACKER_MIRROR", str(firecracker_configs()))
        run_job(Job(output=output, source=str(LINUX_61), arch="x86_64"))
    yield output


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """Serve a folder on a loopback HTTP server; yields (base URL, folder)."""
    root = tmp_path / "www"
    root.mkdir()

    def handler(*args: object, **kwargs: object) -> _QuietHandler:
        return _QuietHandler(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()
