"""Tests for boot tests: the guest's init, console parsing and whole runs."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import stat
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from fckernel import vm
from fckernel.arch import get_arch
from fckernel.boottest import (
    BootTestResult,
    check_kernel,
    required_programs,
    run_boot_test,
)
from fckernel.build import Job, run_job
from fckernel.cache import TEMP_PREFIX, Cache
from fckernel.elf import EM_AARCH64, EM_X86_64
from fckernel.errors import BootTestError, ExitCode, InputError
from fckernel.features import Feature, Probe, select_features
from fckernel.guest import (
    DONE_MARKER,
    PROBE_MARKER,
    START_MARKER,
    ConsoleParser,
    GuestProbe,
    guest_probes,
    probe_files,
    render_probe_init,
    render_probe_runner,
    render_shell_init,
)
from fckernel.initramfs import BUSYBOX, Initramfs
from fckernel.testrun import TestTarget as BootTarget
from fckernel.testrun import run_test, target_from_kernel

X86_64 = get_arch("x86_64")
DEFAULT_FEATURES = {"iptables", "crypto-accel", "evdev", "fq-codel", "autofs"}
KERNEL_ENV = "FCKERNEL_TEST_KERNEL"
# Bounds the interactive test: a TCG boot plus the KVM check, with margin.
INTERACTIVE_TIMEOUT_SECONDS = 300

needs_busybox = pytest.mark.skipif(
    not Path(BUSYBOX).is_file(), reason="needs the Debian package busybox-static"
)


def feature(name: str, *probes: Probe) -> Feature:
    return Feature(name, "made up for a test", False, ("x86_64",), {}, probes)


def probe_line(index: int, feature: str, probe: str, code: int, output: str) -> str:
    fields = {
        "index": index,
        "feature": feature,
        "probe": probe,
        "status": "pass" if code == 0 else "fail",
        "exit": code,
        "output": base64.b64encode(output.encode()).decode(),
    }
    return PROBE_MARKER + json.dumps(fields)


def elf_header(machine: int, bits: int = 64) -> bytes:
    """Return the first 64 bytes of an ELF executable with no program headers."""
    ident = b"\x7fELF" + bytes([2 if bits == 64 else 1, 1, 1]) + bytes(9)
    rest = struct.pack("<HHIQQQIHHHHHH", 2, machine, 1, 0, 0, 0, 0, 64, 56, 0, 64, 0, 0)
    return ident + rest


TWO_PROBES = guest_probes(
    [
        feature("net", Probe("first", "true"), Probe("second", "false")),
        feature("fs", Probe("third", "true")),
    ]
)


# The guest's init script, run on the host under busybox sh. Only the probe
# runner runs, never the mounts or the reboot, and only made-up probes.


@needs_busybox
def test_runner_prints_result_lines(tmp_path: Path) -> None:
    quirky = "printf 'out\\n'; printf 'err \"quoted\" \\\\ \\001\\n' >&2; exit 3"
    probes = guest_probes(
        [
            feature("demo", Probe("passes", "true"), Probe("fails", quirky)),
            feature('it\'s "odd"', Probe("$(reboot)", "echo hi")),
        ]
    )

    console = run_runner_on_host(tmp_path, probes)

    parser = parse(probes, console)
    results = parser.results("missing")
    assert parser.started_at is not None
    assert parser.done
    assert parser.invalid_lines == []
    assert [r.status for r in results] == ["pass", "fail", "pass"]
    assert results[1].exit_code == 3
    assert results[1].output == 'out\nerr "quoted" \\ \x01\n'
    assert results[2].feature == 'it\'s "odd"'
    assert results[2].probe == "$(reboot)"


@needs_busybox
def test_runner_kills_hung_probe(tmp_path: Path) -> None:
    probes = guest_probes([feature("demo", Probe("hangs", "sleep 30"))])

    console = run_runner_on_host(tmp_path, probes, probe_timeout=1)

    (result,) = parse(probes, console).results("missing")
    assert result.exit_code == 137
    assert "per-probe time limit" in result.reason


@needs_busybox
def test_runner_cuts_long_output(tmp_path: Path) -> None:
    probes = guest_probes(
        [feature("demo", Probe("chatty", "yes | head -c 9000; false"))]
    )

    console = run_runner_on_host(tmp_path, probes)

    (result,) = parse(probes, console).results("missing")
    assert len(result.output) == 4096


def run_runner_on_host(
    folder: Path, probes: list[GuestProbe], probe_timeout: int = 60
) -> str:
    probe_dir = folder / "probes"
    probe_dir.mkdir()
    for path, data in probe_files(probes).items():
        (probe_dir / Path(path).name).write_bytes(data)
    env_file = folder / "env.sh"
    env_file.write_text("")
    script = render_probe_runner(probes, str(env_file), probe_timeout, str(probe_dir))
    completed = subprocess.run(
        [str(BUSYBOX), "sh", "-c", script],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return completed.stdout


def parse(probes: list[GuestProbe], console: str) -> ConsoleParser:
    parser = ConsoleParser(probes)
    for number, line in enumerate(console.splitlines()):
        parser.feed(float(number), line)
    return parser


def test_probe_init_mounts_and_stops() -> None:
    init = render_probe_init(TWO_PROBES, "/etc/env.sh")

    assert init.startswith("#!/bin/busybox sh\n")
    assert "\n. /etc/env.sh\n" in init
    assert "mount -t devtmpfs devtmpfs /dev\n" in init
    assert "mount -t proc proc /proc\n" in init
    assert init.index(DONE_MARKER) < init.index("reboot -f")
    assert init.endswith("reboot -f\npoweroff -f\n")


def test_shell_init_starts_shell() -> None:
    init = render_shell_init("/etc/env.sh")

    assert "setsid cttyhack sh\n" in init
    assert init.index("cttyhack") < init.index("reboot -f")


def test_probe_files_hold_scripts() -> None:
    files = probe_files(TWO_PROBES)

    assert files == {
        "/fckernel/probes/0.sh": b"true\n",
        "/fckernel/probes/1.sh": b"false\n",
        "/fckernel/probes/2.sh": b"true\n",
    }


def test_required_programs_in_order() -> None:
    probes = guest_probes(
        [
            feature("a", Probe("x", "true", ("tc", "ip")), Probe("y", "true", ("ip",))),
            feature("b", Probe("z", "true", ("iptables-nft", "tc"))),
        ]
    )

    assert required_programs(probes) == ["tc", "ip", "iptables-nft"]


# Console parsing.


def test_parser_reads_results_among_kernel_lines() -> None:
    console = [
        "[    0.000000] Linux version 6.1.0",
        START_MARKER,
        "[    1.5] random: crng init done" + probe_line(0, "net", "first", 0, ""),
        probe_line(1, "net", "second", 1, "boom\n") + "\r",
        probe_line(2, "fs", "third", 0, ""),
        DONE_MARKER,
    ]

    parser = parse(TWO_PROBES, "\n".join(console))

    results = parser.results("missing")
    assert [r.status for r in results] == ["pass", "fail", "pass"]
    assert results[1].output == "boom\n"
    assert results[1].reason == "exited with status 1"
    assert results[0].output == ""
    assert parser.started_at == 1.0
    assert parser.last_probe_at == 4.0
    assert parser.complete


def test_parser_ignores_garbage() -> None:
    console = [
        START_MARKER,
        PROBE_MARKER + "{not json",
        PROBE_MARKER + "[1, 2]",
        PROBE_MARKER + json.dumps({"index": 7, "feature": "net", "probe": "first"}),
        PROBE_MARKER + json.dumps({"index": 0, "feature": "fs", "probe": "first"}),
        probe_line(0, "net", "first", 0, "").replace('"output": ""', '"output": "!"'),
        "\x00\xff binary noise",
        probe_line(2, "fs", "third", 0, ""),
    ]

    parser = parse(TWO_PROBES, "\n".join(console))

    results = parser.results("the VM exited")
    assert len(parser.invalid_lines) == 5
    assert results[0].status == "fail"
    assert results[0].exit_code is None
    assert results[1].reason == "the VM exited"
    assert results[2].status == "pass"
    assert not parser.complete


def test_parser_derives_status_from_exit() -> None:
    line = probe_line(0, "net", "first", 2, "").replace('"fail"', '"pass"')

    (first, _, _) = parse(TWO_PROBES, line).results("missing")

    assert first.status == "fail"
    assert first.exit_code == 2


def test_parser_keeps_first_of_repeated_results() -> None:
    console = [
        probe_line(0, "net", "first", 0, ""),
        probe_line(0, "net", "first", 5, ""),
    ]

    (first, _, _) = parse(TWO_PROBES, "\n".join(console)).results("missing")

    assert first.passed


def test_parser_records_panic() -> None:
    console = [
        START_MARKER,
        probe_line(0, "net", "first", 0, ""),
        "[    2.1] Kernel panic - not syncing: Attempted to kill init! exitcode=0x9",
        "[    2.2] Kernel panic - not syncing: a second one",
    ]

    parser = parse(TWO_PROBES, "\n".join(console))

    assert parser.panic == "Attempted to kill init! exitcode=0x9"
    assert not parser.done


# Kernel checks.


def test_check_kernel_accepts_x86_64_elf(tmp_path: Path) -> None:
    kernel = tmp_path / "vmlinux"
    kernel.write_bytes(elf_header(EM_X86_64))

    check_kernel(kernel, X86_64)


def test_check_kernel_rejects_non_elf(tmp_path: Path) -> None:
    kernel = tmp_path / "vmlinux"
    kernel.write_bytes(b"\x1f\x8b\x08\x00" + bytes(600))

    with pytest.raises(InputError, match="1f 8b 08 00, not the ELF magic 7f 45 4c 46"):
        check_kernel(kernel, X86_64)


def test_check_kernel_names_bzimage(tmp_path: Path) -> None:
    kernel = tmp_path / "bzImage"
    kernel.write_bytes(b"MZ" + bytes(0x200) + b"HdrS" + bytes(100))

    with pytest.raises(InputError, match="bzImage") as raised:
        check_kernel(kernel, X86_64)
    assert raised.value.hint is not None
    assert "vmlinux" in raised.value.hint


def test_check_kernel_rejects_other_machine(tmp_path: Path) -> None:
    kernel = tmp_path / "vmlinux"
    kernel.write_bytes(elf_header(EM_AARCH64))

    with pytest.raises(InputError, match="machine 183, not x86_64"):
        check_kernel(kernel, X86_64)


def test_check_kernel_rejects_32_bit(tmp_path: Path) -> None:
    kernel = tmp_path / "vmlinux"
    kernel.write_bytes(elf_header(EM_X86_64, bits=32))

    with pytest.raises(InputError, match="not x86_64"):
        check_kernel(kernel, X86_64)


def test_check_kernel_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        check_kernel(tmp_path / "vmlinux", X86_64)


def test_check_kernel_accepts_arm64_image(tmp_path: Path) -> None:
    kernel = tmp_path / "Image"
    kernel.write_bytes(bytes(56) + b"ARM\x64" + bytes(64))

    check_kernel(kernel, get_arch("aarch64"))


def test_check_kernel_rejects_aarch64_elf(tmp_path: Path) -> None:
    kernel = tmp_path / "vmlinux"
    kernel.write_bytes(elf_header(EM_AARCH64))

    with pytest.raises(InputError, match="ELF file, not an arm64 Image for aarch64"):
        check_kernel(kernel, get_arch("aarch64"))


def test_check_kernel_rejects_missing_arm64_image(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found") as raised:
        check_kernel(tmp_path / "Image", get_arch("aarch64"))
    assert raised.value.hint == "pass the Image from the build's output folder"


# Whole runs against a stand-in QEMU that prints a prepared console.


@pytest.fixture
def fake_qemu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Install a QEMU that fails under KVM and otherwise prints console.txt."""
    folder = tmp_path / "bin"
    folder.mkdir()
    qemu = folder / "qemu-system-x86_64"
    qemu.write_text(
        "#!/bin/sh\n"
        'case " $* " in *" kvm "*) echo "KVM internal error. Suberror: 1";'
        " exec sleep 600 ;; esac\n"
        f'cat "{tmp_path}/console.txt"\n'
        f'[ -e "{tmp_path}/hang" ] && exec sleep 600\n'
        "exit 0\n"
    )
    qemu.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(vm, "_kvm_decision", None)
    monkeypatch.setattr(vm, "_kvm_device_usable", lambda: True)
    kernel = tmp_path / "vmlinux"
    kernel.write_bytes(elf_header(EM_X86_64))
    return tmp_path


