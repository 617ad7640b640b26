"""Measure fckernel against plain `make` on the same source and config.

    python3 bench/run.py [--source TARBALL] [--scenarios config,cold,...]

Scenarios (each timed with /usr/bin/time -v, median of --repeat runs):
  config     `fckernel config` on the default job, source already cached
  cold       `make olddefconfig && make -jN vmlinux` in a fresh folder, against
             `fckernel build` with an empty cache
  unchanged  a second `fckernel build` with nothing changed
  one-option `fckernel build --set CONFIG_NET_SCH_SFQ=y` after the default build
  switch-back  the default config again after a one-option build moved the
             build folder on: compiled incrementally, then with the build folder
             deleted, once with ccache and once without it

`unchanged`, `one-option` and `switch-back` need a filled cache: `cold` fills
it, and without `cold` the first of them fills it with one untimed build.
Ratios for `unchanged` and `one-option` are against a from-scratch compile of
the same run: plain make from `cold`, or else the compile without ccache from
`switch-back`.

Writes bench/results/<date>.json and prints a table of medians and ratios.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = Path("/usr/src/linux-source-6.1.tar.xz")
BASE = "microvm-kernel-ci-x86_64-6.1.config"
SCENARIOS = ("config", "cold", "unchanged", "one-option", "switch-back")
FILLED_MARK = "cache-cold-filled"


def main() -> int:
    args = _parse_args()
    os.environ.setdefault(
        "FCKERNEL_FIRECRACKER_MIRROR",
        str(REPO.parent / "shared" / "firecracker" / "guest_configs"),
    )
    work = Path(tempfile.mkdtemp(prefix="fckernel-bench-"))
    results: dict[str, object] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "source": str(args.source),
        "jobs": args.jobs,
        "scenarios": {},
    }
    try:
        for name in args.scenarios:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            results["scenarios"][name] = RUNNERS[name](args, work)  # type: ignore[index]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _add_scratch_ratios(results["scenarios"])  # type: ignore[arg-type]
    _write(results)
    return 0


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--scenarios",
        type=lambda text: text.split(","),
        default=["config"],
        help=f"comma-separated, from: {', '.join(SCENARIOS)}",
    )
    args = parser.parse_args()
    for name in args.scenarios:
        if name not in SCENARIOS:
            parser.error(f"unknown scenario {name!r}; choose from {SCENARIOS}")
    return args


def timed(command: list[str], env: dict[str, str] | None = None) -> dict[str, float]:
    """Run `command` under /usr/bin/time -v; return wall seconds and peak RSS."""
    completed = subprocess.run(
        ["/usr/bin/time", "-v", *command],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        check=False,
    )
    if completed.returncode != 0:
        sys.exit(f"benchmark command failed: {' '.join(command)}\n{completed.stderr}")
    return {
        "seconds": _wall_seconds(completed.stderr),
        "max_rss_kb": float(_field(completed.stderr, "Maximum resident set size")),
    }


def _wall_seconds(report: str) -> float:
    text = _field(report, "Elapsed (wall clock) time")
    seconds = 0.0
    for part in text.split(":"):
        seconds = seconds * 60 + float(part)
    return seconds


def _field(report: str, name: str) -> str:
    for line in report.splitlines():
        if line.strip().startswith(name):
            return line.rsplit(": ", 1)[1].strip()
    sys.exit(f"/usr/bin/time printed no {name!r}")


def _fckernel(args: argparse.Namespace, work: Path, *words: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "fckernel",
        *words,
        "--source",
        str(args.source),
        "-o",
        str(work / "out"),
    ]


def _env(cache: Path) -> dict[str, str]:
    return {**os.environ, "FCKERNEL_CACHE": str(cache)}


def _median(runs: list[dict[str, float]]) -> dict[str, object]:
    return {
        "median_seconds": statistics.median(run["seconds"] for run in runs),
        "max_rss_kb": max(run["max_rss_kb"] for run in runs),
        "runs": runs,
    }


def bench_config(args: argparse.Namespace, work: Path) -> dict[str, object]:
    cache = work / "cache-config"
    command = _fckernel(args, work, "config")
    timed(command, _env(cache))  # unpacks the source into the cache
    ours = _median([timed(command, _env(cache)) for _ in range(args.repeat)])

    make = _plain_make(args, work)
    timed([*make, "olddefconfig"])  # compiles scripts/kconfig/conf once
    plain = _median([timed([*make, "olddefconfig"]) for _ in range(args.repeat)])
    ours["plain_make_seconds"] = plain["median_seconds"]
    ours["ratio"] = float(ours["median_seconds"]) / float(plain["median_seconds"])
    return ours


def _plain_make(args: argparse.Namespace, work: Path) -> list[str]:
    """Return a plain `make -C TREE O=BUILD ARCH=x86` command on a fresh copy of
    the source and Firecracker's base config, as the shell recipe does it.
    """
    tree = _unpacked(args.source, work)
    build = work / "plain-build"
    shutil.rmtree(build, ignore_errors=True)
    build.mkdir()
    base = Path(os.environ["FCKERNEL_FIRECRACKER_MIRROR"]) / BASE
    shutil.copy(base, build / ".config")
    return ["make", "-C", str(tree), f"O={build}", "ARCH=x86"]


def bench_cold(args: argparse.Namespace, work: Path) -> dict[str, object]:
    make = _plain_make(args, work)
    start = timed([*make, "olddefconfig"])
    plain = timed([*make, f"-j{args.jobs}", "vmlinux"])
    plain["seconds"] += start["seconds"]
    ours = timed(_default_build(args, work), _env(work / "cache-cold"))
    (work / FILLED_MARK).touch()
    return {
        "plain_make_seconds": plain["seconds"],
        "fckernel_seconds": ours["seconds"],
        "fckernel_max_rss_kb": ours["max_rss_kb"],
        "ratio": ours["seconds"] / plain["seconds"],
    }


def bench_unchanged(args: argparse.Namespace, work: Path) -> dict[str, object]:
    cache = _filled_cache(args, work)
    command = _default_build(args, work)
    return _median([timed(command, _env(cache)) for _ in range(args.repeat)])


def bench_one_option(args: argparse.Namespace, work: Path) -> dict[str, object]:
    cache = _filled_cache(args, work)
    command = [*_default_build(args, work), "--set", "CONFIG_NET_SCH_SFQ=y"]
    return _median([timed(command, _env(cache))])


def bench_switch_back(args: argparse.Namespace, work: Path) -> dict[str, object]:
    cache = _filled_cache(args, work)
    build = [*_default_build(args, work), "--rebuild"]
    timed([*build, "--set", "CONFIG_NET_SCH_SFQ=y"], _env(cache))
    incremental = timed(build, _env(cache))
    shutil.rmtree(cache / "build")
    with_ccache = timed(build, _env(cache))
    shutil.rmtree(cache / "build")
    without_ccache = timed([*build, "--no-ccache"], _env(cache))
    return {
        "incremental_seconds": incremental["seconds"],
        "with_ccache_seconds": with_ccache["seconds"],
        "without_ccache_seconds": without_ccache["seconds"],
        "median_seconds": with_ccache["seconds"],
        "ratio": with_ccache["seconds"] / without_ccache["seconds"],
    }


def _default_build(args: argparse.Namespace, work: Path) -> list[str]:
    return _fckernel(args, work, "build", "-j", str(args.jobs))


def _filled_cache(args: argparse.Namespace, work: Path) -> Path:
    """Return the cache `cold` fills; fill it with one build if `cold` did not run."""
    cache = work / "cache-cold"
    if not (work / FILLED_MARK).exists():
        subprocess.run(_default_build(args, work), env=_env(cache), check=True)
        (work / FILLED_MARK).touch()
    return cache


def _add_scratch_ratios(scenarios: dict[str, dict[str, object]]) -> None:
    """Compare `unchanged` and `one-option` with a from-scratch compile of this run."""
    if "cold" in scenarios:
        scratch = scenarios["cold"]["plain_make_seconds"]
    elif "switch-back" in scenarios:
        scratch = scenarios["switch-back"]["without_ccache_seconds"]
    else:
        return
    for name in ("unchanged", "one-option"):
        if name in scenarios:
            data = scenarios[name]
            data["scratch_seconds"] = scratch
            data["ratio"] = float(data["median_seconds"]) / float(scratch)  # type: ignore[arg-type]


def _unpacked(tarball: Path, work: Path) -> Path:
    target = work / "plain-source"
    if target.is_dir():
        return next(target.iterdir())
    target.mkdir()
    subprocess.run(["tar", "-xf", str(tarball), "-C", str(target)], check=True)
    return next(target.iterdir())


def _write(results: dict[str, object]) -> None:
    folder = REPO / "bench" / "results"
    folder.mkdir(exist_ok=True)
    stamp = str(results["date"]).replace(":", "")
    path = folder / f"{stamp}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"{'scenario':12} {'median s':>10} {'ratio':>8}")
    for name, data in results["scenarios"].items():  # type: ignore[attr-defined]
        seconds = data.get("median_seconds", data.get("fckernel_seconds"))
        ratio = data.get("ratio", "")
        ratio_text = f"{ratio:8.3f}" if ratio else ""
        print(f"{name:12} {seconds:10.2f} {ratio_text}")
    print(f"results: {path}")


RUNNERS = {
    "config": bench_config,
    "cold": bench_cold,
    "unchanged": bench_unchanged,
    "one-option": bench_one_option,
    "switch-back": bench_switch_back,
}

if __name__ == "__main__":
    sys.exit(main())
