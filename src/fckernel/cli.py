"""The `fckernel` command: parses arguments, calls the library, prints results."""

from __future__ import annotations

import argparse
import functools
import json
import signal
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from fckernel import __version__
from fckernel.arch import host_arch
from fckernel.boottest import boot_interactive
from fckernel.build import Job, load_job_tree, run_job
from fckernel.cache import Cache
from fckernel.diff import diff_configs, load_for_diff
from fckernel.errors import ExitCode, FckernelError, InputError, host_error_from
from fckernel.explain import describe_symbol, format_symbol_report
from fckernel.fccheck import check_path
from fckernel.features import load_features
from fckernel.plan import (
    PlannedKernel,
    load_plan,
    plan_exit_code,
    run_plan,
    write_plan_report,
)
from fckernel.prune import format_size, list_entries, parse_size, prune
from fckernel.report import REPORT_NAME, Report
from fckernel.terminal import Terminal
from fckernel.testrun import (
    TEST_LOG,
    TestTarget,
    run_test,
    target_from_kernel,
    target_from_output,
)

DEFAULT_OUTPUT = Path("fckernel-out")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGHUP, _raise_interrupt)
    terminal = Terminal(quiet=getattr(args, "json", False))
    try:
        return int(args.handler(args, terminal))
    except FckernelError as error:
        terminal.error(str(error))
        if args.debug:
            traceback.print_exc()
        return int(error.exit_code)
    except KeyboardInterrupt:
        terminal.error("interrupted")
        return int(ExitCode.INTERRUPTED)
    except OSError as error:
        failure = host_error_from(error)
        terminal.error(str(failure))
        if args.debug:
            traceback.print_exc()
        return int(failure.exit_code)
    except Exception as error:  # noqa: BLE001 - the last resort before a traceback
        terminal.error(
            f"fckernel failed unexpectedly: {type(error).__name__}: {error}\n"
            "  hint: this is a bug in fckernel; rerun with --debug to see where, "
            "and report it with that output"
        )
        if args.debug:
            traceback.print_exc()
        return int(ExitCode.INTERNAL)
    finally:
        terminal.close()


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fckernel",
        description="Build, verify and boot Linux guest kernels for Firecracker.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks of errors"
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    build = commands.add_parser("build", help="configure, verify and compile a kernel")
    _add_job_options(build)
    build.add_argument(
        "--test",
        action="store_true",
        help="then boot the kernel and run the features' probes (fckernel test)",
    )
    build.add_argument(
        "--rebuild",
        action="store_true",
        help="compile even when the cache has an image for these exact inputs",
    )
    build.add_argument(
        "--ccache",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="compile through ccache (default: when it is installed)",
    )
    build.add_argument(
        "--plan",
        type=Path,
        metavar="FILE",
        help="build every kernel of a TOML plan, each into OUTPUT/NAME, and print "
        "a table (see the README); -j, --test, --rebuild and --ccache apply to all",
    )
    build.set_defaults(handler=_run_build, compile=True)

    config = commands.add_parser(
        "config", help="configure and verify only; writes OUTPUT/config"
    )
    _add_job_options(config)
    config.set_defaults(
        handler=_run_build,
        compile=False,
        test=False,
        rebuild=False,
        ccache=None,
        plan=None,
    )

    test = commands.add_parser(
        "test", help="boot a built kernel and run the features' probes"
    )
    _add_boot_options(test)
    test.add_argument(
        "--feature",
        action="append",
        default=[],
        metavar="NAME",
        help="also run this feature's probes (repeatable)",
    )
    test.add_argument(
        "--no-default-features",
        dest="default_features",
        action="store_false",
        help="with --kernel: run only the --feature probes",
    )
    test.add_argument(
        "--json", action="store_true", help="print the test results as JSON"
    )
    test.set_defaults(handler=_run_test)

    boot = commands.add_parser(
        "boot", help="boot a built kernel to a shell on the serial console"
    )
    _add_boot_options(boot)
    boot.set_defaults(handler=_run_boot)

    features = commands.add_parser("features", help="list the named features")
    features.set_defaults(handler=_run_features)

    diff = commands.add_parser(
        "diff", help="compare two configs (files or output folders) symbol by symbol"
    )
    diff.add_argument("a", type=Path, metavar="A")
    diff.add_argument("b", type=Path, metavar="B")
    diff.add_argument(
        "--requests",
        action="store_true",
        help="only the symbols the reports of A and B requested",
    )
    diff.add_argument("--json", action="store_true", help="print the result as JSON")
    diff.set_defaults(handler=_run_diff)
    explain = commands.add_parser(
        "explain", help="show one option's Kconfig definition, dependencies and value"
    )
    explain.add_argument("symbol", metavar="CONFIG_X")
    explain.add_argument("--base", metavar="NAME|PATH|URL", help="as for build")
    explain.add_argument("--source", metavar="SPEC", help="as for build")
    explain.add_argument("--arch", help="x86_64 or aarch64 (default: host)")
    explain.add_argument(
        "--config",
        type=Path,
        metavar="FILE|OUTPUT",
        help="a resolved .config or output folder to explain the value in",
    )
    explain.add_argument("--json", action="store_true", help="print JSON")
    explain.set_defaults(handler=_run_explain)

    check = commands.add_parser(
        "check",
        help="check a .config, an output folder or a vmlinux/Image for Firecracker",
    )
    check.add_argument("path", type=Path, metavar="FILE")
    check.add_argument("--arch", help="x86_64 or aarch64 (default: from the config)")
    check.add_argument("--json", action="store_true", help="print the result as JSON")
    check.set_defaults(handler=_run_check)

    cache = commands.add_parser("cache", help="list or prune the cache")
    cache_commands = cache.add_subparsers(required=True, metavar="ACTION")
    cache_list = cache_commands.add_parser("list", help="list cache entries")
    cache_list.set_defaults(handler=_run_cache_list)
    cache_prune = cache_commands.add_parser(
        "prune", help="remove the least recently used cache entries"
    )
    cache_prune.add_argument(
        "--keep", type=int, metavar="N", help="keep the N newest entries of each kind"
    )
    cache_prune.add_argument(
        "--max-size", metavar="SIZE", help="remove entries until the cache fits (20G)"
    )
    cache_prune.set_defaults(handler=_run_cache_prune)
    subcommands = (build, config, test, boot, explain, check, features, diff)
    for sub in (*subcommands, cache_list, cache_prune):
        sub.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    return parser


