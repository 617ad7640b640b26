# A stand-in for `make vmlinux`: prints kbuild-style lines and writes an ELF
# x86-64 file (a copy of /bin/true) as the image.
set -e
out="$1"
echo "  CC      init/main.o"
echo "  CC      kernel/fork.o"
if grep -q '^CONFIG_FAIL_BUILD=y' "$out/.config"; then
    echo "init/main.c:1:1: error: fake compile error" >&2
    exit 2
fi
if grep -q '^CONFIG_SLOW_BUILD=y' "$out/.config"; then
    echo "  CC      slow/sleep.o"
    sleep "${FAKE_SLEEP:-60}" &
    echo $! > "$out/sleep.pid"
    wait
fi
cp /bin/true "$out/vmlinux"
echo "  LD      vmlinux"
