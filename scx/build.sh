#!/usr/bin/env bash
# Build the sched_ext scheduler and its loader for one target kernel.
#
#   scx/build.sh --btf FILE --out DIR       the target's BTF (/sys/kernel/btf/vmlinux on the node)
#   scx/build.sh --vmlinuz FILE --out DIR   or its boot image (the test VM's kernel)
#
# Writes into DIR: vmlinux.h (bpftool btf dump ... format c, from the target's BTF),
# scx_autotune.bpf.o (clang -O2 -g -target bpf, CO-RE), scx-autotune (the libbpf loader, static,
# so that it also runs in the VM's initramfs) and build.env (what was chosen, and why).
# The kfunc generation is chosen here from the target's BTF and passed as -D flags.
#
# Environment: CLANG (default clang), CC (default gcc).
set -euo pipefail

say() { printf 'scx/build: %s\n' "$*" >&2; }
die() { say "$*"; exit 2; }

cd "$(dirname "$0")/.."
btf="" vmlinuz="" out=""
while [ $# -gt 0 ]; do
    case $1 in
    --btf) btf=${2:?}; shift 2 ;;
    --vmlinuz) vmlinuz=${2:?}; shift 2 ;;
    --out) out=${2:?}; shift 2 ;;
    *) die "usage: scx/build.sh --btf FILE|--vmlinuz FILE --out DIR" ;;
    esac
done
{ [ -n "$out" ] && { [ -n "$btf" ] || [ -n "$vmlinuz" ]; }; } \
    || die "usage: scx/build.sh --btf FILE|--vmlinuz FILE --out DIR"
CLANG=${CLANG:-clang}
CC=${CC:-gcc}
command -v "$CLANG" >/dev/null || die "$CLANG not found: apt-get install clang (scripts/bootstrap.sh)"
command -v "$CC" >/dev/null || die "$CC not found: apt-get install gcc libc6-dev"

tools=$(scx/fetch.sh tools)
bpftool=$tools/usr/sbin/bpftool
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The ELF vmlinux inside a bzImage: its payload (offset and length from the setup header) is
# compressed; zstd and xz payloads carry the uncompressed size in 4 trailing bytes.
extract_vmlinux() {
    local img=$1 sects off len start magic
    sects=$(od -An -tu1 -j $((0x1f1)) -N1 "$img" | tr -d ' ')
    off=$(od -An -tu4 -j $((0x248)) -N4 "$img" | tr -d ' ')
    len=$(od -An -tu4 -j $((0x24c)) -N4 "$img" | tr -d ' ')
    { [ "${sects:-0}" -gt 0 ] && [ "${len:-0}" -gt 0 ]; } || die "$img is not a bzImage"
    start=$(((sects + 1) * 512 + off))
    magic=$(od -An -tx1 -j "$start" -N4 "$img" | tr -d ' ')
    payload() { dd if="$img" iflag=skip_bytes,count_bytes skip="$start" count="$1" bs=1M status=none; }
    case $magic in
    28b52ffd) payload $((len - 4)) | zstd -dcq ;;
    fd377a58) payload $((len - 4)) | xz -dcq ;;
    1f8b*) payload "$len" | gzip -dcq ;;
    *) die "$img: payload compression $magic not supported (zstd, xz, gzip are)" ;;
    esac
}

if [ -n "$vmlinuz" ]; then
    extract_vmlinux "$vmlinuz" >"$work/vmlinux" || die "cannot decompress $vmlinuz"
    btf=$work/vmlinux
fi
[ -r "$btf" ] || die "cannot read $btf"
"$bpftool" btf dump file "$btf" >"$work/btf.txt" 2>/dev/null || die "$btf holds no BTF"
grep -q "STRUCT 'sched_ext_ops'" "$work/btf.txt" \
    || die "the target kernel has no sched_ext (no struct sched_ext_ops in its BTF)"
has_func() { grep -q "FUNC '$1' " "$work/btf.txt" && echo 1 || echo 0; }
# 6.13 renamed scx_bpf_dispatch*/scx_bpf_consume to scx_bpf_dsq_insert*/scx_bpf_dsq_move_to_local.
dsq_insert=$(has_func scx_bpf_dsq_insert)
set_slice=$(has_func scx_bpf_task_set_slice)
[ "$dsq_insert" = 1 ] || [ "$(has_func scx_bpf_dispatch)" = 1 ] \
    || die "the target kernel has neither scx_bpf_dsq_insert nor scx_bpf_dispatch"

"$bpftool" btf dump file "$btf" format c >"$work/vmlinux.h"
mv "$work/vmlinux.h" "$out/vmlinux.h"

"$CLANG" -O2 -g -target bpf -D__TARGET_ARCH_x86 \
    -DAUTOTUNE_DSQ_INSERT="$dsq_insert" -DAUTOTUNE_SET_SLICE="$set_slice" \
    -I"$out" -I"$tools/usr/include" -Ibpf \
    -c bpf/scx_autotune.bpf.c -o "$work/scx_autotune.bpf.o"
mv "$work/scx_autotune.bpf.o" "$out/scx_autotune.bpf.o"

"$CC" -O2 -Wall -Wextra -static -I"$tools/usr/include" -Ibpf scx/loader.c \
    "$tools/usr/lib/x86_64-linux-gnu/libbpf.a" -lelf -lz -lzstd -o "$work/scx-autotune" \
    || die "linking the loader failed: apt-get install libelf-dev zlib1g-dev libzstd-dev"
mv "$work/scx-autotune" "$out/scx-autotune"

cat >"$work/build.env" <<EOF
# written by scx/build.sh
TARGET=${vmlinuz:-$btf}
AUTOTUNE_DSQ_INSERT=$dsq_insert
AUTOTUNE_SET_SLICE=$set_slice
BPFTOOL=$("$bpftool" version | head -n1)
CLANG=$("$CLANG" --version | head -n1)
EOF
mv "$work/build.env" "$out/build.env"
say "built $out/scx_autotune.bpf.o (kfuncs: $([ "$dsq_insert" = 1 ] && echo 6.13+ dsq_insert || echo 6.12 dispatch)) and $out/scx-autotune"
