"""The Kconfig reader and the explanations on Debian's 6.1 and 6.12 trees.

The reader is checked against the kernel's own parser. A small C program is
linked against the tree's `scripts/kconfig` objects, which `make olddefconfig`
builds, and parses the same tree with the same arch. It lists every defined
symbol with its type, its counts of definitions, prompts, defaults and ranges,
its `select` and `imply` targets, and the symbols its direct dependency
mentions.

Slow steps are session-scoped: each tarball is unpacked once into the shared
test cache, each tree is parsed once per arch, and `make olddefconfig` runs
once per tree.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from fckernel.cache import Cache
from fckernel.dotconfig import read_config
from fckernel.explain import (
    UnknownSymbol,
    explain_request,
    explain_unmet,
    load_renames,
    resolve_deps,
)
from fckernel.kconfig import KconfigTree, load_tree, parse_tree, symbols_in
from fckernel.source import prepare_source

from .conftest import LINUX_61, LINUX_612, firecracker_configs, require

pytestmark = pytest.mark.tree

ARCHES = ("x86", "arm64")
VERSIONS = ("6.1", "6.12")
KCONFIG_OBJECTS = (
    "parser.tab.o",
    "lexer.lex.o",
    "confdata.o",
    "expr.o",
    "menu.o",
    "preprocess.o",
    "symbol.o",
    "util.o",
)
# Linux 6.12 keeps symbols in a hashtable (scripts/include/hashtable.h) and
# lists a symbol's definitions in sym->menus; 6.1 keeps P_SYMBOL properties.
LIST_SYMBOLS_C = r"""
#include <stdio.h>
#include "lkc.h"
#ifdef KCONFIG_HASHTABLE
#include "internal.h"
#endif

static int definitions(struct symbol *sym)
{
    int count = 0;
#ifdef KCONFIG_HASHTABLE
    struct menu *menu;
    list_for_each_entry(menu, &sym->menus, link)
        count++;
#else
    struct property *prop;
    for_all_properties(sym, prop, P_SYMBOL)
        count++;
#endif
    return count;
}

static void print_targets(struct symbol *sym, enum prop_type type, const char *label)
{
    struct property *prop;

    printf(" %s:", label);
    for_all_properties(sym, prop, type)
        if (prop->expr && prop->expr->type == E_SYMBOL)
            printf("%s,", prop->expr->left.sym->name);
}

static void print_expr_symbols(struct expr *e)
{
    if (!e)
        return;
    switch (e->type) {
    case E_SYMBOL:
        printf("%s,", e->left.sym->name);
        break;
    case E_NOT:
        print_expr_symbols(e->left.expr);
        break;
    case E_AND:
    case E_OR:
        print_expr_symbols(e->left.expr);
        print_expr_symbols(e->right.expr);
        break;
    default:
        printf("%s,%s,", e->left.sym->name, e->right.sym->name);
    }
}

static void print_symbol(struct symbol *sym)
{
    struct property *prop;
    int prompts = 0, defaults = 0, ranges = 0;

    if (!sym->name || (sym->flags & SYMBOL_CONST) || !definitions(sym))
        return;
    for (prop = sym->prop; prop; prop = prop->next) {
        prompts += prop->type == P_PROMPT || prop->type == P_MENU;
        defaults += prop->type == P_DEFAULT;
        ranges += prop->type == P_RANGE;
    }
    printf("%s %s defs:%d prompts:%d defaults:%d ranges:%d", sym->name,
           sym_type_name(sym->type), definitions(sym), prompts, defaults, ranges);
    print_targets(sym, P_SELECT, "selects");
    print_targets(sym, P_IMPLY, "implies");
    printf(" |");
    print_expr_symbols(sym->dir_dep.expr);
    printf("\n");
}