def _add_job_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--base",
        metavar="NAME|PATH|URL",
        help="base config: a Firecracker config name (default "
        "microvm-kernel-ci-ARCH-6.1.config), a file, or an https:// URL",
    )
    parser.add_argument(
        "--base-sha256", metavar="DIGEST", help="expected sha256 of a --base URL"
    )
    parser.add_argument(
        "--source",
        metavar="SPEC",
        help="kernel source: a tarball, a folder, an https:// tarball URL or "
        "git+URL@REF (default: a tree of the base config's series)",
    )
    parser.add_argument(
        "--source-sha256", metavar="DIGEST", help="expected sha256 of a --source URL"
    )
    parser.add_argument(
        "--feature",
        action="append",
        default=[],
        metavar="NAME",
        help="add a feature by name or .toml path (repeatable)",
    )
    parser.add_argument(
        "--no-default-features",
        dest="default_features",
        action="store_false",
        help="leave out the default features",
    )
    parser.add_argument(
        "--fragment",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="a file of CONFIG_ lines to apply (repeatable; later ones win)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="CONFIG_X=VALUE",
        help="one option to apply (repeatable; applied after fragments)",
    )
    parser.add_argument(
        "--resolve-deps",
        action="store_true",
        help="also request what unmet requests depend on, and report each addition",
    )
    parser.add_argument(
        "--allow-unmet",
        action="append",
        default=[],
        metavar="CONFIG_X",
        help="accept that this request does not hold (repeatable)",
    )
    parser.add_argument("--arch", help="guest arch: x86_64 or aarch64 (default: host)")
    parser.add_argument(
        "-j", "--jobs", type=int, help="parallel make jobs (default: all cores)"
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help=f"output folder (default: ./{DEFAULT_OUTPUT})",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the report as JSON on stdout"
    )


def _add_boot_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "output",
        nargs="?",
        type=Path,
        metavar="OUTPUT",
        help=f"output folder of fckernel build (default: ./{DEFAULT_OUTPUT})",
    )
    parser.add_argument(
        "--kernel",
        type=Path,
        metavar="FILE",
        help="a vmlinux or arm64 Image built elsewhere",
    )
    parser.add_argument(
        "--arch", help="the kernel's arch, with --kernel (default: from the image)"
    )


def _boot_target(args: argparse.Namespace) -> TestTarget:
    features = getattr(args, "feature", [])
    if args.kernel is not None:
        with_defaults = getattr(args, "default_features", True)
        if args.output is not None:
            raise InputError(
                "pass either OUTPUT or --kernel, not both",
                "fckernel test OUTPUT, or fckernel test --kernel FILE",
            )
        return target_from_kernel(args.kernel, args.arch, features, with_defaults)
    return target_from_output(args.output or DEFAULT_OUTPUT, features)


