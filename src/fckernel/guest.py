"""The guest side of a boot test: its init scripts and the console lines they print.

The init runs under busybox sh, which has no JSON tooling. So the host writes
each result line's constant part, the JSON-encoded feature and probe names,
into the script. The guest only fills in an integer exit status and the
probe's output in base64, whose characters need no escaping in JSON, and the
host decodes the output again. The console then contains:

    FCKERNEL-INIT-START
    FCKERNEL-PROBE {"index":0,"feature":"autofs","probe":"autofs-filesystem",
                    "status":"pass","exit":0,"output":""}      (one line)
    FCKERNEL-PROBES-DONE

Kernel messages may surround these lines; the parser looks for the markers
anywhere in a line and ignores everything else.
"""

from __future__ import annotations

import base64
import binascii
import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fckernel.features import Feature, Probe

START_MARKER = "FCKERNEL-INIT-START"
PROBE_MARKER = "FCKERNEL-PROBE "
DONE_MARKER = "FCKERNEL-PROBES-DONE"
PANIC_TEXT = "Kernel panic - not syncing:"

PROBE_DIR = "/fckernel/probes"
# Longer output is cut so that one chatty probe cannot flood the serial console.
MAX_OUTPUT_BYTES = 4096
# The guest kills a probe after this long, so one hung probe costs only itself.
DEFAULT_PROBE_TIMEOUT_SECONDS = 60
# The init's `timeout -s KILL` kills with SIGKILL, which sh reports as 128 + 9.
KILLED_EXIT_CODE = 137

PASS = "pass"
FAIL = "fail"

_MOUNTS = """\
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
"""

# A reset ends the VM, because QEMU runs with -no-reboot and Firecracker exits
# on one. `poweroff -f` runs only if the reboot call fails. If the power-off
# fails too, init ends, and the kernel's panic then resets (boot arg panic=).
_STOP_VM = """\
reboot -f
poweroff -f
"""


@dataclass(frozen=True)
class GuestProbe:
    """One probe as the guest runs it: its place in the run, feature and probe."""

    index: int
    feature: str
    probe: Probe

    @property
    def name(self) -> str:
        return self.probe.name


@dataclass(frozen=True)
class ProbeResult:
    """The outcome of one probe, as the host read it from the console."""

    feature: str
    probe: str
    status: str  # PASS or FAIL
    exit_code: int | None  # None when the console contains no result for it
    output: str  # the probe's stdout and stderr, kept only when it failed
    reason: str  # why it failed, for a person; empty when it passed

    @property
    def passed(self) -> bool:
        return self.status == PASS

    def to_json(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "probe": self.probe,
            "status": self.status,
            "exit": self.exit_code,
            "output": self.output,
            "reason": self.reason,
        }


def guest_probes(features: Sequence[Feature]) -> list[GuestProbe]:
    """List the probes of `features` in the order the guest runs them."""
    probes = ((feature.name, probe) for feature in features for probe in feature.probes)
    return [
        GuestProbe(index, feature, probe)
        for index, (feature, probe) in enumerate(probes)
    ]


def probe_files(probes: Sequence[GuestProbe]) -> dict[str, bytes]:
    """Return the probe scripts to put in the initramfs, by path."""
    return {
        f"{PROBE_DIR}/{probe.index}.sh": probe.probe.run.encode() + b"\n"
        for probe in probes
    }


def render_probe_init(
    probes: Sequence[GuestProbe],
    env_file: str,
    probe_timeout: int = DEFAULT_PROBE_TIMEOUT_SECONDS,
) -> str:
    """Render the init that runs `probes` and prints one result line for each.

    `env_file` is the shell file in the initramfs that sets PATH, the library
    paths and the aliases for the programs in it.
    """
    return (
        "#!/bin/busybox sh\n"
        "# fckernel boot test: run each feature probe and print its result.\n"
        f". {env_file}\n"
        f"{_MOUNTS}"
        "# Kernel messages on the console would split result lines.\n"
        "dmesg -n 1\n"
        f"{render_probe_runner(probes, env_file, probe_timeout)}"
        f"{_STOP_VM}"
    )


def render_probe_runner(
    probes: Sequence[GuestProbe],
    env_file: str,
    probe_timeout: int = DEFAULT_PROBE_TIMEOUT_SECONDS,
    probe_dir: str = PROBE_DIR,
) -> str:
    """Render the part of the init that runs the probes and prints the markers.

    It neither mounts nor stops anything, so tests can run it on the host.
    The scripts of probe_files() are in `probe_dir`, where it also keeps each
    probe's output.
    """
    calls = "".join(f"run_probe {p.index} {_json_names(p)}\n" for p in probes)
    return (
        f"echo {START_MARKER}\n"
        f"{_run_probe_function(env_file, probe_timeout, probe_dir)}\n"
        f"{calls}"
        f"echo {DONE_MARKER}\n"
    )


