"""The build pipeline: inputs, base, source, configure, verify, compile, collect.

`Job` contains every input and checks what it can when it is made, so bad input
fails before any download or compile. `run_job()` runs the phases in order and
records each in a `Report`. Once a resolved config exists, it publishes the
output folder whether the job then succeeds or fails. A job that fails earlier
leaves the folder as it was.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

from fckernel.arch import Arch, default_arch, get_arch
from fckernel.artifacts import KeyInputs, lookup, store
from fckernel.base import BaseConfig, default_base_name, load_base
from fckernel.boottest import run_boot_test
from fckernel.cache import (
    Cache,
    atomic_copy,
    check_free_space,
    sha256_bytes,
    sha256_file,
)
from fckernel.dotconfig import (
    ConfigFile,
    format_config,
    is_valid_symbol,
    parse_assignment,
    parse_config,
    read_config,
)
from fckernel.errors import (
    BootTestError,
    BuildError,
    FckernelError,
    HostError,
    InputError,
    Interrupted,
    UnmetRequestsError,
    host_error_from,
)
from fckernel.explain import resolve_deps
from fckernel.fccheck import check_config
from fckernel.features import Feature, select_features
from fckernel.fetch import check_sha256
from fckernel.images import check_image
from fckernel.kconfig import KconfigTree, load_tree
from fckernel.make import (
    MakeContext,
    build_variables,
    ccache_available,
    ccache_stats,
    check_environment,
    check_host_tools,
    make_environment,
    toolchain_versions,
)
from fckernel.optionsdoc import options_markdown
from fckernel.output import Output, output_lock_name
from fckernel.process import run
from fckernel.report import Report
from fckernel.source import Source, prepare_source
from fckernel.testrun import TEST_LOG
from fckernel.verify import (
    Conflict,
    Request,
    Status,
    check_requests,
    check_types,
    follow_feature_renames,
    merge_requests,
)

# A cold 6.1 build folder takes about 2.5 GB; an incremental one much less.
COLD_BUILD_BYTES = 3 * 10**9
WARM_BUILD_BYTES = 5 * 10**8
COMPILE_MARKERS = ("CC ", "AS ", "LD ", "AR ", "HOSTCC ")
OBJECT_COUNT_FILE = ".fckernel-objects"
# The digest of the last olddefconfig input, so an unchanged one is not resolved
# again.
CONFIG_STAMP_FILE = ".fckernel-config-input"


class Events(Protocol):
    """Callbacks a job makes while it runs; the CLI prints them."""

    def phase_started(self, name: str, detail: str) -> None: ...
    def phase_finished(self, name: str, seconds: float) -> None: ...
    def compile_progress(self, done: int, expected: int | None) -> None: ...
    def warning(self, message: str) -> None: ...
    def info(self, message: str) -> None: ...


class QuietEvents:
    """Events for library callers that print nothing."""

    def phase_started(self, name: str, detail: str) -> None:
        pass

    def phase_finished(self, name: str, seconds: float) -> None:
        pass

    def compile_progress(self, done: int, expected: int | None) -> None:
        pass

    def warning(self, message: str) -> None:
        pass

    def info(self, message: str) -> None:
        pass


@dataclass
class Job:
    """Every input of one `fckernel build` or `fckernel config`.

    Making a Job checks the inputs that need no download: the arch, the
    features, each fragment and each --set value.
    """

    output: Path
    base: str | None = None
    base_sha256: str | None = None
    source: str | None = None
    source_sha256: str | None = None
    arch: str | None = None
    features: list[str] = field(default_factory=list)
    default_features: bool = True
    fragments: list[Path] = field(default_factory=list)
    sets: list[str] = field(default_factory=list)
    allow_unmet: list[str] = field(default_factory=list)
    jobs: int | None = None
    compile: bool = True
    test: bool = False
    resolve_deps: bool = False
    rebuild: bool = False
    ccache: bool | None = None  # None: use ccache when it is installed
    cache_root: Path | None = None

    def __post_init__(self) -> None:
        self._check_values()
        arch = self.resolved_arch()
        self.selected, self.feature_warnings = select_features(
            self.features, self.default_features, arch.name
        )
        self.requests = self._collect_requests(self.selected)
        self.allow_unmet = [
            symbol.removeprefix("CONFIG_") for symbol in self.allow_unmet
        ]
        if self.jobs is not None and self.jobs < 1:
            raise InputError(f"--jobs {self.jobs}: must be 1 or more")

    def _check_values(self) -> None:
        if not str(self.output).strip() or str(self.output) == ".":
            raise InputError(
                f"output folder {str(self.output)!r} is the current folder or empty",
                "pass -o with a new or empty folder, such as -o fckernel-out",
            )
        for option, value in (
            ("--arch", self.arch),
            ("--base", self.base),
            ("--source", self.source),
        ):
            if value is not None and not value.strip():
                raise InputError(
                    f"{option} is empty", f"give {option} a value or leave it out"
                )
        for option, digest, spec in (
            ("--base-sha256", self.base_sha256, self.base),
            ("--source-sha256", self.source_sha256, self.source),
        ):
            if digest is None:
                continue
            check_sha256(digest, option)
            if not (spec or "").startswith(("https://", "http://")):
                raise InputError(
                    f"{option} applies only to a URL, and {spec or 'the default'} "
                    "is not one",
                    f"leave out {option}, or pass a URL",
                )
        for symbol in self.allow_unmet:
            if not is_valid_symbol(symbol.removeprefix("CONFIG_")):
                raise InputError(
                    f"--allow-unmet {symbol!r} is not a symbol name",
                    "write it like CONFIG_SERIO_GSCPS2",
                )

    def resolved_arch(self) -> Arch:
        if self.arch:
            return get_arch(self.arch)
        if self.base and Path(self.base).is_file():
            named = _config_arch(Path(self.base))
            if named:
                return get_arch(named)
        if self.base and "aarch64" in Path(self.base).name:
            return get_arch("aarch64")
        if self.base and "x86_64" in Path(self.base).name:
            return get_arch("x86_64")
        return default_arch()

    def _collect_requests(self, features: list[Feature]) -> list[Request]:
        requests = [
            Request(symbol, value, f"feature {feature.name}")
            for feature in features
            for symbol, value in feature.options.items()
        ]
        for path in self.fragments:
            fragment = read_config(path)
            requests += [
                Request(symbol, value, f"fragment {path}:{line}")
                for symbol, value, line, _, _ in fragment.repeats
            ]
            requests += [
                Request(symbol, value, f"fragment {path}:{fragment.lines[symbol]}")
                for symbol, value in fragment.values.items()
            ]
        for number, text in enumerate(self.sets, start=1):
            symbol, value = parse_assignment(text, f"--set #{number}")
            requests.append(Request(symbol, value, f"--set #{number}"))
        return requests


def run_job(job: Job, events: Events | None = None) -> Report:
    """Run `job` and return its report; raise FckernelError when it fails.

    The output folder gets the report, the log and the resolved config in every
    case, and the boot image only when every phase succeeded.
    """
    return _Pipeline(job, events or QuietEvents()).run()


class _Pipeline:
    def __init__(self, job: Job, events: Events) -> None:
        self.job = job
        self.events = events
        self.arch = job.resolved_arch()
        self.cache = Cache(job.cache_root)
        self.output = Output(job.output)
        self.report = Report(
            command="build" if job.compile else "config", arch=self.arch.name
        )
        self.report.features = [feature.name for feature in job.selected]

    def run(self) -> Report:
        check_environment()
        with self.cache.lock(
            output_lock_name(self.output.path),
            f"waiting for another fckernel writing {self.output.path}",
        ):
            self.output.check()
            try:
                self._run_staged()
            finally:
                self._finish()
        return self.report

    def _run_staged(self) -> None:
        try:
            staging = self.output.stage()
            with ExitStack() as locks, (staging / "build.log").open("w") as log:
                self._run_phases(staging, log, locks)
            self.report.status = "ok"
            self.report.exit_code = 0
        except FckernelError as error:
            self._record_failure(error)
            raise
        except KeyboardInterrupt as error:
            self._record_failure(Interrupted("interrupted"))
            raise Interrupted(
                "interrupted; the output folder was not changed"
            ) from error
        except OSError as error:
            failure = host_error_from(error)
            self._record_failure(failure)
            raise failure from error

    def _run_phases(self, staging: Path, log: IO[str], locks: ExitStack) -> None:
        for warning in self.job.feature_warnings:
            self._warn(warning)
        merged, conflicts = merge_requests(self.job.requests)
        self._record_conflicts(conflicts)
        requested = {request.symbol for request in merged}
        for symbol in self.job.allow_unmet:
            if symbol not in requested:
                self._warn(f"--allow-unmet CONFIG_{symbol}: nothing requests it")

        with self._phase("base", self.job.base or default_base_name(self.arch)):
            base = self._load_base()
        with self._phase("source", self.job.source or f"series {base.series}"):
            source = self._prepare_source(base)
        if source.cache_entry is not None:
            # Keeps `fckernel cache prune` away from the tree while it is in use.
            locks.enter_context(
                self.cache.lock(
                    f"source-{source.cache_entry}",
                    f"waiting for another fckernel using {source.spec}",
                )
            )
        with self._phase("index", "reading Kconfig symbols"):
            index = self._symbol_index(source)
        merged, followed = follow_feature_renames(merged, index)
        for rename in followed:
            self._warn(rename.message())
        self.report.followed_renames = [rename.to_json() for rename in followed]
        check_types(merged, index)
        self.report.base_unknown_symbols = sorted(
            symbol for symbol in base.config.values if symbol not in index
        )
        check_host_tools(self.arch)
        context = self._make_context(source)
        with self.cache.lock(
            context.build_dir.name,
            f"waiting for another fckernel using {context.build_dir}",
        ):
            with self._phase("configure", "make olddefconfig"):
                final_text = self._configure(context, base, merged, staging, log)
            if self.job.resolve_deps:
                merged, final_text = self._resolve_deps(
                    context, base, merged, index, final_text, staging, log
                )
            with self._phase("verify", f"{len(merged)} requests"):
                final = parse_config(final_text, "resolved config").values
                self._check_arch(final, merged)
                self._record_base_changes(base, final, merged, index)
                self._check_firecracker(final)
                self._verify(base, final, merged, index, staging)
            if self.job.compile:
                self._compile_and_collect(context, source, final_text, staging, log)
        if self.job.compile and self.job.test:
            self._boot_test(staging)

    def _load_base(self) -> BaseConfig:
        spec = self.job.base or default_base_name(self.arch)
        base = load_base(spec, self.cache, self.job.base_sha256)
        if base.arch and base.arch != self.arch.name:
            raise InputError(
                f"base config {spec} is for {base.arch}, but the job builds for "
                f"{self.arch.name}",
                f"pass --arch {base.arch}, or a base config for {self.arch.name}",
            )
        self.report.inputs["base"] = base.to_json()
        return base

    def _prepare_source(self, base: BaseConfig) -> Source:
        source = prepare_source(
            self.job.source, base.series, self.cache, self.job.source_sha256
        )
        if base.series and source.series != base.series:
            self._warn(
                f"the source is Linux {source.version} but the base config "
                f"{base.spec} is for {base.series}; expect more unmet requests"
            )
        self.report.inputs["source"] = source.to_json()
        self.events.info(
            f"source: Linux {source.version} from {source.spec} ({source.kind})"
        )
        self.report.inputs["fragments"] = [
            {"path": str(path), "sha256": sha256_file(path)}
            for path in self.job.fragments
        ]
        self.report.inputs["sets"] = list(self.job.sets)
        self.report.kernel_version = source.version
        return source

    def _symbol_index(self, source: Source) -> KconfigTree:
        return load_tree(
            source.path, self.arch.kernel_arch, self.cache.folder("index"), source.key
        )

    def _make_context(self, source: Source) -> MakeContext:
        build_dir = self.cache.folder("build", f"{source.key}-{self.arch.name}")
        self.report.build["folder"] = str(build_dir)
        return MakeContext(source.path, build_dir, self.arch)

    def _configure(
        self,
        context: MakeContext,
        base: BaseConfig,
        merged: list[Request],
        staging: Path,
        log: IO[str],
    ) -> str:
        values = dict(base.config.values)
        values.update((request.symbol, request.value) for request in merged)
        input_text = format_config(values.items())
        config_path = context.build_dir / ".config"
        # Kconfig's result depends on the tree, this input and the toolchain
        # (through $(shell,...) macros); the build folder is per tree.
        stamp = sha256_bytes(
            (input_text + json.dumps(toolchain_versions(self.arch))).encode()
        )
        stamp_path = context.build_dir / CONFIG_STAMP_FILE
        unchanged = stamp_path.is_file() and stamp_path.read_text() == stamp
        if not unchanged or not config_path.is_file():
            stamp_path.unlink(missing_ok=True)
            config_path.write_text(input_text)
            self._make(context, log, "olddefconfig")
            stamp_path.write_text(stamp)
        final_text = config_path.read_text()
        (staging / "config").write_text(final_text)
        return final_text

    def _resolve_deps(
        self,
        context: MakeContext,
        base: BaseConfig,
        merged: list[Request],
        index: KconfigTree,
        final_text: str,
        staging: Path,
        log: IO[str],
    ) -> tuple[list[Request], str]:
        """Add the requests that unmet ones depend on, then resolve once more."""
        final = parse_config(final_text, "resolved config").values
        outcomes = check_requests(merged, base.config, ConfigFile(final), index, set())
        unmet = {
            outcome.request.symbol: outcome.request.value
            for outcome in outcomes
            if outcome.status == Status.UNMET
        }
        if not unmet:
            return merged, final_text
        explicit = {request.symbol: request.value for request in merged}
        resolution = resolve_deps(index, unmet, final, explicit)
        self.report.resolution = resolution.to_json()
        added = [
            Request(a.symbol, a.value, f"--resolve-deps for CONFIG_{a.needed_by}")
            for a in resolution.additions
        ]
        for request in added:
            added_text = f"CONFIG_{request.symbol}={request.value}"
            self.events.info(f"--resolve-deps: added {added_text} ({request.origin})")
        for rejection in resolution.rejections:
            self._warn(f"--resolve-deps: {rejection.reason}")
        if not added:
            return merged, final_text
        with self._phase("resolve", f"{len(added)} added requests"):
            final_text = self._configure(context, base, merged + added, staging, log)
        return merged + added, final_text

    def _check_arch(self, final: dict[str, str], requests: list[Request]) -> None:
        """Raise InputError when the resolved config is no longer for this arch,
        as after --set CONFIG_64BIT=n on x86_64.
        """
        symbol = self.arch.config_symbol
        if final.get(symbol) == "y":
            return
        related = [
            f"CONFIG_{r.symbol}={r.value} ({r.origin})"
            for r in requests
            if r.value == "n" and r.symbol in ("64BIT", symbol)
        ]
        cause = f"; check {', '.join(related)}" if related else ""
        raise InputError(
            f"the resolved config is not for {self.arch.name}: CONFIG_{symbol} is "
            f"{final.get(symbol, 'n')} after olddefconfig{cause}",
            f"Firecracker boots only 64-bit guests; keep CONFIG_{symbol}=y",
        )

    def _record_base_changes(
        self,
        base: BaseConfig,
        final: dict[str, str],
        requests: list[Request],
        index: KconfigTree,
    ) -> None:
        """Record the base values this tree's Kconfig did not keep; on a tree of
        another series, say how much of the base config was lost.
        """
        requested = {request.symbol for request in requests}
        changed = {}
        for symbol, value in base.config.values.items():
            found = index.symbol(symbol)
            if found is None or symbol in requested:
                continue
            # Prompt-less symbols that report the toolchain or what an arch
            # supports change with the compiler, not with the kernel's choices.
            if not found.prompts and _DERIVED_SYMBOL.search(symbol):
                continue
            if value != final.get(symbol, "n"):
                changed[symbol] = (value, final.get(symbol, "n"))
        self.report.base_changed = changed
        series = base.series
        version = self.report.kernel_version or ""
        if not series or version.startswith(f"{series}."):
            return
        unknown = len(self.report.base_unknown_symbols)
        self._warn(
            f"on Linux {version}, {unknown} symbols of the {series} base config do "
            f"not exist and Kconfig changed {len(changed)} of its settings; "
            "report.json lists them under base_unknown_symbols and base_changed"
        )

    def _check_firecracker(self, final: dict[str, str]) -> None:
        result = check_config(ConfigFile(final), self.arch, "resolved config")
        self.report.firecracker_check = result.to_json()
        for finding in result.findings:
            self._warn(f"Firecracker check ({finding.severity}): {finding.message()}")

    def _verify(
        self,
        base: BaseConfig,
        final: dict[str, str],
        merged: list[Request],
        index: KconfigTree,
        staging: Path,
    ) -> None:
        outcomes = check_requests(
            merged, base.config, ConfigFile(final), index, set(self.job.allow_unmet)
        )
        self.report.outcomes = outcomes
        title = f"Linux {self.report.kernel_version} for {self.arch.name}"
        (staging / "OPTIONS.md").write_text(options_markdown(outcomes, index, title))
        failed = self.report.failed_outcomes()
        if failed:
            names = ", ".join(f"CONFIG_{o.request.symbol}" for o in failed[:10])
            if len(failed) > 10:
                names += f" and {len(failed) - 10} more"
            raise UnmetRequestsError(
                f"{len(failed)} requested option(s) did not take: {names}",
                "see the report for each reason; pass --allow-unmet CONFIG_X "
                "to accept one",
            )

    def _compile_and_collect(
        self,
        context: MakeContext,
        source: Source,
        final_text: str,
        staging: Path,
        log: IO[str],
    ) -> None:
        final = parse_config(final_text, "resolved config").values
        if final.get("DEBUG_INFO_BTF") == "y":
            _require_pahole()
        self.report.toolchain = toolchain_versions(self.arch)
        key = KeyInputs(
            source_key=source.key,
            config_text=final_text,
            arch=self.arch.name,
            toolchain=self.report.toolchain,
            make_variables=(
                *context.command(self.arch.image_target)[4:],
                *build_variables(),
            ),
        ).key()
        self.report.build["artifact_key"] = key
        os.utime(context.build_dir)  # marks the folder as recently used

        # A folder's key is its path, not its content, so its images are not cached.
        use_cache = source.kind != "directory"
        cached = None
        if use_cache and not self.job.rebuild:
            cached = lookup(self.cache, key, self.arch.image_name)
        if cached is not None:
            with self._phase("collect", "cached image"):
                self.report.build["cached"] = True
                self._collect(cached, staging)
            return
        self.report.build["cached"] = False
        self._compile(context, log)
        with self._phase("collect", str(self.output.path)):
            image = context.build_dir / self.arch.image_path
            self._collect(image, staging)
            if use_cache:
                meta = {"kernel_version": self.report.kernel_version}
                store(self.cache, key, image, meta)

    def _compile(self, context: MakeContext, log: IO[str]) -> None:
        fresh = not (context.build_dir / self.arch.image_path).exists()
        check_free_space(
            context.build_dir,
            COLD_BUILD_BYTES if fresh else WARM_BUILD_BYTES,
            "the kernel build",
        )
        ccache_dir = self._ccache_dir()
        before = ccache_stats(ccache_dir) if ccache_dir else None
        jobs = self.job.jobs or os.cpu_count() or 1
        with self._phase("compile", f"make -j{jobs} {self.arch.image_target}"):
            count = self._make(
                context,
                log,
                self.arch.image_target,
                jobs=jobs,
                count_objects=True,
                ccache_dir=ccache_dir,
            )
        self.report.build["objects_compiled"] = count
        if ccache_dir and before is not None:
            after = ccache_stats(ccache_dir)
            self.report.build["ccache"] = {
                name: after[name] - before[name] for name in after
            }
        if fresh:
            (context.build_dir / OBJECT_COUNT_FILE).write_text(str(count))

    def _ccache_dir(self) -> Path | None:
        requested = self.job.ccache
        available = ccache_available(self.arch)
        if requested and not available:
            raise HostError(
                "--ccache: ccache or its compiler wrapper is not installed",
                "install it: apt-get install ccache (or pass --no-ccache)",
            )
        if requested is False or not available:
            return None
        return self.cache.folder("ccache")

    def _make(
        self,
        context: MakeContext,
        log: IO[str],
        *targets: str,
        jobs: int | None = None,
        count_objects: bool = False,
        ccache_dir: Path | None = None,
    ) -> int:
        expected = _read_object_count(context.build_dir) if count_objects else None
        done = 0
        disk_full_line = ""

        def on_line(line: str) -> None:
            nonlocal done, disk_full_line
            if count_objects and line.lstrip().startswith(COMPILE_MARKERS):
                done += 1
                self.events.compile_progress(done, expected)
            if DISK_FULL_TEXT in line and not disk_full_line:
                disk_full_line = line.strip()

        command = context.command(*targets, jobs=jobs)
        environment = make_environment(ccache_dir)
        result = run(command, log=log, on_line=on_line, env=environment)
        if not result.ok and disk_full_line:
            free = shutil.disk_usage(context.build_dir).free
            raise HostError(
                f"the disk filled up while compiling in {context.build_dir} "
                f"({free // 2**20} MiB free now): {disk_full_line}",
                "free some space, or point FCKERNEL_CACHE at a larger disk; the "
                "next build goes on from what was compiled",
            )
        if not result.ok:
            tail = "\n".join(result.tail[-15:])
            raise BuildError(
                f"`{result.quoted()}` failed with exit code {result.returncode}:\n"
                f"{tail}",
                f"the whole output is in {self.output.path / 'build.log'}",
            )
        return done

    def _collect(self, image: Path, staging: Path) -> None:
        if not image.is_file():
            raise BuildError(
                f"make finished but wrote no {image}",
                f"the whole output is in {self.output.path / 'build.log'}",
            )
        check_image(image, self.arch)
        target = staging / self.arch.image_name
        atomic_copy(image, target)
        self.report.artifacts = [
            {
                "name": self.arch.image_name,
                "size": target.stat().st_size,
                "sha256": sha256_file(target),
            }
        ]

    def _boot_test(self, staging: Path) -> None:
        kernel = staging / self.arch.image_name
        with self._phase("test", "booting the kernel and running the probes"):
            try:
                result = run_boot_test(
                    kernel, self.arch, self.job.selected, staging / TEST_LOG, self.cache
                )
            except InputError as unloadable:
                # The image was built here, so a VM that cannot load it is a
                # failed boot test, not a bad input. The staged paths are gone.
                raise BootTestError(
                    unloadable.message.replace(str(staging), str(self.output.path)),
                    f"read the guest's console in {self.output.path / TEST_LOG}",
                ) from unloadable
        for warning in result.warnings:
            self._warn(warning)
        self.report.test = result.to_json()
        self.report.test["log"] = str(self.output.path / TEST_LOG)
        if not result.passed:
            error = result.failure_error()
            if error.hint:
                error.hint = error.hint.replace(str(staging), str(self.output.path))
            raise error

    @contextmanager
    def _phase(self, name: str, detail: str) -> Iterator[None]:
        self.events.phase_started(name, detail)
        start = time.monotonic()
        try:
            yield
        finally:
            seconds = time.monotonic() - start
            self.report.timings[name] = seconds
        self.events.phase_finished(name, seconds)

    def _warn(self, message: str) -> None:
        self.report.warnings.append(message)
        self.events.warning(message)

    def _record_conflicts(self, conflicts: list[Conflict]) -> None:
        for conflict in conflicts:
            self.report.conflicts.append(conflict.message())
            if conflict.winner.from_user and conflict.loser.from_user:
                self._warn(conflict.message())

    def _record_failure(self, error: FckernelError) -> None:
        self.report.status = {
            "UnmetRequestsError": "unmet",
            "BootTestError": "test-failed",
            "Interrupted": "interrupted",
        }.get(type(error).__name__, "failed")
        self.report.error = error.message
        self.report.exit_code = int(error.exit_code)

    def _finish(self) -> None:
        staging = self.output.staging
        configured = staging is not None and (staging / "config").is_file()
        if self.report.status == "interrupted" or not configured:
            # Failed before a config existed: the earlier output stays as it was.
            self.output.discard()
            return
        self.output.publish(self.report.dumps())


def _config_arch(path: Path) -> str | None:
    """Return the arch a local config file is for, from its X86_64/ARM64 lines."""
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("CONFIG_X86_64=y"):
                    return "x86_64"
                if line.startswith("CONFIG_ARM64=y"):
                    return "aarch64"
    except OSError:
        return None
    return None


def _require_pahole() -> None:
    if shutil.which("pahole") is None:
        raise HostError(
            "CONFIG_DEBUG_INFO_BTF=y needs pahole, which is not installed",
            "install it: apt-get install pahole (or turn off CONFIG_DEBUG_INFO_BTF)",
        )


# Names of symbols derived from the toolchain or the arch's capabilities.
_DERIVED_SYMBOL = re.compile(
    r"^(CC|AS|LD|GCC|CLANG|RUSTC|PAHOLE|TOOLS|HAVE|ARCH_HAS|ARCH_SUPPORTS|"
    r"ARCH_WANT|ARCH_USE)_|_VERSION(_TEXT)?$"
)
# The message of the compiler, the linker or make when a write fails on a full disk.
DISK_FULL_TEXT = "No space left on device"


def _read_object_count(build_dir: Path) -> int | None:
    try:
        return int((build_dir / OBJECT_COUNT_FILE).read_text())
    except (OSError, ValueError):
        return None


def load_job_tree(job: Job) -> KconfigTree:
    """Prepare the job's base and source, and read the tree's Kconfig files."""
    pipeline = _Pipeline(job, QuietEvents())
    base = pipeline._load_base()
    source = prepare_source(job.source, base.series, pipeline.cache, job.source_sha256)
    return pipeline._symbol_index(source)
