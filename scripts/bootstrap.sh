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
    prometheus                    # the server tests/service scrapes the service's metrics with
    e2fsprogs util-linux          # mkfs.ext4 and losetup for the loop devices tests use
    clang gcc libc6-dev libelf-dev zlib1g-dev libzstd-dev libbpf1  # the sched_ext scheduler + loader
    qemu-system-x86 busybox-static cpio zstd  # make test-scx: a sched_ext kernel booted in a VM
    chromium                      # tests load `autotune compare`'s HTML report in a real browser
    shellcheck                    # make lint checks the shell scripts
)
read -ra extra <<<"${AUTOTUNE_APT_EXTRA:-}"
APT_PACKAGES+=("${extra[@]}")

missing_packages() {
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
    done
}

# Run a noisy step quietly; when it fails, show the last lines it printed and one line saying
# what failed and what to do, then exit 2.
run_step() {
    local what=$1 hint=$2 log
    shift 2
    log=$(mktemp)
    if ! "$@" >"$log" 2>&1; then
        tail -n 15 "$log" | sed 's/^/    /' >&2
        rm -f "$log"
        say "failed: $what; $hint" >&2
        exit 2
    fi
    rm -f "$log"
}

# The newest of the directories named (globs that matched nothing are skipped), or nothing.
newest_dir() {
    local d
    for d in "$@"; do
        if [ -d "$d" ]; then printf '%s\n' "$d"; fi
    done | sort -V | tail -n 1
}

APT_UPDATED=0
apt_update() {
    [ "$APT_UPDATED" = 1 ] && return 0
    run_step "apt-get update" "check the node's apt sources and network, then run make again" \
        apt-get update -q
    APT_UPDATED=1
}

apt_install() {
    [ "$#" -gt 0 ] || return 0
    if [ "$(id -u)" != 0 ]; then
        say "missing OS packages: $*; run as root (or: sudo apt-get install $*)" >&2
        exit 2
    fi
    apt_update
    say "installing $*"
    run_step "apt-get install $*" "see apt's lines above; fix them (or install these by hand) and run make again" \
        env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
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
    # apt's lists decide between the exact and the generic headers: fetch them unless present.
    compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null || apt_update
    if apt-cache show "linux-headers-$KREL" >/dev/null 2>&1; then
        apt_install "linux-headers-$KREL"
    else
        generic="linux-headers-$(dpkg --print-architecture)"          # Debian
        apt-cache show "$generic" >/dev/null 2>&1 || generic=linux-headers-generic  # Ubuntu
        mapfile -t need < <(missing_packages "$generic")
        apt_install "${need[@]}"
        # The newest installed header tree of that flavour. A glob, not `ls`: with `set -e` and
        # pipefail, `ls` exiting 2 for the flavour that matched nothing ended the script here.
        build=$(newest_dir /usr/src/linux-headers-*-"$(dpkg --print-architecture)" /usr/src/linux-headers-*-generic)
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
    venv_args=()
    [ "${TORCH:-}" = keep ] && venv_args=(--system-site-packages)
    run_step "python3 -m venv $VENV" "install python3-venv (apt-get install python3-venv) and run make again" \
        python3 -m venv "${venv_args[@]}" "$VENV"
fi
if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
    say "pip install -e .[dev] (the first run takes a minute or two)"
    pin=(-c scripts/constraints-cpu.txt)
    [ "${TORCH:-}" = keep ] && pin=()
    run_step "pip install -e .[dev] into $VENV" "see pip's lines above; rm -rf $VENV and run make again once fixed" \
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
