#!/bin/bash
# Builds (once) the Debian sid root file system that the systemd interop test (internal/interop,
# `make interop`) boots under QEMU: minbase + systemd 262 + kexec-tools, configured to boot to
# multi-user.target on a serial console without a getty.
#
#   scripts/interop-rootfs.sh [CACHEDIR]   -> prints the path of the ready root directory
#
# CACHEDIR defaults to .cache/interop. The result is CACHEDIR/rootfs-r<RECIPE>, reused as long as
# RECIPE below is unchanged: bump RECIPE whenever this recipe changes (packages, configuration),
# and the next run builds a new tree (older ones can be deleted by hand). A tree is complete only
# when it has the .interop-rootfs stamp; a build happens in a temporary directory renamed at the
# end, under a lock, so an interrupted or concurrent build never leaves a half tree in use.
#
# Needs root (debootstrap, chroot). Installs debootstrap when missing. The Debian mirror is the
# one of this machine's apt sources; the suite is sid whatever the machine runs, and nothing in
# the system's apt configuration changes. A cold build takes about 10 minutes.
set -euo pipefail
RECIPE=1
PACKAGES=systemd,systemd-sysv,kexec-tools

cache=$(realpath -m "${1:-$(dirname "$0")/../.cache/interop}")
root=$cache/rootfs-r$RECIPE
stamp=$root/.interop-rootfs
log() { echo "interop-rootfs: $*" >&2; }

if [[ -e $stamp ]]; then
  log "cached: $root ($(cat "$stamp"))"
  echo "$root"
  exit 0
fi
[[ $(id -u) == 0 ]] || { log "needs root (debootstrap, chroot)"; exit 77; }
mkdir -p "$cache"
exec 9>"$cache/rootfs-r$RECIPE.lock"
flock 9
if [[ -e $stamp ]]; then # built by a concurrent run while we waited
  echo "$root"
  exit 0
fi

if ! command -v debootstrap >/dev/null; then
  log "installing debootstrap"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null 2>&1; then
    { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null; } ||
      { log "debootstrap is missing and apt-get cannot install it"; exit 77; }
  fi
fi

mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[[ -n $mirror ]] || mirror=$(awk '$1=="deb"{for(i=2;i<=NF;i++) if ($i ~ /^http/) {print $i; exit}}' /etc/apt/sources.list 2>/dev/null || true)
[[ -n $mirror ]] || { log "no Debian mirror found in apt sources"; exit 1; }

tmp=$cache/rootfs-r$RECIPE.tmp
rm -rf "$tmp"
start=$(date +%s)
log "debootstrap sid ($PACKAGES) from $mirror into $tmp"
if ! debootstrap --variant=minbase --include="$PACKAGES" \
     --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
     sid "$tmp" "$mirror" >"$cache/debootstrap-r$RECIPE.log" 2>&1; then
  log "debootstrap failed; last lines of $cache/debootstrap-r$RECIPE.log:"
  tail -n 30 "$cache/debootstrap-r$RECIPE.log" >&2
  [[ -f $tmp/debootstrap/debootstrap.log ]] && tail -n 30 "$tmp/debootstrap/debootstrap.log" >&2
  exit 1
fi

# --- configuration (part of the recipe: bump RECIPE when changing it) ---
# A fixed machine id: no first-boot units, a stable persistent journal directory.
echo 6c756f696e7465726f70746573740001 >"$tmp/etc/machine-id"
echo interop >"$tmp/etc/hostname"
# Persistent journal, so the last stage can show every boot of the run.
mkdir -p "$tmp/var/log/journal"
# No login prompts on the console; nothing the test does not need.
for u in getty@tty1.service serial-getty@ttyS0.service serial-getty@ttyS1.service getty.target \
         apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer fstrim.timer \
         systemd-timesyncd.service e2scrub_all.timer e2scrub_reap.service; do
  ln -sf /dev/null "$tmp/etc/systemd/system/$u"
done
# systemd >= 261 delays a shutdown (and a kexec) until the machine has been up for
# MinimumUptimeSec= (15 s); the test kexecs as soon as it has looked around.
mkdir -p "$tmp/etc/systemd/system.conf.d"
cat >"$tmp/etc/systemd/system.conf.d/interop.conf" <<'EOF'
[Manager]
MinimumUptimeSec=0
DefaultTimeoutStopSec=30s
EOF
# The root file system is mounted by the kernel (root=/dev/vda rw); nothing else.
: >"$tmp/etc/fstab"
rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/* "$tmp"/debootstrap

versions=$(chroot "$tmp" dpkg-query -W -f='${Package}=${Version} ' systemd kexec-tools libc6)
echo "recipe=$RECIPE $versions built=$(date -u +%FT%TZ) seconds=$(($(date +%s) - start))" >"$tmp/.interop-rootfs"
rm -rf "$root"
mv "$tmp" "$root"
log "built $root in $(($(date +%s) - start)) s: $versions"
echo "$root"
