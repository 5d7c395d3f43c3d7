#!/usr/bin/env bash
# `make test-scx`, second part: the cgroup v2 weights backend tested for real, in a VM.
#
# This node mounts every controller on cgroup v1, so its v2 hierarchy has none and the cgroup2
# backend (autotune/actuators/weights_cgroup.py) cannot run here. The kernel the sched_ext test
# boots (scx/fetch.sh kernel: Debian's 6.18 cloud image) can: this boots it with the host's root
# filesystem shared over virtiofs, read-only (virtiofsd serves a read-only bind of / made in a
# mount namespace of its own, so the host's other mounts stay out and nothing the guest does
# writes to the host), and PID 1 (scx/vm/cgroup2-init.sh) runs tests/actuators/cgroup2_guest.py
# with the host's own Python, chrooted into that root, on a cgroup2 mount with the cpu
# controller. It prints the measured ratios and one CGROUP2-TEST-RESULT line.
#
# Same qemu settings as scx/vm/run.sh (scx/vm/boot.sh, shared with it), plus the shared memory
# vhost-user needs. A boot that crashes
# or hangs before the result line is retried, at most twice, and said so; a FAIL is not retried.
# virtiofsd, qemu and the temporary folder go on every exit (EXIT/INT/TERM/HUP traps); console
# logs stay in build/cgroup2-vm/.
#
# Exit status: 0 pass, 1 fail, 2 a missing host tool or not root, 3 could not boot, 4 the kernel
# is unavailable (no network to the Debian mirror and nothing cached), 5 the checkout or its
# Python is not on the root filesystem (the only one the VM sees).
# Environment: AUTOTUNE_VM_PYTHON (the Python run inside: default .venv/bin/python, else python3;
# it and this checkout must be on the root filesystem, the one the VM sees), AUTOTUNE_SCX_CACHE
# (see scx/fetch.sh), CGROUP2_VM_TIMEOUT (seconds per boot, 300), MEASURE_S (seconds of guest
# time per ratio, 4).
set -euo pipefail

say() { printf 'cgroup2-vm: %s\n' "$*" >&2; }
die() { say "$*"; exit 2; }

cd "$(dirname "$0")/../.."
repo=$(pwd -P)
for tool in qemu-system-x86_64 cpio gzip unshare findmnt timeout; do
    command -v "$tool" >/dev/null || die "$tool not found: run scripts/bootstrap.sh"
done
VIRTIOFSD=${VIRTIOFSD:-/usr/lib/qemu/virtiofsd}
[ -x "$VIRTIOFSD" ] || die "no $VIRTIOFSD: apt-get install qemu-system-common (or set VIRTIOFSD)"
[ "$(id -u)" = 0 ] || die "needs root (virtiofsd, a mount namespace)"
# shellcheck source=scx/vm/boot.sh
. scx/vm/boot.sh
need_static_busybox

python=${AUTOTUNE_VM_PYTHON:-}
if [ -z "$python" ]; then
    python=$repo/.venv/bin/python
    [ -x "$python" ] || python=$(command -v python3) || die "no Python: set AUTOTUNE_VM_PYTHON"
fi
# The VM sees the root filesystem alone, and /vm.env holds the paths unquoted.
for path in "$repo" "$python" "$(readlink -f "$python")"; do
    [ "$(findmnt -n -o TARGET -T "$path")" = / ] \
        || { say "$path is not on the root filesystem, the only one the VM sees"; exit 5; }
    [[ $path != *[[:space:]\"\'\\\$\`]* ]] || die "$path has a space or quote in it"
done

t0=$(date +%s.%N)
kernel=$(scx/fetch.sh kernel) || { say "cannot fetch the kernel"; exit 4; }
out=build/cgroup2-vm
mkdir -p "$out"

work=$(mktemp -d "${TMPDIR:-/tmp}/autotune-cgroup2-vm.XXXXXX")
vfs_pid=""
stop_virtiofsd() {
    [ -n "$vfs_pid" ] || return 0
    kill "$vfs_pid" 2>/dev/null || true
    wait "$vfs_pid" 2>/dev/null || true
    vfs_pid=""
}
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    stop_virtiofsd
    # No rm -rf over $work: $work/share is where virtiofsd's namespace binds /.
    rm -rf "$work/initramfs"
    rm -f "$work/vfs.sock"
    rmdir "$work/share" "$work" 2>/dev/null || say "could not remove $work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

mkdir -p "$work"/initramfs/{bin,dev,proc,sys} "$work/share"
cp "$BUSYBOX" "$work/initramfs/bin/busybox"
install -m 0755 scx/vm/cgroup2-init.sh "$work/initramfs/init"
printf 'REPO=%s\nPYTHON=%s\nMEASURE_S=%s\n' "$repo" "$python" "${MEASURE_S:-4}" \
    >"$work/initramfs/vm.env"
(cd "$work/initramfs" && find . -print0 | cpio -o -0 -H newc --quiet | gzip -1) \
    >"$out/initramfs.cpio.gz"
t_built=$(date +%s.%N)

# virtiofsd in a mount namespace of its own, serving a read-only bind of the root filesystem
# (not recursive: /proc, /sys, /dev and other mounts stay out). The namespace and its mounts end
# with virtiofsd, which ends when qemu disconnects.
start_virtiofsd() {
    local sock=$work/vfs.sock vlog=$1
    rm -f "$sock"
    # shellcheck disable=SC2016  # expanded by the inner sh, from its arguments
    unshare --mount --propagation private sh -c \
        'mount --bind / "$1" && mount -o remount,bind,ro "$1" && exec "$2" --socket-path="$3" \
            -o source="$1" -o cache=always -o log_level=warn' \
        virtiofsd-ro "$work/share" "$VIRTIOFSD" "$sock" >"$vlog" 2>&1 &
    vfs_pid=$!
    for _ in $(seq 100); do
        [ -S "$sock" ] && return 0
        kill -0 "$vfs_pid" 2>/dev/null || break
        sleep 0.1
    done
    say "virtiofsd did not start; $vlog says: $(tail -n 3 "$vlog")"
    return 1
}

before_boot() { start_virtiofsd "$out/virtiofsd-$1.log"; }
after_boot() { stop_virtiofsd; }
boot_until_result CGROUP2-TEST-RESULT 'cgroup2-\(test\|vm\):.*' "${CGROUP2_VM_TIMEOUT:-300}" \
    "$kernel/vmlinuz" "$out/initramfs.cpio.gz" "$out" \
    -object memory-backend-memfd,id=mem,size=1024M,share=on -numa node,memdev=mem \
    -chardev socket,id=vfs,path="$work/vfs.sock" -device vhost-user-fs-pci,chardev=vfs,tag=hostroot
finish_boot CGROUP2-TEST-RESULT "$t0" "$t_built"
