from __future__ import annotations

import json
from pathlib import Path

import pytest

from fckernel.cli import main
from fckernel.diff import diff_configs, load_for_diff
from fckernel.dotconfig import parse_config
from fckernel.errors import InputError

A = """\
# header comment
CONFIG_KEEP=y
CONFIG_GONE=y
CONFIG_MOD=m
# CONFIG_OFF is not set
CONFIG_NAME="a"
"""
B = """\
CONFIG_KEEP=y
CONFIG_MOD=y
CONFIG_NEW=y
CONFIG_NAME="b"
"""


def test_added_removed_changed() -> None:
    result = diff_configs(parse_config(A), parse_config(B))
    assert result.added == {"NEW": "y"}
    assert result.removed == {"GONE": "y"}
    assert result.changed == {"MOD": ("m", "y"), "NAME": ('"a"', '"b"')}


def test_not_set_equals_absent() -> None:
    result = diff_configs(parse_config("# CONFIG_X is not set\n"), parse_config(""))
    assert result.is_empty()


def test_limited_to_symbols() -> None:
    result = diff_configs(parse_config(A), parse_config(B), only={"MOD"})
    assert result.lines() == ["~ CONFIG_MOD: m -> y"]


def test_output_folder_gives_requests(tmp_path: Path) -> None:
    (tmp_path / "config").write_text(B)
    (tmp_path / "report.json").write_text(
        json.dumps({"tool": "fckernel", "requests": [{"symbol": "NEW"}]})
    )
    config, requested = load_for_diff(tmp_path)
    assert config.get("NEW") == "y"
    assert requested == {"NEW"}


def test_folder_without_config(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="has no config file"):
        load_for_diff(tmp_path)


def test_cli_diff(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.config").write_text(A)
    (tmp_path / "b.config").write_text(B)
    assert main(["diff", str(tmp_path / "a.config"), str(tmp_path / "b.config")]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "- CONFIG_GONE=y",
        "~ CONFIG_MOD: m -> y",
        '~ CONFIG_NAME: "a" -> "b"',
        "+ CONFIG_NEW=y",
    ]
