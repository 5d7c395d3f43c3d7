#!/usr/bin/env bash
# Bootstrap a node for autotune, idempotently: OS packages (bcc, kernel headers, the workload
# tools the tests and benchmarks drive), tracefs, a virtualenv at .venv with `pip install -e .[dev]`,
# and bcc (which only the OS ships) made importable inside that venv.
# A second run checks and changes nothing: it takes seconds.
#
# Environment:
#   AUTOTUNE_APT_EXTRA  more Debian packages to install (space separated)
#   TORCH=keep          GPU nodes: keep the torch the node already has instead of the pinned CPU
#                       build (the venv then also sees the system site-packages, where it lives).
set -euo pipefail

cd "$(dirname "$0")/.."
VENV=.venv
say() { printf 'bootstrap: %s\n' "$*"; }

# --- OS packages -------------------------------------------------------------------------------
APT_PACKAGES=(
    python3-bpfcc bpfcc-tools     # bcc: the BPF compiler collection and its reference tools
    libbpf-tools                  # bcc's CO-RE biolatency/runqlat: references for bench/telemetry
    stress-ng fio rt-tests sysbench # workloads for tests and benchmarks
    e2fsprogs util-linux          # mkfs.ext4 and losetup for the loop devices tests use
    clang gcc libc6-dev libelf-dev zlib1g-dev libzstd-dev libbpf1  # the sched_ext scheduler + loader
    qemu-system-x86 busybox-static cpio zstd  # make test-scx: a sched_ext kernel booted in a VM
    chromium                      # tests load `autotune compare`'s HTML report in a real browser
)
APT_PACKAGES+=(${AUTOTUNE_APT_EXTRA:-})

missing_packages() {
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
    done
}

APT_UPDATED=0
apt_install() {
    [ "$#" -gt 0 ] || return 0
    if [ "$(id -u)" != 0 ]; then
        say "missing OS packages: $*; run as root (or: sudo apt-get install $*)" >&2
        exit 2
    fi
    if [ "$APT_UPDATED" = 0 ]; then
        apt-get update -q >/dev/null
        APT_UPDATED=1
    fi
    say "installing $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null
}

if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    APT_PACKAGES+=(python3-venv)
fi
mapfile -t need < <(missing_packages "${APT_PACKAGES[@]}")
apt_install "${need[@]}"

# --- kernel headers for bcc --------------------------------------------------------------------
# bcc compiles our BPF C against kernel headers. Custom and cloud kernels (this VM's 6.18, say)
# have no linux-headers-$(uname -r) package: we then use the distribution's generic headers. That
# is safe only because our programs read tracepoint arguments and helper results, never kernel
# struct fields (bpf/README.md).
KREL=$(uname -r)
MODDIR=/lib/modules/$KREL
if [ ! -e "$MODDIR/build/Makefile" ]; then
    if [ "$(id -u)" != 0 ]; then
        say "no kernel headers at $MODDIR/build; run as root to install them" >&2
        exit 2
    fi
    [ "$APT_UPDATED" = 1 ] || { apt-get update -q >/dev/null; APT_UPDATED=1; }
    if apt-cache show "linux-headers-$KREL" >/dev/null 2>&1; then
        apt_install "linux-headers-$KREL"
    else
        generic="linux-headers-$(dpkg --print-architecture)"          # Debian
        apt-cache show "$generic" >/dev/null 2>&1 || generic=linux-headers-generic  # Ubuntu
        mapfile -t need < <(missing_packages "$generic")
        apt_install "${need[@]}"
        # The newest installed header tree of that flavour.
        build=$(ls -d /usr/src/linux-headers-*-"$(dpkg --print-architecture)" /usr/src/linux-headers-*-generic 2>/dev/null | sort -V | tail -n 1)
        if [ -z "$build" ]; then
            say "no kernel headers installed by $generic; bcc cannot compile" >&2
            exit 2
        fi
        source_dir=${build%-*}-common
        [ -d "$source_dir" ] || source_dir=$build
        mkdir -p "$MODDIR"
        ln -sfn "$build" "$MODDIR/build"
        ln -sfn "$source_dir" "$MODDIR/source"
        say "no linux-headers-$KREL package: using $(basename "$build") for bcc (fallback; tracepoint-only programs)"
    fi
fi

# --- tracefs -----------------------------------------------------------------------------------
# bcc attaches tracepoints through tracefs; minimal VMs boot without it mounted.
if [ ! -d /sys/kernel/tracing/events ] && [ "$(id -u)" = 0 ]; then
    mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null && say "mounted tracefs at /sys/kernel/tracing"
fi

# --- virtualenv --------------------------------------------------------------------------------
STAMP=$VENV/.autotune-installed
want=$(cat pyproject.toml scripts/bootstrap.sh scripts/constraints-cpu.txt | sha256sum | cut -c1-16)
if [ ! -x "$VENV/bin/python" ]; then
    if [ "${TORCH:-}" = keep ]; then
        python3 -m venv --system-site-packages "$VENV"
    else
        python3 -m venv "$VENV"
    fi
fi
if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
    say "pip install -e .[dev] (the first run takes a minute or two)"
    pin=(-c scripts/constraints-cpu.txt)
    [ "${TORCH:-}" = keep ] && pin=()
    "$VENV/bin/pip" install -q --disable-pip-version-check "${pin[@]}" -e ".[dev]"
    echo "$want" >"$STAMP"
fi

# --- bcc inside the venv -----------------------------------------------------------------------
# Debian ships bcc's Python bindings for the system Python only; they are pure Python over
# libbcc.so, so linking the package into the venv is enough.
site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
bcc_src=""
for d in /usr/lib/python3/dist-packages/bcc /usr/lib/python3*/site-packages/bcc; do
    [ -f "$d/__init__.py" ] && { bcc_src=$d; break; }
done
if [ -z "$bcc_src" ]; then
    say "python3-bpfcc is installed but its bcc module was not found" >&2
    exit 2
fi
if [ "$(readlink "$site/bcc" 2>/dev/null)" != "$bcc_src" ]; then
    ln -sfn "$bcc_src" "$site/bcc"
fi
"$VENV/bin/python" -c 'import bcc' || { say "bcc does not import inside $VENV" >&2; exit 2; }
