"""Named features: groups of Kconfig options with probes that prove them in a guest.

Each feature is a TOML file in `fckernel/data/features/`, or a file a user names
with `--feature PATH.toml`:

    description = "one line for `fckernel features`"
    default = true            # part of the default job
    arches = ["x86_64"]       # omitted: every arch
    replaces = "crypto-accel" # this arch's counterpart of another arch's feature
    [options]
    NET_SCH_FQ_CODEL = "y"    # Kconfig symbol without CONFIG_, value as in .config
    [[probes]]
    name = "fq_codel-qdisc"
    programs = ["tc"]         # host programs the guest's initramfs needs
    run = "tc qdisc ..."      # shell commands; exit status 0 means the probe passed
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from fckernel.arch import ARCHES
from fckernel.dotconfig import (
    VALUE_HELP,
    check_regular_file,
    is_valid_symbol,
    is_valid_value,
)
from fckernel.errors import InputError

_FEATURE_KEYS = {"description", "default", "arches", "replaces", "options", "probes"}
_PROBE_KEYS = {"name", "run", "programs"}


@dataclass(frozen=True)
class Probe:
    """A shell command run in the guest; it passes when it exits with status 0."""

    name: str
    run: str
    programs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Feature:
    """A named group of Kconfig options and the probes that prove them."""

    name: str
    description: str
    default: bool
    arches: tuple[str, ...]
    options: dict[str, str] = field(default_factory=dict)
    probes: tuple[Probe, ...] = ()
    path: Path | None = None
    replaces: str | None = None  # the other arch's feature this one replaces

    def applies_to(self, arch: str) -> bool:
        return arch in self.arches


def load_features() -> dict[str, Feature]:
    """Load every feature shipped with fckernel, by name."""
    features = {}
    folder = resources.files("fckernel") / "data" / "features"
    for entry in sorted(folder.iterdir(), key=lambda item: item.name):
        if entry.name.endswith(".toml"):
            feature = _parse_feature(
                entry.name.removesuffix(".toml"), entry.read_text(), entry.name
            )
            features[feature.name] = feature
    return features


def load_feature_file(path: Path) -> Feature:
    """Load a user's feature file; its name is the file name without `.toml`."""
    check_regular_file(path, "feature file", "pass a TOML feature file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise InputError(
            f"feature file {path} is not a text file",
            "pass a TOML feature file (see `fckernel features`)",
        ) from error
    except OSError as error:
        raise InputError(
            f"cannot read feature file {path}: {error.strerror}",
            "pass a feature name from `fckernel features` or an existing .toml file",
        ) from error
    feature = _parse_feature(path.stem, text, str(path))
    return Feature(**{**feature.__dict__, "path": path})


def select_features(
    names: list[str], with_defaults: bool, arch: str
) -> tuple[list[Feature], list[str]]:
    """Return the features a job asked for, and a warning for each that does not
    apply to `arch`.

    `names` contains feature names or paths to `.toml` files. Defaults come first,
    then the named ones in order, each once.
    """
    known = load_features()
    chosen: dict[str, Feature] = {}
    if with_defaults:
        chosen.update((name, f) for name, f in known.items() if f.default)
    for name in names:
        feature = _lookup(name, known)
        if feature.path is not None:
            chosen[feature.name] = feature  # a user's file replaces a built-in
        else:
            chosen.setdefault(feature.name, feature)

    applying = [f for f in chosen.values() if f.applies_to(arch)]
    stand_ins = {f.replaces: f.name for f in applying if f.replaces}
    warnings = []
    for f in chosen.values():
        if f.applies_to(arch):
            continue
        if f.name in stand_ins:
            warnings.append(
                f"feature {f.name!r} does not apply to {arch}; "
                f"{stand_ins[f.name]!r} takes its place"
            )
        elif not (f.replaces and f.name not in names):
            # A default that replaces another arch's feature is not worth a
            # warning where that other feature applies.
            warnings.append(
                f"feature {f.name!r} does not apply to {arch} and is skipped"
            )
    return applying, warnings


def _lookup(name: str, known: dict[str, Feature]) -> Feature:
    if name.endswith(".toml") or "/" in name:
        return load_feature_file(Path(name))
    if name not in known:
        raise InputError(
            f"unknown feature {name!r}",
            f"choose one of: {', '.join(sorted(known))} (see `fckernel features`)",
        )
    return known[name]


def _parse_feature(name: str, text: str, origin: str) -> Feature:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise InputError(f"{origin}: invalid TOML: {error}") from error

    _reject_unknown_keys(data, _FEATURE_KEYS, origin)
    options = data.get("options", {})
    if not isinstance(options, dict) or not all(
        isinstance(value, str) for value in options.values()
    ):
        raise InputError(f'{origin}: [options] must map symbols to strings such as "y"')
    for symbol, value in options.items():
        if not is_valid_symbol(_bare_symbol(symbol)) or not is_valid_value(value):
            raise InputError(
                f"{origin}: invalid option {symbol} = {value!r}",
                "keys are symbol names such as NET_SCH_FQ_CODEL; " + VALUE_HELP,
            )
    arches = data.get("arches", list(ARCHES))
    probes = data.get("probes", [])
    if not isinstance(arches, list) or not isinstance(probes, list):
        raise InputError(
            f"{origin}: arches must be a list and probes an array of tables",
            'write arches = ["x86_64"] and [[probes]] sections',
        )
    for arch in arches:
        if arch not in ARCHES:
            raise InputError(f"{origin}: unknown arch {arch!r} in arches")

    return Feature(
        name=name,
        description=str(data.get("description", "")),
        default=bool(data.get("default", False)),
        arches=tuple(arches),
        options={_bare_symbol(symbol): value for symbol, value in options.items()},
        probes=tuple(_parse_probe(p, origin) for p in probes),
        replaces=str(data["replaces"]) if "replaces" in data else None,
    )


def _parse_probe(data: dict[str, Any], origin: str) -> Probe:
    if not isinstance(data, dict):
        raise InputError(f"{origin}: each [[probes]] entry must be a table")
    _reject_unknown_keys(data, _PROBE_KEYS, f"{origin}: probe")
    if "name" not in data or "run" not in data:
        raise InputError(f"{origin}: every [[probes]] entry needs name and run")
    return Probe(
        name=str(data["name"]),
        run=str(data["run"]).strip(),
        programs=tuple(data.get("programs", ())),
    )


def _reject_unknown_keys(data: dict[str, Any], allowed: set[str], origin: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise InputError(
            f"{origin}: unknown key {unknown[0]!r}",
            f"allowed keys: {', '.join(sorted(allowed))}",
        )


def _bare_symbol(symbol: str) -> str:
    return symbol.removeprefix("CONFIG_")
