from __future__ import annotations

import pytest

from fckernel.dotconfig import parse_config
from fckernel.errors import InputError
from fckernel.kconfig import SymbolIndex
from fckernel.verify import (
    Request,
    Status,
    check_requests,
    check_types,
    follow_feature_renames,
    merge_requests,
    same_value,
    value_fits_type,
)

INDEX = SymbolIndex(
    types={
        "MODULES": "bool",
        "CHILD": "tristate",
        "PLAIN": "tristate",
        "LIMITED": "tristate",
        "NAME": "string",
        "COUNT": "int",
        "ADDRESS": "hex",
        "FLAG": "bool",
    }
)


def outcome_of(request: str, base: str, final: str, allowed: set[str] | None = None):  # type: ignore[no-untyped-def]
    symbol, value = request.split("=", 1)
    outcomes = check_requests(
        [Request(symbol, value, "--set")],
        parse_config(base),
        parse_config(final),
        INDEX,
        allowed or set(),
    )
    return outcomes[0]


def test_status_applied() -> None:
    outcome = outcome_of("PLAIN=y", "# CONFIG_PLAIN is not set", "CONFIG_PLAIN=y")
    assert outcome.status == Status.APPLIED
    assert outcome.base == "n"
    assert outcome.final == "y"


def test_status_unchanged() -> None:
    outcome = outcome_of("PLAIN=y", "CONFIG_PLAIN=y", "CONFIG_PLAIN=y")
    assert outcome.status == Status.UNCHANGED


def test_status_promoted_without_modules() -> None:
    outcome = outcome_of("PLAIN=m", "", "# CONFIG_MODULES is not set\nCONFIG_PLAIN=y")
    assert outcome.status == Status.PROMOTED
    assert "CONFIG_MODULES is not set" in outcome.reason
    assert not outcome.failed


def test_m_becoming_y_with_modules_is_unmet() -> None:
    outcome = outcome_of("LIMITED=m", "", "CONFIG_MODULES=y\nCONFIG_LIMITED=y")
    assert outcome.status == Status.UNMET
    assert "resolved CONFIG_LIMITED to y" in outcome.reason


def test_status_unmet_when_dropped() -> None:
    outcome = outcome_of("CHILD=y", "", "")
    assert outcome.status == Status.UNMET
    assert "dependencies are not met" in outcome.reason
    assert outcome.failed


def test_status_unknown() -> None:
    outcome = outcome_of("NF_NAT_IPV4=y", "", "")
    assert outcome.status == Status.UNKNOWN
    assert outcome.reason == "CONFIG_NF_NAT_IPV4 does not exist in this kernel"


def test_allowed_unmet_is_not_failed() -> None:
    outcome = outcome_of("CHILD=y", "", "", allowed={"CHILD"})
    assert outcome.status == Status.UNMET
    assert outcome.allowed
    assert not outcome.failed


def test_request_for_n_met_by_absence() -> None:
    outcome = outcome_of("CHILD=n", "CONFIG_CHILD=y", "")
    assert outcome.status == Status.APPLIED


def test_numbers_compare_by_value() -> None:
    assert same_value("0x010", "0x10")
    assert same_value("16", "16")
    assert not same_value('"a"', '"b"')


def test_merge_later_request_wins() -> None:
    merged, conflicts = merge_requests(
        [
            Request("A", "y", "feature x"),
            Request("B", "y", "feature x"),
            Request("A", "n", "fragment f.config:2"),
        ]
    )
    assert [(r.symbol, r.value) for r in merged] == [("A", "n"), ("B", "y")]
    assert len(conflicts) == 1
    assert conflicts[0].message() == (
        "CONFIG_A: fragment f.config:2 sets n, overriding y from feature x"
    )


def test_merge_same_value_is_no_conflict() -> None:
    _, conflicts = merge_requests(
        [Request("A", "y", "fragment a:1"), Request("A", "y", "--set")]
    )
    assert conflicts == []


def test_conflict_between_user_inputs_is_marked() -> None:
    _, conflicts = merge_requests(
        [Request("A", "y", "fragment a:1"), Request("A", "m", "--set")]
    )
    assert conflicts[0].winner.from_user
    assert conflicts[0].loser.from_user


@pytest.mark.parametrize(
    ("value", "kind", "fits"),
    [
        ("y", "bool", True),
        ("m", "bool", False),
        ("m", "tristate", True),
        ('"x"', "tristate", False),
        ('"x"', "string", True),
        ("12", "int", True),
        ("-3", "int", True),
        ("0x12", "int", False),
        ("0x1f", "hex", True),
        ("1f", "hex", False),
        ("12", "hex", False),
        ("n", "string", True),
    ],
)
def test_value_fits_type(value: str, kind: str, fits: bool) -> None:
    assert value_fits_type(value, kind) is fits


def test_check_types_names_origin_and_fix() -> None:
    with pytest.raises(InputError) as caught:
        check_types([Request("FLAG", '"yes"', "fragment my.config:4")], INDEX)
    assert str(caught.value) == (
        'fragment my.config:4: CONFIG_FLAG="yes" is not a valid bool value\n'
        "  hint: a bool takes y or n"
    )


def test_feature_requests_follow_known_renames() -> None:
    index = SymbolIndex(types={"AUTOFS_FS": "tristate", "PLAIN": "bool"})
    requests = [
        Request("AUTOFS4_FS", "y", "feature autofs"),
        Request("PLAIN", "y", "feature plain"),
    ]

    followed_requests, followed = follow_feature_renames(requests, index)

    assert followed_requests == [
        Request("AUTOFS_FS", "y", "feature autofs, for CONFIG_AUTOFS4_FS"),
        Request("PLAIN", "y", "feature plain"),
    ]
    assert followed[0].message() == (
        "feature autofs: CONFIG_AUTOFS4_FS was renamed in Linux 6.6; "
        "requested CONFIG_AUTOFS_FS=y instead"
    )


def test_user_requests_do_not_follow_renames() -> None:
    index = SymbolIndex(types={"AUTOFS_FS": "tristate"})
    requests = [Request("AUTOFS4_FS", "y", "--set")]

    assert follow_feature_renames(requests, index) == (requests, [])


def test_rename_keeps_the_users_request_for_the_new_symbol() -> None:
    index = SymbolIndex(types={"AUTOFS_FS": "tristate"})
    requests = [
        Request("AUTOFS4_FS", "y", "feature autofs"),
        Request("AUTOFS_FS", "n", "--set"),
    ]

    followed_requests, followed = follow_feature_renames(requests, index)

    assert followed_requests == [Request("AUTOFS_FS", "n", "--set")]
    assert followed[0].replacements == ()