def _run_test(args: argparse.Namespace, terminal: Terminal) -> int:
    target = _boot_target(args)
    cache = Cache()
    if target.output is not None:
        log_path = target.output / TEST_LOG
    else:
        log_path = cache.folder("logs") / f"test-{target.kernel.name}.log"
    terminal.info(f"booting {target.kernel}; console in {log_path}")
    if target.arch.name != host_arch():
        terminal.info(
            f"the {target.arch.name} guest's programs come from Debian's "
            f"{target.arch.debian_arch} packages, which mmdebstrap unpacks into "
            "the cache the first time"
        )
    result = run_test(target, log_path, cache)
    for warning in result.warnings:
        terminal.warning(warning)
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    terminal.probe_table(result.to_json())
    if not result.passed:
        raise result.failure_error()
    return 0


def _run_boot(args: argparse.Namespace, terminal: Terminal) -> int:
    target = _boot_target(args)
    return boot_interactive(
        target.kernel, target.arch, Cache(), target.features, on_message=terminal.info
    )


def _run_build(args: argparse.Namespace, terminal: Terminal) -> int:
    if args.plan is not None:
        return _run_plan(args, terminal)
    job = Job(
        output=args.output,
        base=args.base,
        base_sha256=args.base_sha256,
        source=args.source,
        source_sha256=args.source_sha256,
        arch=args.arch,
        features=args.feature,
        default_features=args.default_features,
        fragments=args.fragment,
        sets=args.set,
        allow_unmet=args.allow_unmet,
        resolve_deps=args.resolve_deps,
        jobs=args.jobs,
        compile=args.compile,
        test=args.test,
        rebuild=args.rebuild,
        ccache=args.ccache,
    )
    report: Report | None = None
    started = time.time()
    try:
        report = run_job(job, terminal)
    finally:
        _print_report(args, terminal, job, started)
    return int(report.exit_code or 0)


# Options of one job, which a plan gives per kernel, with their defaults.
_PER_KERNEL_OPTIONS: dict[str, object] = {
    "base": None,
    "base_sha256": None,
    "source": None,
    "source_sha256": None,
    "arch": None,
    "feature": [],
    "default_features": True,
    "fragment": [],
    "set": [],
    "allow_unmet": [],
    "resolve_deps": False,
}


def _run_plan(args: argparse.Namespace, terminal: Terminal) -> int:
    set_options = [
        name
        for name, default in _PER_KERNEL_OPTIONS.items()
        if getattr(args, name) != default
    ]
    if set_options:
        option = "--" + set_options[0].replace("_", "-")
        raise InputError(
            f"{option} does not go with --plan: each kernel of a plan has its own",
            "put it in the plan's [[kernel]] tables, or in [defaults] for all",
        )
    make_job = functools.partial(
        Job,
        jobs=args.jobs,
        compile=True,
        test=args.test,
        rebuild=args.rebuild,
        ccache=args.ccache,
    )
    planned = load_plan(args.plan, args.output, make_job)

    def announce(kernel: PlannedKernel, number: int) -> None:
        terminal.info(f"kernel {number} of {len(planned)}: {kernel.name}")

    results = run_plan(planned, terminal, announce)
    path = write_plan_report(results, args.output)
    if args.json:
        sys.stdout.write(path.read_text())
    terminal.plan_table([result.to_json() for result in results], len(planned))
    terminal.info(f"plan report: {path}")
    return plan_exit_code(results, len(planned))


def _print_report(
    args: argparse.Namespace, terminal: Terminal, job: Job, started: float
) -> None:
    """Print the report this run wrote; an older one in the folder is not it."""
    path = job.output / "report.json"
    if not path.is_file() or path.stat().st_mtime < started:
        return
    data = json.loads(path.read_text())
    if args.json:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    terminal.requests_table(data["requests"])
    for symbol in data["base_unknown_symbols"][:10]:
        terminal.warning(f"base config symbol CONFIG_{symbol} is not in this tree")
    hidden = len(data["base_unknown_symbols"]) - 10
    if hidden > 0:
        terminal.warning(f"... and {hidden} more unknown base symbols (report.json)")
    if data["build"].get("cached"):
        terminal.info(
            "the image came from the cache: same source, config, arch and "
            "toolchain (--rebuild compiles anyway)"
        )
    if data.get("test"):
        terminal.probe_table(data["test"])
    summary = ", ".join(
        f"{count} {status}" for status, count in data["summary"].items() if count
    )
    terminal.info(f"requests: {summary or 'none'}; report: {path}")


