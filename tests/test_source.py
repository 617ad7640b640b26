"""Source kinds: tarball, folder, URL (against a local HTTP server), git."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import ssl
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest

from fckernel.cache import Cache
from fckernel.errors import FetchError, InputError
from fckernel.fetch import fetch
from fckernel.source import _prepare_tarball, prepare_source


def make_tarball(tree: Path, path: Path, top: str = "linux-6.1.99") -> Path:
    with tarfile.open(path, "w:gz") as archive:
        archive.add(tree, arcname=top)
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def cache(tmp_path: Path) -> Cache:
    return Cache(tmp_path / "cache")


@pytest.fixture
def tarball(fake_tree: Path, tmp_path: Path) -> Path:
    return make_tarball(fake_tree, tmp_path / "linux-6.1.99.tar.gz")


def test_tarball_unpacked_once(tarball: Path, cache: Cache) -> None:
    first = prepare_source(str(tarball), None, cache)
    assert first.kind == "tarball"
    assert first.version == "6.1.99"
    assert first.key == sha256(tarball)
    assert (first.path / "Kconfig").is_file()
    marker = first.path / "marker"
    marker.write_text("still here")
    second = prepare_source(str(tarball), None, cache)
    assert second.path == first.path
    assert marker.read_text() == "still here"


def test_corrupt_tarball(tarball: Path, cache: Cache) -> None:
    data = tarball.read_bytes()
    tarball.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cannot unpack"):
        prepare_source(str(tarball), None, cache)
    assert not [p for p in (cache.root / "sources").iterdir() if p.is_dir()]


def test_tarball_that_is_not_a_kernel(tmp_path: Path, cache: Cache) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "README").write_text("hello")
    archive = make_tarball(folder, tmp_path / "project.tar.gz", top="project")
    with pytest.raises(InputError) as caught:
        prepare_source(str(archive), None, cache)
    assert caught.value.message == (
        f"{archive} does not contain a Linux kernel tree: "
        "no Makefile with VERSION and PATCHLEVEL"
    )


@pytest.mark.parametrize("name", ["../escape", "/etc/evil"])
def test_tarball_with_unsafe_path_rejected(
    tmp_path: Path, cache: Cache, name: str
) -> None:
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as handle:
        info = tarfile.TarInfo(name)
        info.size = 4
        handle.addfile(info, io.BytesIO(b"evil"))
    with pytest.raises(InputError, match="cannot unpack"):
        prepare_source(str(archive), None, cache)
    assert not (tmp_path / "escape").exists()


def test_folder_source_used_in_place(fake_tree: Path, cache: Cache) -> None:
    source = prepare_source(str(fake_tree), None, cache)
    assert source.kind == "directory"
    assert source.path == fake_tree


def test_folder_built_in_place_rejected(fake_tree: Path, cache: Cache) -> None:
    (fake_tree / ".config").write_text("CONFIG_A=y\n")
    with pytest.raises(InputError, match="mrproper"):
        prepare_source(str(fake_tree), None, cache)


def test_missing_source_path(tmp_path: Path, cache: Cache) -> None:
    with pytest.raises(InputError, match="no such file or folder"):
        prepare_source(str(tmp_path / "linux.tar.xz"), None, cache)


def test_url_with_checksum(
    tarball: Path, cache: Cache, http_root: tuple[str, Path]
) -> None:
    base_url, root = http_root
    (root / tarball.name).write_bytes(tarball.read_bytes())
    source = prepare_source(
        f"{base_url}/{tarball.name}", None, cache, sha256=sha256(tarball)
    )
    assert source.kind == "url"
    assert source.version == "6.1.99"
    assert (cache.root / "downloads" / sha256(tarball)).is_file()


def test_url_wrong_checksum_caches_nothing(
    tarball: Path, cache: Cache, http_root: tuple[str, Path]
) -> None:
    base_url, root = http_root
    (root / tarball.name).write_bytes(tarball.read_bytes())
    with pytest.raises(FetchError, match="checksum mismatch"):
        prepare_source(f"{base_url}/{tarball.name}", None, cache, sha256="0" * 64)
    assert list((cache.root / "downloads").iterdir()) == []


def test_url_server_error(cache: Cache, http_root: tuple[str, Path]) -> None:
    base_url, _ = http_root
    with pytest.raises(FetchError, match="HTTP 404"):
        prepare_source(f"{base_url}/missing.tar.xz", None, cache, sha256="0" * 64)


def test_plain_http_without_checksum_rejected(cache: Cache) -> None:
    with pytest.raises(InputError, match="plain http without a checksum"):
        fetch("http://127.0.0.1:9/linux.tar.xz", cache)


def test_url_without_checksum_rejected(cache: Cache) -> None:
    with pytest.raises(InputError, match="no checksum to verify the download"):
        prepare_source("http://127.0.0.1:9/linux.tar.xz", None, cache)


def test_https_non_kernel_org_needs_checksum(cache: Cache) -> None:
    with pytest.raises(InputError, match="no checksum to verify"):
        prepare_source("https://example.invalid/linux.tar.xz", None, cache)


def test_kernel_org_mirror_checksum_list(
    tarball: Path,
    cache: Cache,
    http_root: tuple[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base_url, root = http_root
    folder = root / "v6.x"
    folder.mkdir()
    (folder / "linux-6.1.99.tar.xz").write_bytes(tarball.read_bytes())
    (folder / "sha256sums.asc").write_text(
        "-----BEGIN PGP SIGNED MESSAGE-----\n\n"
        f"{sha256(tarball)}  linux-6.1.99.tar.xz\n"
    )
    monkeypatch.setenv("FCKERNEL_KERNEL_ORG_MIRROR", base_url)
    source = prepare_source(f"{base_url}/v6.x/linux-6.1.99.tar.xz", None, cache)
    assert source.sha256 == sha256(tarball)


def test_default_source_from_pinned_release(
    tarball: Path,
    cache: Cache,
    http_root: tuple[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base_url, root = http_root
    folder = root / "v5.x"
    folder.mkdir()
    (folder / "linux-5.10.245.tar.xz").write_bytes(tarball.read_bytes())
    (folder / "sha256sums.asc").write_text(f"{'f' * 64}  linux-5.10.245.tar.xz\n")
    monkeypatch.setenv("FCKERNEL_KERNEL_ORG_MIRROR", base_url)
    with pytest.raises(FetchError, match="checksum mismatch"):
        prepare_source(None, "5.10", cache)


def test_default_source_prefers_cached_series(tarball: Path, cache: Cache) -> None:
    # As if an earlier default job had unpacked the distribution's tarball.
    _prepare_tarball(tarball, cache, "distribution", str(tarball))
    source = prepare_source(None, "6.1", cache)
    assert source.kind == "cache"
    assert source.version == "6.1.99"


def test_user_tarball_never_becomes_default(
    fake_tree: Path,
    tmp_path: Path,
    cache: Cache,
    http_root: tuple[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    makefile = fake_tree / "Makefile"
    makefile.write_text(
        makefile.read_text()
        .replace("PATCHLEVEL = 1", "PATCHLEVEL = 10")
        .replace("VERSION = 6", "VERSION = 5")
    )
    user_tarball = make_tarball(fake_tree, tmp_path / "patched.tar.gz")
    assert prepare_source(str(user_tarball), None, cache).series == "5.10"
    monkeypatch.setenv("FCKERNEL_KERNEL_ORG_MIRROR", http_root[0])
    with pytest.raises(FetchError, match="HTTP 404"):
        prepare_source(None, "5.10", cache)


def test_tarball_without_top_folder(
    fake_tree: Path, tmp_path: Path, cache: Cache
) -> None:
    flat = tmp_path / "flat.tar"
    with tarfile.open(flat, "w") as archive:
        for entry in fake_tree.iterdir():
            archive.add(entry, arcname=entry.name)
    first = prepare_source(str(flat), None, cache)
    second = prepare_source(str(flat), None, cache)
    assert (first.path / "Kconfig").is_file()
    assert second.path == first.path


def test_git_option_injection_rejected(cache: Cache) -> None:
    with pytest.raises(InputError, match="expected git\\+URL@REF"):
        prepare_source("git+--upload-pack=touch /tmp/x@main", None, cache)


def test_git_source(fake_tree: Path, cache: Cache) -> None:
    def git(*args: str) -> None:
        subprocess.run(
            ["git", "-C", str(fake_tree), *args], check=True, capture_output=True
        )

    git("init", "-q")
    git("-c", "user.name=t", "-c", "user.email=t@t", "add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "fake")
    git("tag", "v6.1.99")
    source = prepare_source(f"git+file://{fake_tree}@v6.1.99", None, cache)
    assert source.kind == "git"
    assert source.version == "6.1.99"
    assert source.key.startswith("git-")
    assert (source.path / "Kconfig").is_file()


def test_git_bad_ref(fake_tree: Path, cache: Cache) -> None:
    subprocess.run(["git", "-C", str(fake_tree), "init", "-q"], check=True)
    with pytest.raises(FetchError, match="git failed"):
        prepare_source(f"git+file://{fake_tree}@nope", None, cache)


def test_git_spec_without_ref(cache: Cache) -> None:
    with pytest.raises(InputError, match="expected git\\+URL@REF"):
        prepare_source("git+https://example.invalid/linux.git", None, cache)


def test_plain_http_mirror_off_this_machine_is_refused(
    cache: Cache, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The name never resolves: the refusal comes before any connection.
    mirror = "http://mirror.invalid/pub/linux/kernel"
    monkeypatch.setenv("FCKERNEL_KERNEL_ORG_MIRROR", mirror)

    with pytest.raises(InputError, match="sha256sums.asc") as caught:
        prepare_source(f"{mirror}/v6.x/linux-6.1.99.tar.xz", None, cache)

    assert "https" in str(caught.value)


def test_self_signed_https_server_is_named(tmp_path: Path, cache: Cache) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes"),
            *("-keyout", str(key), "-out", str(cert), "-days", "1"),
            *("-subj", "/CN=127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"https://127.0.0.1:{server.server_address[1]}/linux-6.1.99.tar.xz"
    try:
        with pytest.raises(FetchError) as caught:
            prepare_source(url, None, cache, "0" * 64)
    finally:
        server.shutdown()
        server.server_close()

    assert "the server's TLS certificate could not be verified" in caught.value.message


def test_damaged_source_entry_is_unpacked_again(tarball: Path, cache: Cache) -> None:
    first = prepare_source(str(tarball), None, cache)
    meta = cache.root / "sources" / first.key / ".fckernel-source.json"
    meta.write_text("{bad")

    again = prepare_source(str(tarball), None, cache)

    assert again.version == "6.1.99"
    assert json.loads(meta.read_text())["tree"]


def test_invalid_url_is_an_input_error(cache: Cache) -> None:
    with pytest.raises(InputError, match="invalid URL 'https://\\[::1/x.tar.xz'"):
        prepare_source("https://[::1/x.tar.xz", None, cache, "0" * 64)
