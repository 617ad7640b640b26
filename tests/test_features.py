from __future__ import annotations

from pathlib import Path

import pytest

from fckernel.errors import InputError
from fckernel.features import load_feature_file, load_features, select_features

DEFAULT_ADDITIONS = {
    "IP6_NF_IPTABLES",
    "NETFILTER_XT_MARK",
    "NETFILTER_XT_MATCH_COMMENT",
    "NETFILTER_XT_MATCH_MULTIPORT",
    "CRYPTO_CRC32_PCLMUL",
    "CRYPTO_CRC32C_INTEL",
    "CRYPTO_GHASH_CLMUL_NI_INTEL",
    "CRYPTO_AES_NI_INTEL",
    "CRYPTO_CRYPTD",
    "INPUT_EVDEV",
    "NET_SCH_FQ_CODEL",
    "AUTOFS4_FS",
}


def test_default_features_are_the_five() -> None:
    features, warnings = select_features([], with_defaults=True, arch="x86_64")

    names = {f.name for f in features}
    assert names == {"iptables", "crypto-accel", "evdev", "fq-codel", "autofs"}
    assert warnings == []


def test_default_features_carry_all_twelve_additions_built_in() -> None:
    features, _ = select_features([], with_defaults=True, arch="x86_64")
    options = {s: v for f in features for s, v in f.options.items()}
    assert set(options) >= DEFAULT_ADDITIONS
    assert all(options[symbol] == "y" for symbol in DEFAULT_ADDITIONS)


def test_iptables_feature_asks_for_nf_tables() -> None:
    options = load_features()["iptables"].options
    for symbol in ("NF_TABLES", "NF_TABLES_IPV4", "NF_TABLES_IPV6", "NFT_COMPAT"):
        assert options.get(symbol) == "y"


def test_every_feature_has_probes() -> None:
    for feature in load_features().values():
        assert feature.probes, feature.name


def test_crypto_maps_to_arm64_drivers_on_aarch64() -> None:
    features, warnings = select_features([], with_defaults=True, arch="aarch64")

    names = {f.name for f in features}
    assert "crypto-accel" not in names
    assert "crypto-accel-arm64" in names
    assert warnings == [
        "feature 'crypto-accel' does not apply to aarch64; "
        "'crypto-accel-arm64' takes its place"
    ]


def test_named_feature_of_another_arch_is_skipped_with_warning() -> None:
    features, warnings = select_features(
        ["crypto-accel-arm64"], with_defaults=False, arch="x86_64"
    )

    assert features == []
    assert warnings == [
        "feature 'crypto-accel-arm64' does not apply to x86_64 and is skipped"
    ]


def test_no_defaults_and_named_feature() -> None:
    features, _ = select_features(["docker"], with_defaults=False, arch="x86_64")
    assert [f.name for f in features] == ["docker"]


def test_unknown_feature_lists_choices() -> None:
    with pytest.raises(InputError) as caught:
        select_features(["iptable"], with_defaults=False, arch="x86_64")
    assert "unknown feature 'iptable'" in str(caught.value)
    assert "iptables" in str(caught.value.hint)


def test_feature_file_by_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text('description = "x"\n[options]\nCONFIG_VETH = "y"\n')
    feature = load_feature_file(path)
    assert feature.name == "mine"
    assert feature.options == {"VETH": "y"}


def test_feature_file_unknown_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('descripton = "typo"\n')
    with pytest.raises(InputError, match="unknown key 'descripton'"):
        load_feature_file(path)


def test_feature_file_invalid_toml(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[options\n")
    with pytest.raises(InputError, match="invalid TOML"):
        load_feature_file(path)


def test_feature_option_values_must_be_strings(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[options]\nVETH = true\n")
    with pytest.raises(InputError, match=r"\[options\] must map symbols"):
        load_feature_file(path)
