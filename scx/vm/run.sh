#!/usr/bin/env bash
# `make test-scx`: test our sched_ext scheduler for real, in a VM booting a sched_ext kernel.
#
# Fetches (once, cached: scx/fetch.sh) the kernel and tools, builds the scheduler against that
# kernel's BTF (scx/build.sh), packs an initramfs (busybox-static, the loader, the BPF object,
# scx/vm/init.sh as /init) and boots it under qemu with single-threaded TCG (no KVM here;
# multi-threaded TCG oopsed 2 boots in 14). init.sh prints the measured ratios and one
# SCX-TEST-RESULT line. A boot that crashes or hangs before that line is retried, at most twice,
# and said so; a FAIL line is a test failure and is not retried.
#
# Exit status: 0 pass, 1 fail, 2 a missing host tool, 3 could not boot, 4 the downloads are
# unavailable (no network to the Debian mirror and nothing cached).
# Environment: AUTOTUNE_SCX_CACHE (see scx/fetch.sh), SCX_VM_TIMEOUT (seconds per boot, 300).
set -euo pipefail

say() { printf 'scx/vm: %s\n' "$*" >&2; }
die() { say "$*"; exit 2; }

cd "$(dirname "$0")/../.."
for tool in qemu-system-x86_64 cpio gzip zstd; do
    command -v "$tool" >/dev/null || die "$tool not found: run scripts/bootstrap.sh"
done
BUSYBOX=/bin/busybox
linkage=$(LC_ALL=C ldd "$BUSYBOX" 2>&1 || true)
{ [ -x "$BUSYBOX" ] && [[ $linkage == *"not a dynamic executable"* ]]; } \
    || die "no static $BUSYBOX: apt-get install busybox-static (scripts/bootstrap.sh)"

t0=$(date +%s.%N)
kernel=$(scx/fetch.sh kernel) || { say "cannot fetch the sched_ext kernel"; exit 4; }
scx/fetch.sh tools >/dev/null || { say "cannot fetch bpftool and libbpf"; exit 4; }
out=build/scx/vm-$(basename "$kernel")
scx/build.sh --vmlinuz "$kernel/vmlinuz" --out "$out"

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,dev,proc,sys,scx}
cp "$BUSYBOX" "$root/bin/busybox"
install -m 0755 scx/vm/init.sh "$root/init"
cp "$out/scx-autotune" "$out/scx_autotune.bpf.o" "$root/scx/"
(cd "$root" && find . -print0 | cpio -o -0 -H newc --quiet | gzip -1) >"$out/initramfs.cpio.gz"
t_built=$(date +%s.%N)

timeout_s=${SCX_VM_TIMEOUT:-300}
result=""
for attempt in 1 2 3; do
    log=$out/console-$attempt.log
    say "boot $attempt: $(basename "$kernel"), qemu TCG single-threaded, icount, 2 CPUs (log: $log)"
    # panic=-1 and -no-reboot turn a kernel panic into qemu exiting, not a reboot loop.
    # -icount: the guest's clock counts instructions (8 ns each), not host time, so the CPU-time
    # ratios measured inside do not depend on how busy the host is. Without it a stalled qemu
    # thread charges the stall to whichever guest task ran (measured: 4:1 read 0.287 once at
    # host load 8; with it, five runs at load 18-29 gave 0.246-0.253).
    timeout "$timeout_s" qemu-system-x86_64 \
        -accel tcg,thread=single -icount shift=3,sleep=on -cpu max -smp 2 -m 1024 \
        -kernel "$kernel/vmlinuz" -initrd "$out/initramfs.cpio.gz" \
        -append "console=ttyS0 rdinit=/init oops=panic panic=-1 quiet loglevel=4" \
        -nographic -no-reboot -monitor none -serial stdio </dev/null >"$log" 2>&1 || true
    grep -ao 'scx-test:.*' "$log" | tr -d '\r' >&2 || true
    result=$(grep -a -m1 '^SCX-TEST-RESULT' "$log" | tr -d '\r' || true)
    [ -n "$result" ] && break
    say "boot $attempt crashed or hung before a result; last lines:"
    tail -n 5 "$log" >&2
    [ "$attempt" -lt 3 ] && say "retrying (at most twice)"
done
t_end=$(date +%s.%N)
times=$(awk -v a="$t0" -v b="$t_built" -v c="$t_end" \
    'BEGIN { printf "fetch+build %.1fs, boot+test %.1fs, total %.1fs", b - a, c - b, c - a }')
if [ -z "$result" ]; then
    say "no result after 3 boots ($times)"
    exit 3
fi
[ "$attempt" -gt 1 ] && say "passed on boot $attempt: $((attempt - 1)) crashed boot(s) retried"
say "${result#SCX-TEST-RESULT } ($times)"
case $result in
"SCX-TEST-RESULT PASS"*) exit 0 ;;
*) exit 1 ;;
esac
