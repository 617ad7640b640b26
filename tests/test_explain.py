from __future__ import annotations

import pytest

from fckernel.explain import (
    Explanation,
    UnknownSymbol,
    describe_symbol,
    explain_request,
    explain_unknown,
    explain_unmet,
    format_symbol_report,
    load_renames,
    resolve_deps,
)
from fckernel.kconfig import KconfigTree, parse_tree

KCONFIG = """\
source "arch/$(SRCARCH)/Kconfig"

config MODULES
	bool "modules"
	modules

config EXPERT
	bool "expert"

config ADVANCED
	bool "advanced"

config XTABLES
	tristate "xtables"

if XTABLES

config MATCH_COMMENT
	tristate "comment match"
	depends on ADVANCED

endif

config CHAIN_TOP
	bool "top"
	depends on CHAIN_MIDDLE

config CHAIN_MIDDLE
	bool "middle"
	depends on CHAIN_BOTTOM

config CHAIN_BOTTOM
	bool "bottom"

config SERIO
	tristate "serio"

config SERIO_GSCPS2
	tristate "gsc ps/2"
	depends on GSC && SERIO

config SELECTOR
	bool "selector"
	select SELECTED

config SELECTED
	tristate "selected"

config LIMITED
	tristate "limited"
	depends on XTABLES

config EITHER
	bool "either"
	depends on FAR || NEAR

config FAR
	bool "far"
	depends on FAR_BASE

config FAR_BASE
	bool "far base"

config NEAR
	bool "near"

config NEEDS_HIDDEN
	bool "needs hidden"
	depends on HIDDEN

config HIDDEN
	bool
	default y if HIDDEN_SWITCH

config HIDDEN_SWITCH
	bool "hidden switch"

config NEEDS_STUCK
	bool "needs stuck"
	depends on STUCK

config STUCK
	bool

config SHY
	bool "shy" if EXPERT

config NEEDS_NOT
	bool "needs not"
	depends on !BLOCKER

config BLOCKER
	bool "blocker"

config COUNT
	int "count"
	range 1 8

config ARMISH
	bool "armish"
	depends on ARM || ARM64

config ONLY_MODULE
	tristate "only module"
	depends on m

choice
	prompt "Timer frequency"
	default HZ_250

config HZ_100
	bool "100 HZ"

config HZ_250
	bool "250 HZ"

endchoice
"""

PARISC = """\
config PARISC
	def_bool y

source "drivers/parisc/Kconfig"
"""

VALUES = {
    "MODULES": "y",
    "XTABLES": "y",
    "SELECTOR": "y",
    "SELECTED": "y",
    "SERIO": "y",
    "HZ_250": "y",
    "COUNT": "8",
    "BLOCKER": "y",
}


def at(line: str) -> str:
    """Return `Kconfig:N` for the first line of KCONFIG that is `line`."""
    number = KCONFIG.splitlines().index(line) + 1
    return f"Kconfig:{number}"