def _run_diff(args: argparse.Namespace, terminal: Terminal) -> int:
    a, requested_a = load_for_diff(args.a)
    b, requested_b = load_for_diff(args.b)
    only = None
    if args.requests:
        only = requested_a | requested_b
        if not only:
            terminal.warning(
                "--requests: neither A nor B is an output folder with requests"
            )
    result = diff_configs(a, b, only)
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        for line in result.lines():
            print(line)
    return 0


def _run_explain(args: argparse.Namespace, terminal: Terminal) -> int:
    config = load_for_diff(args.config)[0] if args.config else None
    base, source, arch = args.base, args.source, args.arch
    if args.config is not None and (args.config / REPORT_NAME).is_file():
        # An output folder names the tree and arch its config was resolved on.
        inputs, arch_of_report = _report_inputs(args.config / REPORT_NAME)
        base = base or inputs.get("base")
        source = source or inputs.get("source")
        arch = arch or arch_of_report
    if config is not None and arch is None:
        arch = _config_arch_name(config.values)
    job = Job(
        output=DEFAULT_OUTPUT,
        base=base,
        source=source,
        arch=arch,
        default_features=False,
        compile=False,
    )
    tree = load_job_tree(job)
    values = config.values if config is not None else None
    report = describe_symbol(tree, args.symbol.removeprefix("CONFIG_"), values)
    if args.json:
        sys.stdout.write(json.dumps(report.to_json(), indent=2) + "\n")
    else:
        sys.stdout.write(format_symbol_report(report))
    # Like an unknown request, an unknown symbol is an input to fix.
    return int(ExitCode.OK if report.defined else ExitCode.INPUT)


def _report_inputs(path: Path) -> tuple[dict[str, str], str | None]:
    """Return the base and source specs and the arch an output's report names."""
    try:
        data = json.loads(path.read_text())
        inputs = {
            name: str(data["inputs"][name]["spec"])
            for name in ("base", "source")
            if isinstance(data["inputs"].get(name), dict)
        }
        return inputs, str(data["arch"]) if data.get("arch") else None
    except (OSError, ValueError, KeyError, TypeError):
        return {}, None


def _config_arch_name(values: dict[str, str]) -> str | None:
    if values.get("ARM64") == "y":
        return "aarch64"
    if values.get("X86_64") == "y":
        return "x86_64"
    return None


def _run_check(args: argparse.Namespace, terminal: Terminal) -> int:
    result = check_path(args.path, args.arch)
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    for finding in result.findings:
        if finding.severity == "error":
            terminal.error(finding.message())
        else:
            terminal.warning(finding.message())
    verdict = "ready" if result.ok else "NOT ready"
    terminal.info(f"{args.path}: {verdict} for Firecracker on {result.arch}")
    return int(ExitCode.OK if result.ok else ExitCode.NOT_READY)


def _run_cache_list(args: argparse.Namespace, terminal: Terminal) -> int:
    cache = Cache()
    entries = list_entries(cache)
    for entry in entries:
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.used))
        print(
            f"{entry.kind:10} {format_size(entry.size):>10}  {used}  {entry.path.name}"
        )
    total = format_size(sum(entry.size for entry in entries))
    terminal.info(f"{len(entries)} entries, {total}, in {cache.root}")
    return 0


def _run_cache_prune(args: argparse.Namespace, terminal: Terminal) -> int:
    if args.keep is None and args.max_size is None:
        raise InputError(
            "cache prune needs --keep N or --max-size SIZE",
            "for example: fckernel cache prune --max-size 20G",
        )
    if args.keep is not None and args.keep < 0:
        raise InputError(f"--keep {args.keep}: must be 0 or more")
    max_size = parse_size(args.max_size) if args.max_size else None
    removed = prune(Cache(), keep=args.keep, max_size=max_size)
    for entry in removed:
        print(f"removed {entry.kind}/{entry.path.name} ({format_size(entry.size)})")
    freed = format_size(sum(entry.size for entry in removed))
    terminal.info(f"removed {len(removed)} entries, {freed}")
    return 0


def _run_features(args: argparse.Namespace, terminal: Terminal) -> int:
    for feature in load_features().values():
        mark = "default" if feature.default else "       "
        arches = ",".join(feature.arches)
        print(f"{feature.name:14} {mark}  {arches:16} {feature.description}")
        print(f"{'':14}          options: {' '.join(feature.options)}")
    return 0
