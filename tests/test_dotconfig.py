from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fckernel.dotconfig import (
    format_config,
    parse_assignment,
    parse_config,
    quote_string,
    read_config,
    unquote_string,
)
from fckernel.errors import InputError


def test_values_of_each_type() -> None:
    config = parse_config(
        'CONFIG_A=y\nCONFIG_B=m\nCONFIG_C=n\nCONFIG_D="text"\n'
        "CONFIG_E=-42\nCONFIG_F=0x1F\n"
    )
    assert config.values == {
        "A": "y",
        "B": "m",
        "C": "n",
        "D": '"text"',
        "E": "-42",
        "F": "0x1F",
    }


def test_not_set_comment_means_n() -> None:
    config = parse_config("# CONFIG_IP6_NF_IPTABLES is not set\n")
    assert config.get("IP6_NF_IPTABLES") == "n"


def test_other_comments_and_blanks_ignored() -> None:
    text = "#\n# Automatically generated file\n\n# CONFIG_KGDB=y\n   \nCONFIG_A=y\n"
    assert parse_config(text).values == {"A": "y"}


def test_string_with_escaped_quotes() -> None:
    config = parse_config('CONFIG_CMDLINE="console=ttyS0 say=\\"hi\\" \\\\"\n')
    value = config.get("CMDLINE")
    assert value is not None
    assert unquote_string(value) == 'console=ttyS0 say="hi" \\'


def test_quote_string_round_trip() -> None:
    text = 'a "b" \\c'
    assert unquote_string(quote_string(text)) == text


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("IP6_NF_IPTABLES=y", "missing CONFIG_ prefix"),
        ("CONFIG_A = y", "spaces around '='"),
        ("CONFIG_A", "missing '=VALUE'"),
        ("CONFIG_A=yes", "invalid value 'yes'"),
        ("CONFIG_A=y # built in", "invalid value 'y # built in'"),
        ('CONFIG_A="unterminated', "invalid value"),
        ("CONFIG_A=1f", "invalid value '1f'"),
        ("CONFIG_A=", "invalid value ''"),
        ("set CONFIG_A=y", "not a config line"),
    ],
)
def test_malformed_line_names_line_number(line: str, message: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_config(f"CONFIG_OK=y\n# comment\n{line}\n", "extra.config")
    assert str(caught.value).startswith("extra.config:3: ")
    assert message in str(caught.value)


def test_repeated_symbol_last_wins_and_is_recorded() -> None:
    config = parse_config("CONFIG_A=y\nCONFIG_B=y\nCONFIG_A=n\n")
    assert config.get("A") == "n"
    assert config.lines["A"] == 3
    assert config.repeats == [("A", "y", 1, "n", 3)]


def test_read_config_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="config file not found"):
        read_config(tmp_path / "nope.config")


def test_read_config_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "blob.config"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(InputError, match="is not a text file"):
        read_config(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("CONFIG_NET_SCH_FQ_CODEL=m", ("NET_SCH_FQ_CODEL", "m")),
        ("NET_SCH_FQ_CODEL=y", ("NET_SCH_FQ_CODEL", "y")),
        ('CONFIG_CMDLINE="a b"', ("CMDLINE", '"a b"')),
    ],
)
def test_parse_assignment_accepts(text: str, expected: tuple[str, str]) -> None:
    assert parse_assignment(text, "--set") == expected


def test_parse_assignment_rejects_comment() -> None:
    with pytest.raises(InputError, match="expected CONFIG_NAME=VALUE"):
        parse_assignment("# CONFIG_A is not set", "--set")


def test_format_writes_not_set_for_n() -> None:
    text = format_config([("A", "y"), ("B", "n"), ("C", '"x"')])
    assert text == 'CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C="x"\n'


symbols = st.from_regex(r"[A-Z][A-Z0-9_]{0,20}", fullmatch=True)
values = st.one_of(
    st.sampled_from(["y", "m", "n"]),
    st.integers(-(10**12), 10**12).map(str),
    st.integers(0, 2**64).map(hex),
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=30).map(
        quote_string
    ),
)


@given(st.lists(st.tuples(symbols, values), max_size=30))
def test_parse_write_parse_keeps_values(pairs: list[tuple[str, str]]) -> None:
    first = parse_config(format_config(pairs))
    second = parse_config(format_config(first.values.items()))
    assert second.values == first.values
    assert first.values == dict(pairs)


@given(st.text(max_size=400))
def test_any_text_parses_or_names_a_line(text: str) -> None:
    try:
        parse_config(text, "fuzz")
    except InputError as error:
        assert re.match(r"fuzz:\d+: ", error.message)