COMMENT_DEPENDS = at("\tdepends on ADVANCED")
SELECTS = at("\tselect SELECTED")


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> KconfigTree:
    root = tmp_path_factory.mktemp("tree")
    files = {
        "Kconfig": KCONFIG,
        "arch/x86/Kconfig": "config X86\n\tdef_bool y\n",
        "arch/parisc/Kconfig": PARISC,
        "arch/arm/Kconfig": "config ARM\n\tdef_bool y\n",
        "arch/arm64/Kconfig": "config ARM64\n\tdef_bool y\n",
        "drivers/parisc/Kconfig": 'config GSC\n\tbool "gsc"\n',
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return parse_tree(root, "x86")


def unmet(tree: KconfigTree, symbol: str, requested: str = "y") -> Explanation:
    return explain_unmet(tree, symbol, requested, VALUES)


def test_dependency_names_blocking_symbol(tree: KconfigTree) -> None:
    result = unmet(tree, "MATCH_COMMENT")
    assert result.kind == "dependency"
    assert result.condition == "ADVANCED [=n]"
    assert result.location == COMMENT_DEPENDS
    assert result.message.startswith(
        f"CONFIG_MATCH_COMMENT depends on ADVANCED [=n] ({COMMENT_DEPENDS})."
    )
    assert [(b.symbol, b.reason) for b in result.blockers] == [("ADVANCED", "off")]
    assert "request CONFIG_ADVANCED=y" in result.message


def test_dependency_blocked_by_request(tree: KconfigTree) -> None:
    result = explain_unmet(tree, "MATCH_COMMENT", "y", VALUES, {"ADVANCED": "n"})
    assert [(b.symbol, b.reason) for b in result.blockers] == [
        ("ADVANCED", "requested")
    ]
    assert "ADVANCED is n because CONFIG_ADVANCED=n was requested" in result.message


def test_dependency_lists_each_location(tree: KconfigTree) -> None:
    values = {**VALUES, "XTABLES": "n"}
    result = explain_unmet(tree, "MATCH_COMMENT", "y", values)
    assert result.conditions == [
        f"ADVANCED [=n] ({COMMENT_DEPENDS})",
        f"XTABLES [=n] ({at('if XTABLES')})",
    ]
    assert result.message.startswith(
        f"CONFIG_MATCH_COMMENT depends on ADVANCED [=n] ({COMMENT_DEPENDS}) "
        f"and on XTABLES [=n] ({at('if XTABLES')})."
    )


def test_dependency_chain_is_followed(tree: KconfigTree) -> None:
    result = unmet(tree, "CHAIN_TOP")
    blocker = result.blockers[0]
    assert (blocker.symbol, blocker.reason) == ("CHAIN_MIDDLE", "dependency")
    assert blocker.condition == "CHAIN_BOTTOM [=n]"
    assert [(c.symbol, c.reason) for c in blocker.causes] == [("CHAIN_BOTTOM", "off")]
    assert "CHAIN_MIDDLE depends on CHAIN_BOTTOM [=n]" in result.message


def test_other_arch_dependency(tree: KconfigTree) -> None:
    result = unmet(tree, "SERIO_GSCPS2")
    assert result.kind == "other-arch"
    assert result.condition == "GSC [=n] && SERIO [=y]"
    gsc = result.blockers[0]
    assert (gsc.symbol, gsc.reason, gsc.arches) == ("GSC", "other-arch", ["parisc"])
    assert "GSC is defined only for parisc, not for x86" in result.message
    assert "cannot be enabled on x86" in result.message


def test_other_arch_alternatives(tree: KconfigTree) -> None:
    result = unmet(tree, "ARMISH")
    assert result.kind == "other-arch"
    assert "None of ARM [=n] || ARM64 [=n] is met." in result.message
    assert "ARM is defined only for arm, not for x86." in result.message
    assert "ARM64 is defined only for arm64, not for x86." in result.message
    rejected = resolve_deps(tree, {"ARMISH": "y"}, VALUES, {})
    assert rejected.additions == []
    assert rejected.rejections[0].reason == result.message


def test_depends_on_m(tree: KconfigTree) -> None:
    result = explain_unmet(tree, "ONLY_MODULE", "y", {**VALUES, "ONLY_MODULE": "m"})
    assert result.kind == "module-limit"
    assert "`depends on m` allows it only as a module" in result.message
    rejected = resolve_deps(tree, {"ONLY_MODULE": "y"}, VALUES, {})
    assert "so it can be at most m" in rejected.rejections[0].reason


def test_module_limit(tree: KconfigTree) -> None:
    values = {**VALUES, "XTABLES": "m", "LIMITED": "m"}
    result = explain_unmet(tree, "LIMITED", "y", values)
    assert result.kind == "module-limit"
    assert result.condition == "XTABLES [=m]"
    assert result.message.startswith("CONFIG_LIMITED can be at most m")


def test_select_forces_value(tree: KconfigTree) -> None:
    result = unmet(tree, "SELECTED", "n")
    assert result.kind == "selected"
    assert result.details == [f"SELECTOR [=y] ({SELECTS})"]
    assert "forced to y: selected by SELECTOR [=y]" in result.message


def test_choice_member(tree: KconfigTree) -> None:
    result = unmet(tree, "HZ_100")
    assert result.kind == "choice"
    assert 'choice "Timer frequency"' in result.message
    assert "HZ_250 [=y]" in result.message


def test_hidden_prompt(tree: KconfigTree) -> None:
    result = unmet(tree, "SHY")
    assert result.kind == "hidden-prompt"
    assert result.condition == "EXPERT [=n]"
    assert [(b.symbol, b.reason) for b in result.blockers] == [("EXPERT", "off")]


def test_no_prompt_lists_sources(tree: KconfigTree) -> None:
    result = unmet(tree, "STUCK")
    assert result.kind == "no-prompt"
    assert "has no prompt" in result.message


def test_range(tree: KconfigTree) -> None:
    result = unmet(tree, "COUNT", "100")
    assert result.kind == "range"
    assert "must be within range 1 8" in result.message


def test_negated_dependency(tree: KconfigTree) -> None:
    result = unmet(tree, "NEEDS_NOT")
    assert [(b.symbol, b.reason, b.needed) for b in result.blockers] == [
        ("BLOCKER", "on", "n")
    ]


def test_unknown_with_rename(tree: KconfigTree) -> None:
    result = explain_request(tree, "AUTOFS4_FS", "y", VALUES)
    assert isinstance(result, UnknownSymbol)
    assert result.rename is not None
    assert result.rename.symbols == ["AUTOFS_FS"]
    assert "request CONFIG_AUTOFS_FS instead" in result.message


def test_unknown_with_boot_argument(tree: KconfigTree) -> None:
    result = explain_unknown(tree, "RANDOM_TRUST_CPU")
    assert result.rename is not None
    assert result.rename.boot_argument == "random.trust_cpu=on"
    assert "random.trust_cpu=on" in result.message


def test_unknown_suggests_spelling(tree: KconfigTree) -> None:
    result = explain_unknown(tree, "MATCH_COMENT")
    assert result.suggestions == ["MATCH_COMMENT"]
    assert "did you mean CONFIG_MATCH_COMMENT?" in result.message


def test_unknown_defined_elsewhere(tree: KconfigTree) -> None:
    result = explain_unknown(tree, "GSC")
    assert result.arches == ["parisc"]
    assert result.message.endswith("it is defined only for parisc")


def test_renames_data_is_complete() -> None:
    renames = load_renames()
    for name in ("AUTOFS4_FS", "CRYPTO_CRC32C_INTEL", "CRYPTO_CRC32_PCLMUL"):
        assert name in renames
    for name in ("RANDOM_TRUST_CPU", "NF_NAT_IPV4", "MEMCG_SWAP"):
        assert name in renames
    assert "IP_NF_TARGET_CLUSTERIP" in renames
    for rename in renames.values():
        assert rename.version.count(".") == 1, rename.symbol
        assert rename.note, rename.symbol
        assert rename.symbol not in rename.symbols


def test_resolve_adds_direct_dependency(tree: KconfigTree) -> None:
    result = resolve_deps(tree, {"MATCH_COMMENT": "y"}, VALUES, {})
    assert result.requests() == {"ADVANCED": "y"}
    addition = result.additions[0]
    assert addition.needed_by == "MATCH_COMMENT"
    assert addition.reason == (
        f"CONFIG_MATCH_COMMENT depends on ADVANCED [=n] ({COMMENT_DEPENDS})"
    )
    assert result.rejections == []


def test_resolve_follows_chain(tree: KconfigTree) -> None:
    result = resolve_deps(tree, {"CHAIN_TOP": "y"}, VALUES, {})
    assert result.requests() == {"CHAIN_BOTTOM": "y", "CHAIN_MIDDLE": "y"}


def test_resolve_picks_cheaper_alternative(tree: KconfigTree) -> None:
    result = resolve_deps(tree, {"EITHER": "y"}, VALUES, {})
    assert result.requests() == {"NEAR": "y"}


def test_resolve_respects_explicit_request(tree: KconfigTree) -> None:
    result = resolve_deps(tree, {"MATCH_COMMENT": "y"}, VALUES, {"ADVANCED": "n"})
    assert result.additions == []
    assert len(result.rejections) == 1
    assert "CONFIG_ADVANCED=n was requested explicitly" in result.rejections[0].reason


def test_resolve_skips_already_requested(tree: KconfigTree) -> None:
    result = resolve_deps(tree, {"CHAIN_TOP": "y"}, VALUES, {"CHAIN_MIDDLE": "y"})
    assert result.requests() == {"CHAIN_BOTTOM": "y"}


def test_resolve_rejects_other_arch(tree: KconfigTree) -> None:
    result = resolve_deps(tree, {"SERIO_GSCPS2": "y"}, VALUES, {})
    assert result.additions == []
    assert "GSC is defined only for parisc" in result.rejections[0].reason


def test_resolve_uses_default_of_promptless(tree: KconfigTree) -> None:
    result = resolve_deps(tree, {"NEEDS_HIDDEN": "y"}, VALUES, {})
    assert result.requests() == {"HIDDEN_SWITCH": "y"}
    assert "CONFIG_HIDDEN has no prompt" in result.additions[0].reason


def test_resolve_rejects_promptless_without_default(tree: KconfigTree) -> None:
    result = resolve_deps(tree, {"NEEDS_STUCK": "y"}, VALUES, {})
    assert result.additions == []
    assert "CONFIG_STUCK has no prompt and no default" in result.rejections[0].reason


def test_resolve_turns_off_negated_dependency(tree: KconfigTree) -> None:
    result = resolve_deps(tree, {"NEEDS_NOT": "y"}, VALUES, {})
    assert result.requests() == {"BLOCKER": "n"}


def test_resolve_module_request_enables_module(tree: KconfigTree) -> None:
    values = {**VALUES, "XTABLES": "n"}
    result = resolve_deps(tree, {"LIMITED": "m"}, values, {})
    assert result.requests() == {"XTABLES": "m"}


def test_describe_symbol_report(tree: KconfigTree) -> None:
    report = describe_symbol(tree, "MATCH_COMMENT", VALUES)
    assert report.type == "tristate"
    assert report.definitions == [at("config MATCH_COMMENT")]
    assert [(d.label, d.text, d.met) for d in report.dependencies] == [
        ("", "ADVANCED [=n]", False),
        ("if", "XTABLES [=y]", True),
    ]
    assert report.value is None
    assert "depends on ADVANCED [=n]" in report.status
    text = format_symbol_report(report)
    assert text.startswith("CONFIG_MATCH_COMMENT (tristate, x86)\n  value: not set\n")
    assert f"    ADVANCED [=n]  ({COMMENT_DEPENDS})  [not met]" in text
    assert report.to_json()["dependencies"][0]["location"] == COMMENT_DEPENDS


def test_describe_selected_symbol(tree: KconfigTree) -> None:
    report = describe_symbol(tree, "SELECTED", VALUES)
    assert [(s.label, s.met) for s in report.selected_by] == [("SELECTOR [=y]", True)]
    assert report.status.startswith(f"selected by SELECTOR [=y] ({SELECTS})")


def test_describe_without_values(tree: KconfigTree) -> None:
    report = describe_symbol(tree, "COUNT")
    assert report.value is None
    assert report.status == ""
    text = format_symbol_report(report)
    assert "value:" not in text
    ranges = at("\trange 1 8")
    assert f"  ranges:\n    1 8  ({ranges})\n" in text


def test_describe_unknown_symbol(tree: KconfigTree) -> None:
    report = describe_symbol(tree, "AUTOFS4_FS")
    assert not report.defined
    assert report.unknown is not None
    assert format_symbol_report(report).startswith(
        "CONFIG_AUTOFS4_FS was removed in Linux 6.6"
    )


def test_explanation_json_has_message(tree: KconfigTree) -> None:
    data = unmet(tree, "CHAIN_TOP").to_json()
    assert data["kind"] == "dependency"
    assert data["blockers"][0]["causes"][0]["symbol"] == "CHAIN_BOTTOM"
    assert data["message"].startswith("CONFIG_CHAIN_TOP depends on")
