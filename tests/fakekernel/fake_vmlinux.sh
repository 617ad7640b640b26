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
if grep -q '^CONFIG_DISK_FULL_BUILD=y' "$out/.config"; then
    echo "  CC      fs/ext4/super.o"
    echo "fs/ext4/super.c:9999: fatal error: closing dependency file fs/ext4/.super.o.d: No space left on device" >&2
    # More output after it, so that the line is not among the last few.
    for n in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32; do
        echo "make[$n]: *** [scripts/Makefile.build:250: fs/ext4] Error 1" >&2
    done
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
