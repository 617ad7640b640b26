"""A tiny stand-in for Kconfig's olddefconfig: just enough rules to give every
request status a cause. CHILD needs PARENT=y; without MODULES=y, m becomes y;
symbols the fake Kconfig does not define are dropped.
"""

import re
import sys

KNOWN = {
    "X86_64",
    "MODULES",
    "PARENT",
    "CHILD",
    "PLAIN",
    "NAME",
    "COUNT",
    "ADDRESS",
    "FAIL_BUILD",
    "SLOW_BUILD",
    "DISK_FULL_BUILD",
}
path = sys.argv[1]
values = {}
with open(path) as handle:
    lines = [line.strip() for line in handle]
for line in lines:
    if match := re.fullmatch(r"CONFIG_(\w+)=(.*)", line):
        values[match[1]] = match[2]
    elif match := re.fullmatch(r"# CONFIG_(\w+) is not set", line):
        values[match[1]] = "n"

values = {symbol: value for symbol, value in values.items() if symbol in KNOWN}
values["X86_64"] = "y"
if values.get("PARENT") != "y":
    values.pop("CHILD", None)
if values.get("MODULES") != "y":
    values = {s: ("y" if v == "m" else v) for s, v in values.items()}

with open(path, "w") as handle:
    for symbol, value in values.items():
        if value == "n":
            handle.write(f"# CONFIG_{symbol} is not set\n")
        else:
            handle.write(f"CONFIG_{symbol}={value}\n")
print("#\n# configuration written to .config\n#")
