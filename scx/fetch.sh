#!/usr/bin/env bash
# Download, once, what the sched_ext scheduler needs that this Debian release does not ship, through
# a PRIVATE apt configuration: its own sources list, lists, status and archives under the cache
# directory. The system's apt sources and state are never read or changed.
#
#   scx/fetch.sh tools    bpftool >= 7.5 and libbpf-dev >= 1.4 (bookworm-backports): prints the
#                         folder they are unpacked in (usr/sbin/bpftool, usr/include/bpf, libbpf.a)
#   scx/fetch.sh kernel   the newest linux-image-6.18.*-cloud-amd64 (trixie-backports; built with
#                         CONFIG_SCHED_CLASS_EXT=y and BTF): prints the folder holding its vmlinuz
#
# Bookworm's own libbpf 1.1 / bpftool 7.1 cannot attach a `.struct_ops.link` (errno 524), and
# Debian's 6.12 kernels are built without sched_ext: hence backports.
#
# Environment:
#   AUTOTUNE_SCX_CACHE   the cache (default /var/cache/autotune/scx as root, else
#                        ${XDG_CACHE_HOME:-~/.cache}/autotune/scx)
#   AUTOTUNE_SCX_KERNEL  a linux-image package name to use instead of the newest 6.18 cloud one
#   AUTOTUNE_SCX_MIRROR  the Debian mirror (default http://deb.debian.org/debian)
# A second run finds everything in the cache and downloads nothing.
set -euo pipefail

say() { printf 'scx/fetch: %s\n' "$*" >&2; }
die() { say "$*"; exit 2; }

if [ "$(id -u)" = 0 ]; then
    default_cache=/var/cache/autotune/scx
else
    default_cache=${XDG_CACHE_HOME:-$HOME/.cache}/autotune/scx
