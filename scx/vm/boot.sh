# shellcheck shell=bash
# Sourced by scx/vm/run.sh and scx/vm/cgroup2.sh: boot a test VM under qemu until its init prints
# a result line, retrying a boot that crashes or hangs before it (at most twice, said so); a FAIL
# line is a test failure and is not retried. The caller defines say() and die().
#
# qemu: single-threaded TCG (no KVM here; multi-threaded TCG oopsed 2 boots in 14), 2 CPUs,
# 1 GiB. -icount: the guest's clock counts instructions (8 ns each), not host time, so the
# CPU-time ratios measured inside do not depend on how busy the host is. Without it a stalled
# qemu thread charges the stall to whichever guest task ran (measured: 4:1 read 0.287 once at
# host load 8; with it, five runs at load 18-29 gave 0.246-0.253). panic=-1 and -no-reboot turn a
# kernel panic into qemu exiting, not a reboot loop. timeout --foreground keeps qemu in the
# caller's process group, so that killing the group (as a pytest does on its timeout) ends qemu.

# need_static_busybox: sets BUSYBOX, the guest's /bin (it must run without the host's libraries);
# dies (exit 2) when there is none.
need_static_busybox() {
    local linkage
    BUSYBOX=/bin/busybox
    linkage=$(LC_ALL=C ldd "$BUSYBOX" 2>&1 || true)
    { [ -x "$BUSYBOX" ] && [[ $linkage == *"not a dynamic executable"* ]]; } \
        || die "no static $BUSYBOX: apt-get install busybox-static (scripts/bootstrap.sh)"
}

# boot_until_result MARKER ECHO TIMEOUT_S KERNEL INITRD LOGDIR [QEMU_ARGS...]
#   MARKER: the result line's first word (SCX-TEST-RESULT); ECHO: a grep pattern for the console
#   lines passed on to stderr; extra QEMU_ARGS go before -kernel. Optional hooks the caller may
#   define: before_boot ATTEMPT (a nonzero status ends the script with 3) and after_boot.
#   Sets result (the line, or empty) and attempt.
boot_until_result() {
    local marker=$1 echo=$2 timeout_s=$3 kernel=$4 initrd=$5 logdir=$6 log t_boot
    shift 6
    result=""
    for attempt in 1 2 3; do
        log=$logdir/console-$attempt.log
        if declare -F before_boot >/dev/null; then before_boot "$attempt" || exit 3; fi
        say "boot $attempt: $(basename "$(dirname "$kernel")"), qemu TCG single-threaded, icount," \
            "2 CPUs (log: $log)"
        t_boot=$(date +%s.%N)
        timeout --foreground "$timeout_s" qemu-system-x86_64 \
            -accel tcg,thread=single -icount shift=3,sleep=on -cpu max -smp 2 -m 1024 "$@" \
            -kernel "$kernel" -initrd "$initrd" \
            -append "console=ttyS0 rdinit=/init oops=panic panic=-1 quiet loglevel=4" \
            -nographic -no-reboot -monitor none -serial stdio </dev/null >"$log" 2>&1 || true
        if declare -F after_boot >/dev/null; then after_boot; fi
        say "boot $attempt took $(awk -v a="$t_boot" -v b="$(date +%s.%N)" \
            'BEGIN { printf "%.1f", b - a }') s"
        grep -ao "$echo" "$log" | tr -d '\r' >&2 || true
        result=$(grep -a -m1 "^$marker" "$log" | tr -d '\r' || true)
        [ -n "$result" ] && return 0
        say "boot $attempt crashed or hung before a result; last lines:"
        tail -n 5 "$log" >&2
        [ "$attempt" -lt 3 ] && say "retrying (at most twice)"
    done
    return 0
}

# finish_boot MARKER T0 T_BUILT: say the result with the times (T0, T_BUILT: date +%s.%N before
# fetching and after packing), and exit 0 (PASS), 1 (FAIL) or 3 (no result).
finish_boot() {
    local marker=$1 t0=$2 t_built=$3 times
    times=$(awk -v a="$t0" -v b="$t_built" -v c="$(date +%s.%N)" \
        'BEGIN { printf "fetch+build %.1fs, boot+test %.1fs, total %.1fs", b - a, c - b, c - a }')
    if [ -z "$result" ]; then
        say "no result after 3 boots ($times)"
        exit 3
    fi
    [ "$attempt" -gt 1 ] && say "a result on boot $attempt: $((attempt - 1)) crashed boot(s) retried"
    say "${result#"$marker" } ($times)"
    case $result in
    "$marker PASS"*) exit 0 ;;
    *) exit 1 ;;
    esac
}
