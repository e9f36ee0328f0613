#!/bin/bash
# The project's own copy of ../shared/vm/build-kernel.sh (same recipe), for machines without
# ../shared. Builds the Linux kernel that the real-kernel tests boot under QEMU: Linux 7.2 (default) or 7.3
# from Debian's linux-source-<version> package (sid / trixie-backports suites), x86_64 defconfig +
# kvm_guest.config, with the Live Update Orchestrator (LUO), kexec handover (KHO) and memfd
# preservation built in.
#
#   scripts/build-kernel.sh [VERSION] [OUTDIR]   -> OUTDIR/bzImage and OUTDIR/kernel.config (VERSION: 7.2 | 7.3;
#   OUTDIR defaults to .cache/kernel/VERSION, where the VM tests look when ../shared/vm is absent)
#
# Takes about 11 minutes on 2 cores. Needs root for apt-get (build dependencies).
# The Debian mirror is read from this machine's own apt configuration; only the suite is
# switched to sid, in a private apt state directory, so the system's sources stay untouched.
set -euo pipefail
ver=${1:-7.2}
case $ver in 7.2|7.3) ;; *) echo "usage: scripts/build-kernel.sh [7.2|7.3] [OUTDIR]" >&2; exit 2;; esac
out=$(realpath -m "${2:-$(dirname "$0")/../.cache/kernel/$ver}")
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[[ -n $mirror ]] || mirror=$(awk '$1=="deb"{for(i=2;i<=NF;i++) if ($i ~ /^http/) {print $i; exit}}' /etc/apt/sources.list)
[[ -n $mirror ]] || { echo "build-kernel: no Debian mirror found in apt sources" >&2; exit 1; }

mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial"
for suite in sid trixie-backports; do
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $suite main"
done >"$work/apt/sources.list"
apt=(-o Dir::Etc::sourcelist="$work/apt/sources.list" -o Dir::Etc::sourceparts=/dev/null
     -o Dir::State::Lists="$work/apt/lists" -o Dir::Cache="$work/apt/cache"
     -o Dir::Cache::Archives="$work/apt/cache/archives")

DEBIAN_FRONTEND=noninteractive apt-get install -y -q gcc make flex bison bc libelf-dev libssl-dev xz-utils >/dev/null
apt-get "${apt[@]}" -q update >/dev/null
(cd "$work" && apt-get "${apt[@]}" -q download "linux-source-$ver" >/dev/null 2>&1)
dpkg-deb -x "$work"/linux-source-"$ver"_*.deb "$work/deb"
tar -C "$work" -xf "$work"/deb/usr/src/linux-source-"$ver".tar.xz
cd "$work/linux-source-$ver"

make -s defconfig
make -s kvm_guest.config
./scripts/config \
  -e KEXEC -e KEXEC_FILE -e KEXEC_HANDOVER -e KEXEC_HANDOVER_ENABLE_DEFAULT -e KEXEC_HANDOVER_DEBUGFS \
  -e LIVEUPDATE -e LIVEUPDATE_MEMFD -e MEMFD_CREATE -e SHMEM -e TMPFS -e BLK_DEV_INITRD \
  -e CGROUPS -e CGROUP_BPF -e AUTOFS_FS -e FHANDLE -e DEVTMPFS -e DEVTMPFS_MOUNT \
  -d DRM -d SOUND -d WLAN -d WIRELESS -d USB_SUPPORT -d HID -d INPUT_MOUSE -d NETWORK_FILESYSTEMS \
  -d DEBUG_INFO -d DEBUG_INFO_DWARF5 -d DEBUG_INFO_DWARF_TOOLCHAIN_DEFAULT -e DEBUG_INFO_NONE
make -s olddefconfig
for opt in KEXEC_HANDOVER LIVEUPDATE LIVEUPDATE_MEMFD KEXEC_FILE; do
  grep -q "^CONFIG_$opt=y" .config || { echo "build-kernel: CONFIG_$opt did not stick" >&2; exit 1; }
done
make -s -j"$(($(nproc) + 1))" bzImage
cp arch/x86/boot/bzImage "$out/bzImage"
cp .config "$out/kernel.config"
echo "build-kernel: $out/bzImage ($(stat -c %s "$out/bzImage") bytes)"
