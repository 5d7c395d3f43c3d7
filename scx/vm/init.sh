#!/bin/busybox sh
# shellcheck shell=dash
# PID 1 of the test VM (scx/vm/run.sh puts it in the initramfs as /init).
#
# Loads our scheduler, runs two CPU-bound loops A and B pinned to CPU 1 and measures their
# CPU-time ratio B/A (from /proc/PID/schedstat) at weights 1:3, then 4:1 after updating the map
# live; then moves a third loop C, whose vtime ran far ahead alone on CPU 0, onto CPU 1 (it must
# get its third, neither starve nor hog); then unloads the scheduler (the fair class: B/A about 1);
# then reloads it and has sched_ext eject it, checking that it recorded why.
# Prints one line `SCX-TEST-RESULT PASS|FAIL ...` and powers off; the host reads the console.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t bpf bpf /sys/fs/bpf

PIN=/sys/fs/bpf/autotune
LOADER=/scx/scx-autotune
MEASURE_S=${MEASURE_S:-4}
RESULTS=""

finish() {
    echo "SCX-TEST-RESULT $1 $RESULTS"
    sync
    poweroff -f
}
state() { cat /sys/kernel/sched_ext/state 2>/dev/null || echo missing; }

cpu_ns() { cut -d' ' -f1 "/proc/$1/schedstat"; }  # ns on CPU (first field of schedstat)

# CPU-time ratio B/A over MEASURE_S seconds.
ratio() {
    a0=$(cpu_ns "$A") b0=$(cpu_ns "$B")
    sleep "$MEASURE_S"
    a1=$(cpu_ns "$A") b1=$(cpu_ns "$B")
    awk -v a=$((a1 - a0)) -v b=$((b1 - b0)) 'BEGIN { if (a <= 0) print "inf"; else printf "%.3f\n", b / a }'
}
within() { awk -v r="$1" -v lo="$2" -v hi="$3" 'BEGIN { exit !(r != "inf" && r >= lo && r <= hi) }'; }

# Check one measurement: $1 name, $2 value, $3..$4 the expected range.
check() {
    RESULTS="$RESULTS $1=$2"
    echo "scx-test: $1: $2 (expected $3..$4), sched_ext $(state)"
    within "$2" "$3" "$4" || finish "FAIL $1 = $2, outside $3..$4"
}
phase() { check "$1" "$(ratio)" "$2" "$3"; }

# Keep this shell off CPU 1, where the measured loops run.
taskset -p 1 $$ >/dev/null
echo "scx-test: kernel $(uname -r), CPUs $(cat /sys/devices/system/cpu/online)"
[ "$(cat /sys/devices/system/cpu/online)" = 0-1 ] || finish "FAIL want CPUs 0-1 online"
[ -d /sys/kernel/sched_ext ] || finish "FAIL no /sys/kernel/sched_ext"

$LOADER load /scx/scx_autotune.bpf.o "$PIN" || finish "FAIL loading the scheduler"
[ "$(state)" = enabled ] || finish "FAIL state $(state) after load"
echo "scx-test: loaded $(cat /sys/kernel/sched_ext/root/ops), state $(state)"

taskset 2 sh -c 'while :; do :; done' &
A=$!
taskset 2 sh -c 'while :; do :; done' &
B=$!
{ $LOADER member "$PIN" tgid "$A" 1 && $LOADER member "$PIN" tgid "$B" 2 \
    && $LOADER weight "$PIN" 1 100 && $LOADER weight "$PIN" 2 300; } \
    || finish "FAIL writing the maps"
sleep 1
phase w1_3 2.6 3.4

# Live update: only the weights map changes; no process moves.
{ $LOADER weight "$PIN" 1 400 && $LOADER weight "$PIN" 2 100; } || finish "FAIL updating weights"
sleep 1
phase w4_1 0.22 0.28

# A clock jump: C runs alone on CPU 0 at weight 1, so its vtime (and CPU 0's clock) races 100
# times ahead of CPU 1's. Moved onto CPU 1 at weight 100 beside A and B (also 100), it must get
# about a third: unbounded, it would starve until CPU 1's clock caught up, minutes later.
taskset 1 sh -c 'while :; do :; done' &
C=$!
{ $LOADER member "$PIN" tgid "$C" 3 && $LOADER weight "$PIN" 3 1; } || finish "FAIL writing the maps"
sleep 2
{ $LOADER weight "$PIN" 1 100 && $LOADER weight "$PIN" 2 100 && $LOADER weight "$PIN" 3 100 \
    && taskset -p 2 "$C" >/dev/null; } || finish "FAIL moving C"
sleep 1
a0=$(cpu_ns "$A") b0=$(cpu_ns "$B") c0=$(cpu_ns "$C")
sleep "$MEASURE_S"
a1=$(cpu_ns "$A") b1=$(cpu_ns "$B") c1=$(cpu_ns "$C")
check jump_share "$(awk -v a=$((a1 - a0)) -v b=$((b1 - b0)) -v c=$((c1 - c0)) \
    'BEGIN { printf "%.3f\n", c / (a + b + c) }')" 0.25 0.42
kill "$C"
[ "$(state)" = enabled ] || finish "FAIL the scheduler was ejected: $($LOADER show "$PIN")"

$LOADER unload "$PIN"
for _ in 1 2 3 4 5 6 7 8 9 10; do
    [ "$(state)" = disabled ] && break
    sleep 0.5
done
[ "$(state)" = disabled ] || finish "FAIL state $(state) after unload"
sleep 1
phase fair 0.8 1.25
kill "$A" "$B"

# Ejected: sched_ext's SysRq-S kill switch stands in for its watchdog. The kernel falls back to
# the fair class; the scheduler must have recorded why it stopped (what user space reports).
$LOADER load /scx/scx_autotune.bpf.o "$PIN" || finish "FAIL reloading the scheduler"
echo S >/proc/sysrq-trigger
for _ in 1 2 3 4 5 6 7 8 9 10; do
    [ "$(state)" = disabled ] && break
    sleep 0.5
done
[ "$(state)" = disabled ] || finish "FAIL state $(state) after SysRq-S"
why=$($LOADER show "$PIN" | grep '^exit ')
[ -n "$why" ] || finish "FAIL no exit reason recorded after SysRq-S"
echo "scx-test: ejected: $why"
$LOADER unload "$PIN"
finish PASS
