#!/usr/bin/env bash
# `make test-scx`: test our sched_ext scheduler for real, in a VM booting a sched_ext kernel.
#
# Fetches (once, cached: scx/fetch.sh) the kernel and tools, builds the scheduler against that
# kernel's BTF (scx/build.sh), packs an initramfs (busybox-static, the loader, the BPF object,
# scx/vm/init.sh as /init) and boots it under qemu (scx/vm/boot.sh: single-threaded TCG, no KVM
# here). init.sh prints the measured ratios and one SCX-TEST-RESULT line. A boot that crashes or
# hangs before that line is retried, at most twice, and said so; a FAIL line is a test failure
# and is not retried.
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
# shellcheck source=scx/vm/boot.sh
. scx/vm/boot.sh
need_static_busybox

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

boot_until_result SCX-TEST-RESULT 'scx-test:.*' "${SCX_VM_TIMEOUT:-300}" "$kernel/vmlinuz" \
    "$out/initramfs.cpio.gz" "$out"
finish_boot SCX-TEST-RESULT "$t0" "$t_built"