int main(void)
{
    struct symbol *sym;

    conf_parse("Kconfig");
#ifdef KCONFIG_HASHTABLE
    for_all_symbols(sym)
        print_symbol(sym);
#else
    int i;
    for_all_symbols(i, sym)
        print_symbol(sym);
#endif
    return 0;
}
"""
KERNEL_TYPE_NAMES = {
    "bool": "bool",
    "tristate": "tristate",
    "int": "integer",
    "hex": "hex",
    "string": "string",
    "": "unknown",
}
NUMBER = re.compile(r"-?[0-9]+|0[xX][0-9a-fA-F]+")


def run(command: list[str], cwd: Path | None = None, **env: str) -> str:
    environment = {"PATH": os.environ["PATH"], "LANG": "C", "LC_ALL": "C", **env}
    result = subprocess.run(
        command,
        cwd=cwd,
        env=environment,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def olddefconfig(source: Path, build: Path, config: str) -> dict[str, str]:
    """Resolve `config` in build folder `build` with the tree's own Kconfig."""
    build.mkdir(parents=True, exist_ok=True)
    (build / ".config").write_text(config)
    run(["make", "-s", "-C", str(source), f"O={build}", "ARCH=x86", "olddefconfig"])
    return read_config(build / ".config").values


# Fixtures -------------------------------------------------------------------


@pytest.fixture(scope="session")
def sources(real_cache: Path) -> dict[str, Path]:
    """Debian's 6.1 and 6.12 trees, unpacked once into the shared test cache."""
    cache = Cache(real_cache)
    return {
        version: prepare_source(str(require(tarball)), None, cache).path
        for version, tarball in (("6.1", LINUX_61), ("6.12", LINUX_612))
    }


@pytest.fixture(scope="session")
def trees(sources: dict[str, Path]) -> Callable[[str, str], KconfigTree]:
    """Return a function that parses a tree for an arch once per session."""
    parsed: dict[tuple[str, str], KconfigTree] = {}

    def get(version: str, arch: str) -> KconfigTree:
        if (version, arch) not in parsed:
            parsed[version, arch] = parse_tree(sources[version], arch)
        return parsed[version, arch]

    return get


@pytest.fixture(scope="session")
def base_61() -> str:
    return (firecracker_configs() / "microvm-kernel-ci-x86_64-6.1.config").read_text()


@pytest.fixture(scope="session")
def builds(
    sources: dict[str, Path],
    base_61: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, tuple[Path, dict[str, str]]]:
    """A build folder per tree, resolved from Firecracker's 6.1 x86_64 config;
    on 6.1 with CONFIG_NETFILTER_ADVANCED=n. Returns (folder, resolved values).
    """
    folders = {}
    for version in VERSIONS:
        config = base_61
        if version == "6.1":
            config = re.sub(
                r"^CONFIG_NETFILTER_ADVANCED=y$",
                "CONFIG_NETFILTER_ADVANCED=n",
                config,
                flags=re.MULTILINE,
            )
        build = tmp_path_factory.mktemp(f"build-{version}")
        folders[version] = (build, olddefconfig(sources[version], build, config))
    return folders