def fake_run(folder: Path, console: list[str], timeout: float = 60) -> BootTestResult:
    (folder / "console.txt").write_text("\n".join(console) + "\n")
    features = [
        feature("net", Probe("first", "true"), Probe("second", "false")),
        feature("fs", Probe("third", "true")),
    ]
    return run_boot_test(
        folder / "vmlinux",
        X86_64,
        features,
        folder / "logs" / "console.log",
        Cache(folder / "cache"),
        timeout=timeout,
    )


ALL_PASS = [
    "[    0.0] Linux version 6.1.0",
    START_MARKER,
    probe_line(0, "net", "first", 0, ""),
    probe_line(1, "net", "second", 0, ""),
    probe_line(2, "fs", "third", 0, ""),
    DONE_MARKER,
]


@needs_busybox
def test_run_falls_back_to_tcg(fake_qemu: Path) -> None:
    result = fake_run(fake_qemu, ALL_PASS)

    assert result.passed
    assert result.runner == "qemu-tcg"
    assert len(result.warnings) == 1
    assert "KVM internal error" in result.warnings[0]
    assert result.seconds_to_init is not None
    assert result.seconds_to_last_probe is not None
    log = result.log_path.read_text()
    assert "KVM internal error" in log
    assert DONE_MARKER in log


