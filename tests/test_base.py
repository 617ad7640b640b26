from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from fckernel.base import load_base
from fckernel.cache import Cache
from fckernel.errors import FetchError, InputError

from .conftest import firecracker_configs


@pytest.fixture
def cache(tmp_path: Path) -> Cache:
    return Cache(tmp_path / "cache")


def test_name_from_mirror(cache: Cache) -> None:
    base = load_base("microvm-kernel-ci-x86_64-6.1.config", cache)
    assert base.kind == "firecracker-mirror"
    assert base.series == "6.1"
    assert base.arch == "x86_64"
    assert base.config.get("MODULES") == "n"
    path = firecracker_configs() / "microvm-kernel-ci-x86_64-6.1.config"
    assert base.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_aarch64_name_detects_arch(cache: Cache) -> None:
    base = load_base("microvm-kernel-ci-aarch64-6.18.config", cache)
    assert base.arch == "aarch64"
    assert base.series == "6.18"


def test_unknown_name_in_mirror(cache: Cache) -> None:
    with pytest.raises(InputError) as caught:
        load_base("microvm-kernel-ci-x86_64-9.9.config", cache)
    assert "not found in FCKERNEL_FIRECRACKER_MIRROR" in caught.value.message
    assert "microvm-kernel-ci-x86_64-6.1.config" in str(caught.value.hint)


def test_unknown_name_hint_sets_fragments_apart(cache: Cache) -> None:
    with pytest.raises(InputError) as caught:
        load_base("microvm-kernel-ci-x86_64-9.9.config", cache)

    hint = str(caught.value.hint)
    bases, fragments = hint.split(" (", 1)
    assert "ci.config" not in bases
    assert "Firecracker's fragments ci.config, debug.config" in fragments
    assert fragments.endswith("go with --fragment)")


@pytest.mark.parametrize("mirror", [True, False])
def test_fragment_name_is_not_a_base(
    cache: Cache, monkeypatch: pytest.MonkeyPatch, mirror: bool
) -> None:
    if not mirror:
        monkeypatch.delenv("FCKERNEL_FIRECRACKER_MIRROR")

    with pytest.raises(InputError) as caught:
        load_base("ci.config", cache)

    assert caught.value.message == (
        "ci.config is one of Firecracker's config fragments, which add a few "
        "options to a whole guest config; it cannot be the base"
    )
    assert "microvm-kernel-ci-x86_64-6.1.config" in str(caught.value.hint)
    assert "--fragment" in str(caught.value.hint)


def test_unknown_name_without_mirror(
    cache: Cache, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FCKERNEL_FIRECRACKER_MIRROR")
    with pytest.raises(InputError, match="unknown Firecracker base config"):
        load_base("microvm-kernel-ci-x86_64-9.9.config", cache)


def test_pinned_name_uses_verified_cache(
    cache: Cache, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FCKERNEL_FIRECRACKER_MIRROR")
    name = "microvm-kernel-ci-x86_64-6.1.config"
    data = (firecracker_configs() / name).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    (cache.folder("configs") / f"{digest}.config").write_bytes(data)
    base = load_base(name, cache)
    assert base.kind == "firecracker"
    assert "81b38b9dad6056d7a48073e95ac5a9aed51cb2ab" in base.location


def test_file_path(tmp_path: Path, cache: Cache) -> None:
    path = tmp_path / "mine.config"
    path.write_text("# Linux/x86_64 6.12.3 Kernel Configuration\nCONFIG_X86_64=y\n")
    base = load_base(str(path), cache)
    assert base.kind == "file"
    assert base.series == "6.12"


def test_missing_file(tmp_path: Path, cache: Cache) -> None:
    with pytest.raises(InputError, match="base config not found"):
        load_base(str(tmp_path / "nope.config"), cache)


def test_empty_file_rejected(tmp_path: Path, cache: Cache) -> None:
    path = tmp_path / "empty.config"
    path.write_text("# nothing\n")
    with pytest.raises(InputError, match="contains no CONFIG_ lines"):
        load_base(str(path), cache)


def test_url_with_checksum(
    cache: Cache,
    http_root: tuple[str, Path],
) -> None:
    base_url, root = http_root
    data = b"CONFIG_X86_64=y\nCONFIG_PCI=y\n"
    (root / "b.config").write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    base = load_base(f"{base_url}/b.config", cache, digest)
    assert base.kind == "url"
    assert base.config.get("PCI") == "y"
    with pytest.raises(FetchError, match="checksum mismatch"):
        load_base(f"{base_url}/b.config", Cache(cache.root / "other"), "1" * 64)


def test_edited_mirror_copy_is_rejected(
    tmp_path: Path, cache: Cache, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "microvm-kernel-ci-x86_64-6.1.config"
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    text = (firecracker_configs() / name).read_text()
    (mirror / name).write_text(text + "CONFIG_VETH=n\n")
    monkeypatch.setenv("FCKERNEL_FIRECRACKER_MIRROR", str(mirror))

    with pytest.raises(InputError, match="differs from Firecracker's") as caught:
        load_base(name, cache)

    assert "--base" in str(caught.value.hint)
