from __future__ import annotations

from pathlib import Path

import pytest

from fckernel.errors import InputError
from fckernel.kconfig import scan_symbols


def write(root: Path, name: str, text: str) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_scan_follows_arch_source(fake_tree: Path) -> None:
    index = scan_symbols(fake_tree, "x86")
    assert index.types["X86_64"] == "bool"
    assert index.types["CHILD"] == "tristate"
    assert index.types["ADDRESS"] == "hex"
    assert index.locations["CHILD"] == "Kconfig:11"


def test_help_text_is_not_a_definition(fake_tree: Path) -> None:
    assert "NOT_A_SYMBOL" not in scan_symbols(fake_tree, "x86")


def test_other_arch_symbols_are_absent(fake_tree: Path) -> None:
    write(fake_tree, "arch/arm64/Kconfig", "config ARM64\n\tdef_bool y\n")
    assert "ARM64" not in scan_symbols(fake_tree, "x86")
    index = scan_symbols(fake_tree, "arm64")
    assert "ARM64" in index
    assert "X86_64" not in index


def test_rsource_osource_and_continuation(tmp_path: Path) -> None:
    write(tmp_path, "Kconfig", 'osource "missing/Kconfig"\nsource "sub/Kconfig"\n')
    write(
        tmp_path,
        "sub/Kconfig",
        'rsource "Kconfig.more"\nmenuconfig TOP\n\tbool "x" \\\n\t  if Y\n',
    )
    write(tmp_path, "sub/Kconfig.more", "config MORE\n\tint\n")
    index = scan_symbols(tmp_path, "x86")
    assert index.types == {"TOP": "bool", "MORE": "int"}
    assert index.files == 3


def test_missing_source_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "Kconfig", 'source "gone/Kconfig"\n')
    with pytest.raises(InputError, match="sourced Kconfig file 'gone/Kconfig'"):
        scan_symbols(tmp_path, "x86")


def test_not_a_tree(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="has no top-level Kconfig"):
        scan_symbols(tmp_path, "x86")