@needs_busybox
def test_run_result_json(fake_qemu: Path) -> None:
    result = fake_run(fake_qemu, ALL_PASS)

    report = result.to_json()

    assert report["passed"] is True
    assert report["runner"] == "qemu-tcg"
    assert report["log"] == str(result.log_path)
    assert report["initramfs"]["sha256"] == result.initramfs.key
    assert [p["probe"] for p in report["probes"]] == ["first", "second", "third"]
    assert report["probes"][1] == {
        "feature": "net",
        "probe": "second",
        "status": "pass",
        "exit": 0,
        "output": "",
        "reason": "",
    }
    json.dumps(report)


@needs_busybox
def test_run_reports_panic(fake_qemu: Path) -> None:
    console = [
        START_MARKER,
        probe_line(0, "net", "first", 0, ""),
        probe_line(1, "net", "second", 1, "no such table\n"),
        "[    3.0] Kernel panic - not syncing: Attempted to kill init!",
    ]

    result = fake_run(fake_qemu, console)

    assert not result.passed
    assert [p.status for p in result.probes] == ["pass", "fail", "fail"]
    assert result.probes[1].output == "no such table\n"
    assert result.probes[2].exit_code is None
    assert "kernel panicked: Attempted to kill init!" in result.probes[2].reason
    error = result.failure_error()
    assert isinstance(error, BootTestError)
    assert "2 of 3 probes failed" in error.message
    assert "net/second (exited with status 1)" in error.message
    assert str(result.log_path) in str(error.hint)