@pytest.fixture(scope="session")
def list_symbols(
    sources: dict[str, Path],
    builds: dict[str, tuple[Path, dict[str, str]]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[str, str], dict[str, str]]:
    """Return a function that lists a tree's symbols with the kernel's parser."""
    if shutil.which("gcc") is None:
        pytest.fail("gcc is missing; run scripts/setup to install the build tools")
    folder = tmp_path_factory.mktemp("kernel-kconfig")
    program_source = folder / "list_symbols.c"
    program_source.write_text(LIST_SYMBOLS_C)

    def compile_for(version: str) -> Path:
        source, build = sources[version], builds[version][0]
        program = folder / f"list-symbols-{version}"
        objects = [str(build / "scripts/kconfig" / name) for name in KCONFIG_OBJECTS]
        flags = []
        if (source / "scripts/include/hashtable.h").is_file():
            flags.append("-DKCONFIG_HASHTABLE")
        includes = [build / "scripts/kconfig", source / "scripts/kconfig"]
        includes.append(source / "scripts/include")
        run(
            ["gcc", "-O1", *flags, *(f"-I{path}" for path in includes)]
            + ["-o", str(program), str(program_source), *objects]
        )
        return program

    programs = {version: compile_for(version) for version in VERSIONS}

    def listing(version: str, arch: str) -> dict[str, str]:
        source = sources[version]
        output = run(
            [str(programs[version])],
            cwd=source,
            srctree=str(source),
            SRCARCH=arch,
            ARCH=arch,
            CC="gcc",
            LD="ld",
        )
        lines = (line.split(" ", 1) for line in output.splitlines())
        return {name: rest for name, rest in lines}

    return listing


# The reader against the kernel's own parser ----------------------------------


def describe(tree: KconfigTree, name: str) -> str:
    """Describe a symbol the way LIST_SYMBOLS_C does, without dependencies."""
    symbol = tree.symbol(name)
    assert symbol is not None
    selects = "".join(f"{s.symbol}," for d in symbol.definitions for s in d.selects)
    implies = "".join(f"{s.symbol}," for d in symbol.definitions for s in d.implies)
    return (
        f"{KERNEL_TYPE_NAMES[symbol.type]} defs:{len(symbol.definitions)} "
        f"prompts:{len(symbol.prompts)} defaults:{len(symbol.defaults)} "
        f"ranges:{len(symbol.ranges)} selects:{selects} implies:{implies}"
    )


@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.parametrize("version", VERSIONS)
def test_symbols_match_kernel_parser(
    version: str,
    arch: str,
    trees: Callable[[str, str], KconfigTree],
    list_symbols: Callable[[str, str], dict[str, str]],
) -> None:
    tree = trees(version, arch)
    kernel = list_symbols(version, arch)
    assert len(tree.types) == len(kernel)
    assert sorted(set(kernel) - set(tree.types)) == []
    assert sorted(set(tree.types) - set(kernel)) == []
    differing = [
        (name, kernel[name], describe(tree, name))
        for name in kernel
        if kernel[name].split(" |")[0] != describe(tree, name)
    ]
    assert differing[:5] == []


@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.parametrize("version", VERSIONS)
def test_dependencies_cover_kernel_ones(
    version: str,
    arch: str,
    trees: Callable[[str, str], KconfigTree],
    list_symbols: Callable[[str, str], dict[str, str]],
) -> None:
    """Every symbol in the kernel's direct dependency of a symbol appears in
    one of our conditions for it. The kernel's expression can have fewer
    symbols (it simplifies `X || !X`, folds `$(...)` results, and in 6.1
    moves a choice's conditions onto the choice), never more.
    """
    tree = trees(version, arch)
    missing = []
    for name, line in list_symbols(version, arch).items():
        kernel = set(line.split(" |")[1].split(",")) - {"", "(null)", "y", "m", "n"}
        kernel = {symbol for symbol in kernel if not NUMBER.fullmatch(symbol)}
        symbol = tree.symbol(name)
        assert symbol is not None
        ours = {"MODULES"}  # the kernel turns `m` into `m && MODULES`
        for definition in symbol.definitions:
            for condition in definition.depends:
                ours.update(symbols_in(condition.expr))
        if not kernel <= ours:
            missing.append((name, sorted(kernel - ours)))
    assert missing[:5] == []


@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.parametrize("version", VERSIONS)
def test_real_tree_reads_without_warnings(
    version: str, arch: str, trees: Callable[[str, str], KconfigTree]
) -> None:
    tree = trees(version, arch)
    assert tree.warnings == []
    assert tree.files > 1000
    assert tree.arches_defining("GSC") == ["parisc"]


def test_cached_tree_matches_parsed(
    sources: dict[str, Path],
    trees: Callable[[str, str], KconfigTree],
    tmp_path: Path,
) -> None:
    written = load_tree(sources["6.12"], "x86", tmp_path, "linux-6.12")
    cached = load_tree(sources["6.12"], "x86", tmp_path, "linux-6.12")
    parsed = trees("6.12", "x86")
    assert cached.types == parsed.types
    assert cached.locations == written.locations
    assert cached.symbol("NETFILTER_XT_MATCH_COMMENT") == parsed.symbol(
        "NETFILTER_XT_MATCH_COMMENT"
    )
    assert cached.choices == parsed.choices
    assert cached.arches_defining("GSC") == ["parisc"]


# Explanations on 6.1 with NETFILTER_ADVANCED=n --------------------------------


def test_comment_match_unmet_names_advanced(
    trees: Callable[[str, str], KconfigTree],
    builds: dict[str, tuple[Path, dict[str, str]]],
) -> None:
    values = builds["6.1"][1]
    assert "NETFILTER_XT_MATCH_COMMENT" not in values
    result = explain_unmet(
        trees("6.1", "x86"), "NETFILTER_XT_MATCH_COMMENT", "y", values
    )
    assert result.kind == "dependency"
    assert result.condition == "NETFILTER_ADVANCED [=n]"
    assert result.message.startswith(
        "CONFIG_NETFILTER_XT_MATCH_COMMENT depends on NETFILTER_ADVANCED [=n] "
        "(net/netfilter/Kconfig:"
    )


def test_resolve_deps_enables_advanced(
    sources: dict[str, Path],
    trees: Callable[[str, str], KconfigTree],
    builds: dict[str, tuple[Path, dict[str, str]]],
    base_61: str,
    tmp_path: Path,
) -> None:
    values = builds["6.1"][1]
    request = {"NETFILTER_XT_MATCH_COMMENT": "y"}
    resolution = resolve_deps(trees("6.1", "x86"), request, values, request)
    assert resolution.requests() == {"NETFILTER_ADVANCED": "y"}
    assert resolution.rejections == []

    # Kconfig itself must agree: with the addition, the request takes effect.
    config = (
        base_61 + "CONFIG_NETFILTER_XT_MATCH_COMMENT=y\nCONFIG_NETFILTER_ADVANCED=y\n"
    )
    final = olddefconfig(sources["6.1"], tmp_path / "build", config)
    assert final.get("NETFILTER_XT_MATCH_COMMENT") == "y"


def test_serio_gscps2_needs_parisc(
    trees: Callable[[str, str], KconfigTree],
    builds: dict[str, tuple[Path, dict[str, str]]],
) -> None:
    values = builds["6.1"][1]
    result = explain_unmet(trees("6.1", "x86"), "SERIO_GSCPS2", "y", values)
    assert result.kind == "other-arch"
    assert result.condition.startswith("GSC [=n]")
    assert "GSC is defined only for parisc, not for x86" in result.message
    rejected = resolve_deps(trees("6.1", "x86"), {"SERIO_GSCPS2": "y"}, values, {})
    assert rejected.additions == []
    assert "parisc" in rejected.rejections[0].reason


# Unknown symbols on 6.12 --------------------------------------------------------


def unknown_on_612(
    trees: Callable[[str, str], KconfigTree], symbol: str
) -> UnknownSymbol:
    result = explain_request(trees("6.12", "x86"), symbol, "y", {})
    assert isinstance(result, UnknownSymbol)
    return result


def test_autofs4_suggests_autofs(trees: Callable[[str, str], KconfigTree]) -> None:
    result = unknown_on_612(trees, "AUTOFS4_FS")
    assert result.rename is not None
    assert result.rename.symbols == ["AUTOFS_FS"]
    assert "request CONFIG_AUTOFS_FS instead" in result.message


def test_trust_cpu_suggests_boot_argument(
    trees: Callable[[str, str], KconfigTree],
) -> None:
    result = unknown_on_612(trees, "RANDOM_TRUST_CPU")
    assert result.rename is not None
    assert result.rename.boot_argument == "random.trust_cpu=on"
    assert "boot argument random.trust_cpu=on" in result.message


def test_misspelling_suggests_symbol(trees: Callable[[str, str], KconfigTree]) -> None:
    result = unknown_on_612(trees, "NETFILTER_XT_MATCH_COMENT")
    assert result.suggestions[0] == "NETFILTER_XT_MATCH_COMMENT"


def test_renames_agree_with_trees(trees: Callable[[str, str], KconfigTree]) -> None:
    old, new = trees("6.1", "x86"), trees("6.12", "x86")
    config_618 = firecracker_configs() / "microvm-kernel-ci-x86_64-6.18.config"
    values_618 = read_config(config_618).values
    for name, rename in load_renames().items():
        version = tuple(int(part) for part in rename.version.split("."))
        if version <= (6, 1):
            assert name not in old, name
        if (6, 1) < version <= (6, 12):
            assert name in old, name
        if version <= (6, 12):
            assert name not in new, name
            for replacement in rename.symbols:
                assert replacement in new, (name, replacement)
        else:
            assert name in new, name
            assert name not in values_618, name
            for replacement in rename.symbols:
                assert replacement in values_618, (name, replacement)