fi
CACHE=${AUTOTUNE_SCX_CACHE:-$default_cache}
MIRROR=${AUTOTUNE_SCX_MIRROR:-http://deb.debian.org/debian}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
APT=$CACHE/apt

apt_private() {
    # Every list apt reads and every file it writes is under $APT. The system's apt.conf.d is
    # still read: it holds settings such as a proxy, never sources.
    local tool=$1
    shift
    "$tool" -q \
        -o Dir::Etc::SourceList="$APT/etc/sources.list" \
        -o Dir::Etc::SourceParts="$APT/etc/sources.list.d" \
        -o Dir::Etc::Preferences="$APT/etc/preferences" \
        -o Dir::Etc::PreferencesParts="$APT/etc/preferences.d" \
        -o Dir::State="$APT/state" \
        -o Dir::State::status="$APT/state/status" \
        -o Dir::Cache="$APT/cache" \
        -o APT::Architecture=amd64 \
        -o APT::Sandbox::User="$(id -un)" \
        -o Debug::NoLocking=1 \
        "$@"
}

apt_setup() {
    [ -f "$KEYRING" ] || die "no $KEYRING: install debian-archive-keyring"
    mkdir -p "$APT"/etc/{preferences.d,sources.list.d} "$APT"/state/lists/partial \
        "$APT"/cache/archives/partial
    touch "$APT/state/status"
    local want
    want=$(printf 'deb [signed-by=%s] %s %s main\n' \
        "$KEYRING" "$MIRROR" bookworm-backports \
        "$KEYRING" "$MIRROR" trixie-backports)
    if [ "$(cat "$APT/etc/sources.list" 2>/dev/null)" != "$want" ]; then
        printf '%s\n' "$want" >"$APT/etc/sources.list"
        rm -f "$APT/state/.updated"
    fi
    if [ ! -f "$APT/state/.updated" ]; then
        say "apt-get update (private lists in $APT)"
        apt_private apt-get update >/dev/null || die "apt-get update failed (no network to $MIRROR?)"
        touch "$APT/state/.updated"
    fi
}

# Download packages into $2 and unpack them there; $1 names a stamp that marks it complete.
fetch_into() {
    local dest=$1
    shift
    local tmp
    tmp=$(mktemp -d "$CACHE/.dl.XXXXXX")
    (cd "$tmp" && apt_private apt-get download "$@" >/dev/null) || {
        rm -rf "$tmp"
        die "apt-get download $* failed"
    }
    mkdir -p "$tmp/root"
    local deb
    for deb in "$tmp"/*.deb; do
        dpkg-deb -x "$deb" "$tmp/root"
        dpkg-deb -f "$deb" Package Version | paste -sd' ' >>"$tmp/root/PACKAGES"
    done
    rm -f "$tmp"/*.deb
    # Only a complete folder gets the final name.
    rm -rf "$dest"
    mv "$tmp/root" "$dest"
    rmdir "$tmp"
}

version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }

fetch_tools() {
    local dest=$CACHE/tools
    if [ ! -x "$dest/usr/sbin/bpftool" ] || [ ! -f "$dest/usr/lib/x86_64-linux-gnu/libbpf.a" ]; then
        apt_setup
        say "downloading bpftool and libbpf-dev from bookworm-backports"
        fetch_into "$dest" bpftool/bookworm-backports libbpf-dev/bookworm-backports
    fi
    local bv lv
    bv=$("$dest/usr/sbin/bpftool" version | sed -n 's/^bpftool v//p')
    lv=$(sed -n 's/^#define LIBBPF_\(MAJOR\|MINOR\)_VERSION \([0-9]*\)/\2/p' \
        "$dest/usr/include/bpf/libbpf_version.h" | paste -sd.)
    version_ge "$bv" 7.5 || die "bpftool $bv in $dest is older than 7.5"
    version_ge "$lv" 1.4 || die "libbpf $lv in $dest is older than 1.4"
    echo "$dest"
}

newest_image() {
    apt_private apt-cache search --names-only "^linux-image-$1\.[0-9]+\+deb13-cloud-amd64\$" \
        | cut -d' ' -f1 | sort -V | tail -n1 | grep .
}

fetch_kernel() {
    local link=$CACHE/kernel/current pkg
    if [ -z "${AUTOTUNE_SCX_KERNEL:-}" ] && [ -f "$link/vmlinuz" ]; then
        (cd "$link" && pwd -P)
        return
    fi
    apt_setup
    # 6.18 is the series this was measured on; when backports has moved past it, the newest
    # later cloud image (they keep sched_ext) rather than nothing.
    pkg=${AUTOTUNE_SCX_KERNEL:-$(newest_image '6\.18' || newest_image '6\.(19|[2-9][0-9])')}
    [ -n "$pkg" ] || die "no linux-image-6.18.*-cloud-amd64 (or later) in trixie-backports"
    local dest=$CACHE/kernel/$pkg
    if [ ! -f "$dest/vmlinuz" ]; then
        say "downloading $pkg from trixie-backports"
        fetch_into "$dest.tmp" "$pkg"
        local img cfg found
        found=("$dest.tmp"/boot/vmlinuz-*) && img=${found[0]}
        found=("$dest.tmp"/boot/config-*) && cfg=${found[0]}
        grep -qx 'CONFIG_SCHED_CLASS_EXT=y' "$cfg" || die "$pkg is built without sched_ext"
        grep -qx 'CONFIG_DEBUG_INFO_BTF=y' "$cfg" || die "$pkg is built without BTF"
        # Keep the image and its config; the modules are not needed (the test runs from RAM).
        mkdir -p "$dest.tmp/keep"
        mv "$img" "$dest.tmp/keep/vmlinuz"
        mv "$cfg" "$dest.tmp/keep/config"
        mv "$dest.tmp/PACKAGES" "$dest.tmp/keep/PACKAGES"
        rm -rf "$dest"
        mv "$dest.tmp/keep" "$dest"
        rm -rf "$dest.tmp"
    fi
    [ -n "${AUTOTUNE_SCX_KERNEL:-}" ] || ln -sfn "$pkg" "$link"
    echo "$dest"
}

mkdir -p "$CACHE/kernel"
case "${1:-}" in
tools) fetch_tools ;;
kernel) fetch_kernel ;;
*) die "usage: scx/fetch.sh tools|kernel" ;;
esac