@needs_busybox
def test_run_reports_timeout(fake_qemu: Path) -> None:
    (fake_qemu / "hang").touch()

    result = fake_run(fake_qemu, [START_MARKER], timeout=1)

    assert result.timed_out
    assert not result.passed
    assert result.seconds_to_last_probe is None
    for probe in result.probes:
        assert probe.reason == "no result: the VM timed out after 1 s"


@needs_busybox
def test_run_without_init(fake_qemu: Path) -> None:
    result = fake_run(fake_qemu, ["[    0.0] Linux version 6.1.0"])

    assert not result.passed
    assert result.seconds_to_init is None
    assert "before /init ran" in result.probes[0].reason


@needs_busybox
def test_run_checks_kernel_first(fake_qemu: Path) -> None:
    (fake_qemu / "vmlinux").write_bytes(b"not a kernel")

    with pytest.raises(InputError, match="not an ELF file"):
        fake_run(fake_qemu, ALL_PASS)


def test_result_without_init_fails() -> None:
    result = BootTestResult(
        runner="qemu-tcg",
        probes=(),
        seconds_to_init=None,
        seconds_to_last_probe=None,
        seconds=3.0,
        timed_out=False,
        log_path=Path("console.log"),
        initramfs=Initramfs(Path("image.cpio.gz"), "0" * 64, True, 0.1),
    )

    assert not result.passed
    assert result.failure_error().message == "the kernel did not start /init"