def render_shell_init(env_file: str) -> str:
    """Render the init that gives a person a shell on the serial console."""
    return (
        "#!/bin/busybox sh\n"
        "# fckernel boot: an interactive shell; the VM stops when it exits.\n"
        f". {env_file}\n"
        f"{_MOUNTS}"
        f"echo {START_MARKER}\n"
        'echo "fckernel: busybox shell on the serial console; exit to stop the VM"\n'
        "# cttyhack opens the console's real tty, so that job control and ^C work.\n"
        "setsid cttyhack sh\n"
        f"{_STOP_VM}"
    )


def _run_probe_function(env_file: str, probe_timeout: int, probe_dir: str) -> str:
    # $1 is the probe's index, $2 its JSON-encoded names; both come from the
    # host. The probe is sourced after the environment file because the
    # aliases there must be defined before the shell parses the probe.
    return f"""\
run_probe() {{
	timeout -s KILL {probe_timeout} \\
		sh -c '. {env_file} && . "$0"' "{probe_dir}/$1.sh" \\
		</dev/null >"{probe_dir}/output" 2>&1
	code=$?
	status={FAIL}
	[ "$code" -eq 0 ] && status={PASS}
	output=$(head -c {MAX_OUTPUT_BYTES} "{probe_dir}/output" | base64 -w 0)
	echo "{PROBE_MARKER}{{\\"index\\":$1,$2,\\"status\\":\\"$status\\",\\
\\"exit\\":$code,\\"output\\":\\"$output\\"}}"
}}
"""


def _json_names(probe: GuestProbe) -> str:
    fields = {"feature": probe.feature, "probe": probe.name}
    members = ",".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in fields.items())
    return shlex.quote(members)


class ConsoleParser:
    """A collector of the probe results in console lines, fed as they arrive.

    Feed every line with the seconds since the VM started. Then results()
    returns one ProbeResult per expected probe, in order.
    """

    def __init__(self, probes: Sequence[GuestProbe]) -> None:
        self.probes = list(probes)
        self.started_at: float | None = None
        self.last_probe_at: float | None = None
        self.done = False
        self.panic: str | None = None
        self.invalid_lines: list[str] = []
        self._found: dict[int, ProbeResult] = {}

    def feed(self, seconds: float, line: str) -> None:
        if START_MARKER in line and self.started_at is None:
            self.started_at = seconds
        elif PROBE_MARKER in line:
            self._feed_probe(seconds, line.split(PROBE_MARKER, 1)[1].strip())
        elif DONE_MARKER in line:
            self.done = True
        elif PANIC_TEXT in line and self.panic is None:
            self.panic = line.split(PANIC_TEXT, 1)[1].strip()

    def results(self, missing_reason: str) -> list[ProbeResult]:
        """Return every probe's result; those not found fail with `missing_reason`."""
        return [
            self._found.get(p.index) or _missing(p, missing_reason) for p in self.probes
        ]

    @property
    def complete(self) -> bool:
        """Whether the console contains a valid result for every probe."""
        return len(self._found) == len(self.probes)

    def _feed_probe(self, seconds: float, payload: str) -> None:
        try:
            result = self._parse_probe(payload)
        except ValueError as error:
            self.invalid_lines.append(f"{error}: {payload[:200]}")
            return
        if result is not None:
            self.last_probe_at = seconds

    def _parse_probe(self, payload: str) -> ProbeResult | None:
        try:
            data = json.loads(payload)
        except json.JSONDecodeError as error:
            raise ValueError("result line is not valid JSON") from error
        if not isinstance(data, dict):
            raise ValueError("result line is not a JSON object")
        probe = self._expected_probe(data)
        if probe.index in self._found:
            return None
        result = _probe_result(probe, data)
        self._found[probe.index] = result
        return result

    def _expected_probe(self, data: dict[str, Any]) -> GuestProbe:
        index = data.get("index")
        # bool is a subclass of int, but a JSON true is no index.
        if type(index) is not int or not 0 <= index < len(self.probes):
            raise ValueError(f"result line has an unknown index {index!r}")
        probe = self.probes[index]
        if data.get("feature") != probe.feature or data.get("probe") != probe.name:
            raise ValueError(f"result line {index} names another probe")
        return probe


def _probe_result(probe: GuestProbe, data: dict[str, Any]) -> ProbeResult:
    code = data.get("exit")
    encoded = data.get("output")
    if type(code) is not int or not isinstance(encoded, str):
        raise ValueError(f"result line {probe.index} lacks its exit or output")
    try:
        output = base64.b64decode(encoded, validate=True).decode(errors="replace")
    except binascii.Error as error:
        raise ValueError(f"result line {probe.index} has invalid base64") from error

    # The status is derived from the exit code, so a line cannot contradict itself.
    if code == 0:
        return ProbeResult(probe.feature, probe.name, PASS, 0, "", "")
    return ProbeResult(
        probe.feature, probe.name, FAIL, code, output, _exit_reason(code)
    )


def _exit_reason(code: int) -> str:
    if code == KILLED_EXIT_CODE:
        return (
            f"exited with status {code}: killed, probably by the guest's "
            "per-probe time limit"
        )
    return f"exited with status {code}"


def _missing(probe: GuestProbe, reason: str) -> ProbeResult:
    return ProbeResult(probe.feature, probe.name, FAIL, None, "", reason)
