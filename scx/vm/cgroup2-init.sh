#!/bin/busybox sh
# shellcheck shell=dash
# PID 1 of the cgroup v2 test VM (scx/vm/cgroup2.sh puts it in the initramfs as /init).
#
# Mounts the host's root (virtiofs tag `hostroot`, read-only on both sides) on /host and, over it, what a
# running system has of its own: proc, sysfs, devtmpfs, cgroup2 with the cpu controller enabled
# at its root (as systemd does), and tmpfs on /run (the journal, HOME and TMPDIR go there; none
# on /tmp, which would hide a checkout under /tmp, as a CI clone in /tmp/cc was). Then
# runs tests/actuators/cgroup2_guest.py with the host's Python, chrooted into /host; it prints
# the CGROUP2-TEST-RESULT line. /vm.env (written by cgroup2.sh) names the Python and the checkout.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null

finish() {
    echo "CGROUP2-TEST-RESULT $1"
    sync
    poweroff -f
}

# shellcheck source=/dev/null
. /vm.env
H=/host
echo "cgroup2-vm: kernel $(uname -r), up $(cut -d' ' -f1 /proc/uptime) s"
mkdir -p "$H"
mount -t virtiofs hostroot "$H" || finish "FAIL cannot mount the host's root over virtiofs"
# The host shares a read-only bind of its root: a write must fail there, not only here.
if touch "$H/tmp/.autotune-vm-probe" 2>/dev/null; then
    rm -f "$H/tmp/.autotune-vm-probe"
    finish "FAIL the host shares its root writable"
fi
mount -o remount,ro "$H" || finish "FAIL cannot remount the host's root read-only"
{ mount -t proc proc "$H/proc" && mount -t sysfs sysfs "$H/sys" \
    && mount -t devtmpfs devtmpfs "$H/dev" && mount -t cgroup2 cgroup2 "$H/sys/fs/cgroup" \
    && mount -t tmpfs tmpfs "$H/run" && mkdir -p "$H/run/tmp"; } \
    || finish "FAIL cannot mount proc, sysfs, devtmpfs, cgroup2 or tmpfs inside $H"
echo +cpu >"$H/sys/fs/cgroup/cgroup.subtree_control" || finish "FAIL cannot enable the cpu controller"
echo "cgroup2-vm: host root mounted read-only; cgroup2 controllers:" \
    "$(cat "$H/sys/fs/cgroup/cgroup.controllers"), up $(cut -d' ' -f1 /proc/uptime) s"

chroot "$H" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin HOME=/run \
    TMPDIR=/run/tmp PYTHONPATH="$REPO" PYTHONDONTWRITEBYTECODE=1 PYTHONIOENCODING=utf-8 \
    AUTOTUNE_JOURNAL=/run/autotune/journal.json AUTOTUNE_STATE_DIR=/run/autotune \
    AUTOTUNE_CGROUP_PARENT=autotune-vm MEASURE_S="$MEASURE_S" \
    "$PYTHON" "$REPO/tests/actuators/cgroup2_guest.py"
rc=$?
echo "cgroup2-vm: the check ended with status $rc, up $(cut -d' ' -f1 /proc/uptime) s"
# 0 comes after its result line; anything else is a crash before it.
[ "$rc" = 0 ] || finish "FAIL $PYTHON ended with status $rc before a result"
sync
poweroff -f