# Real boots. The kernel comes from $FCKERNEL_TEST_KERNEL, or else from the
# default_build fixture, which builds the default job's kernel.


@pytest.fixture
def vmlinux(request: pytest.FixtureRequest) -> Path:
    configured = os.environ.get(KERNEL_ENV)
    if configured:
        return Path(configured)
    try:
        folder = request.getfixturevalue("default_build")
    except pytest.FixtureLookupError:
        pytest.skip(f"needs the default_build fixture or {KERNEL_ENV}=path/to/vmlinux")
    return Path(folder) / "vmlinux"


needs_qemu = pytest.mark.skipif(
    shutil.which("qemu-system-x86_64") is None,
    reason="needs the Debian package qemu-system-x86",
)


@pytest.mark.slow
@needs_qemu
def test_default_features_pass(vmlinux: Path, tmp_path: Path) -> None:
    features, _ = select_features([], with_defaults=True, arch="x86_64")
    assert {f.name for f in features} == DEFAULT_FEATURES

    result = run_boot_test(
        vmlinux, X86_64, features, tmp_path / "console.log", Cache(tmp_path)
    )

    assert result.seconds_to_init is not None, result.log_path.read_text()[-3000:]
    expected = {(f.name, p.name) for f in features for p in f.probes}
    assert {(p.feature, p.probe) for p in result.probes} == expected
    for probe in result.probes:
        assert probe.passed, (
            f"{probe.feature}/{probe.probe}: {probe.reason}\n{probe.output}"
        )
    assert not result.timed_out


@pytest.mark.slow
@needs_qemu
def test_guest_failure_and_panic(vmlinux: Path, tmp_path: Path) -> None:
    features = [
        feature(
            "broken",
            Probe("fails", "echo 'not here' >&2; exit 4"),
            Probe("panics", "echo c > /proc/sysrq-trigger"),
            Probe("never-runs", "true"),
        )
    ]

    result = run_boot_test(
        vmlinux, X86_64, features, tmp_path / "console.log", Cache(tmp_path)
    )

    fails, panics, never_runs = result.probes
    assert fails.exit_code == 4
    assert fails.output == "not here\n"
    if panics.exit_code is not None:
        pytest.skip(f"the kernel has no /proc/sysrq-trigger: {panics.output}")
    assert "kernel panicked" in never_runs.reason
    assert not result.timed_out


@pytest.mark.slow
@needs_qemu
def test_interactive_shell_runs_typed_command(vmlinux: Path, tmp_path: Path) -> None:
    # A separate process in its own session gives the VM a pipe for its
    # console and lets the test stop QEMU with it. A serial line has no
    # end-of-file, so the test types `exit` to stop the VM.
    code = (
        "import sys; from pathlib import Path\n"
        "from fckernel.arch import get_arch\n"
        "from fckernel.boottest import boot_interactive\n"
        "from fckernel.cache import Cache\n"
        f"sys.exit(boot_interactive(Path({str(vmlinux)!r}), get_arch('x86_64'),"
        f" Cache(Path({str(tmp_path)!r}))))\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        console = type_until_exit(process, b"echo typed-$((6 * 7)); exit\n")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    assert process.returncode == 0, console[-3000:]
    assert START_MARKER in console
    assert "typed-42" in console


def type_until_exit(process: subprocess.Popen[bytes], line: bytes) -> str:
    """Type `line` once a second after the shell started, until the VM exits.

    The guest drops what arrives before its shell opens the serial port.
    """
    assert process.stdin is not None and process.stdout is not None
    chunks: list[bytes] = []
    stdout = process.stdout
    reader = threading.Thread(
        target=lambda: chunks.extend(iter(lambda: stdout.read1(4096), b"")),
        daemon=True,
    )
    reader.start()
    deadline = time.monotonic() + INTERACTIVE_TIMEOUT_SECONDS
    while process.poll() is None and time.monotonic() < deadline:
        if START_MARKER.encode() in b"".join(chunks):
            with contextlib.suppress(BrokenPipeError):
                process.stdin.write(line)
                process.stdin.flush()
        time.sleep(1)
    reader.join(timeout=5)
    return b"".join(chunks).decode(errors="replace")


def install_unloading_qemu(fake_qemu: Path) -> None:
    """Replace the stand-in QEMU with one that cannot load the kernel."""
    qemu = fake_qemu / "bin" / "qemu-system-x86_64"
    qemu.write_text(
        "#!/bin/sh\n"
        'echo "qemu-system-x86_64: Error loading uncompressed kernel without PVH'
        ' ELF Note"\n'
        "exit 1\n"
    )


def test_unloadable_kernel_named_not_kvm(fake_qemu: Path) -> None:
    install_unloading_qemu(fake_qemu)
    with pytest.raises(InputError) as caught:
        fake_run(fake_qemu, ALL_PASS)
    assert "QEMU cannot load" in caught.value.message
    assert "without PVH ELF Note" in caught.value.message
    assert "CONFIG_PVH=y" in str(caught.value.hint)


def test_build_test_unloadable_kernel_fails_test(
    fake_qemu: Path, fake_job: Callable[..., Job]
) -> None:
    install_unloading_qemu(fake_qemu)
    job = fake_job(test=True)

    with pytest.raises(BootTestError) as caught:
        run_job(job)

    assert caught.value.exit_code == ExitCode.TEST
    assert "QEMU cannot load" in caught.value.message
    assert str(job.output / "vmlinux") in caught.value.message
    assert TEMP_PREFIX not in caught.value.message


@needs_busybox
def test_passing_test_replaces_old_failure(
    fake_qemu: Path,
) -> None:
    (fake_qemu / "console.txt").write_text("\n".join(ALL_PASS) + "\n")
    report_path = fake_qemu / "report.json"
    old = {"tool": "fckernel", "status": "test-failed", "exit_code": 6, "error": "x"}
    report_path.write_text(json.dumps(old))
    features = [
        feature("net", Probe("first", "true"), Probe("second", "false")),
        feature("fs", Probe("third", "true")),
    ]
    target = BootTarget(fake_qemu / "vmlinux", X86_64, features, fake_qemu)

    result = run_test(target, fake_qemu / "test.log", Cache(fake_qemu / "cache"))

    report = json.loads(report_path.read_text())
    assert result.passed
    assert report["status"] == "ok"
    assert report["exit_code"] == 0
    assert report["error"] is None
    assert report["test"]["passed"] is True
    assert stat.S_IMODE(report_path.stat().st_mode) == 0o644


def test_kernel_without_arch_takes_it_from_the_image(tmp_path: Path) -> None:
    image = tmp_path / "Image"
    image.write_bytes(bytes(56) + b"ARM\x64" + bytes(64))

    target = target_from_kernel(image, None, [], with_defaults=True)

    assert target.arch.name == "aarch64"
    assert "crypto-accel-arm64" in {f.name for f in target.features}
