#!/bin/bash
# packaging/deb.sh OUTDIR: builds OUTDIR/luo_VERSION_ARCH.deb with dpkg-deb from
# "make install DESTDIR=... PREFIX=/usr" (run by make deb, which sets VERSION).
# The binaries are static (CGO_ENABLED=0): the package depends on nothing.
# luod.service is installed, not enabled: systemctl enable --now luod.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: packaging/deb.sh OUTDIR}
go=${GO:-go}
version=${VERSION:?VERSION is not set}
# A Debian version starts with a digit and has no "-" (this is a native
# package): "v1.2.3" -> "1.2.3", "1.2.3-4-gabc" -> "1.2.3+4+gabc", a bare
# commit "abc1234-dirty" -> "0~gitabc1234+dirty".
deb_version=${version#v}
deb_version=${deb_version//-/+}
[[ $deb_version =~ ^[0-9]+\. ]] || deb_version="0~git$deb_version"
case $($go env GOARCH) in
  amd64) arch=amd64 ;; arm64) arch=arm64 ;; 386) arch=i386 ;; *) arch=$($go env GOARCH) ;;
esac

stage=$(mktemp -d)
chmod 0755 "$stage"
trap 'rm -rf "$stage"' EXIT
make --no-print-directory install DESTDIR="$stage" PREFIX=/usr UNITDIR=/usr/lib/systemd/system VERSION="$version" GO="$go" >/dev/null
# Debian policy: manual pages compressed with gzip -9n.
find "$stage/usr/share/man" -type f -name '*.[0-9]' -exec gzip -9n {} +
install -d "$stage/usr/share/doc/luo"
install -m 0644 README.md "$stage/usr/share/doc/luo/README.md"

install -d "$stage/DEBIAN"
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat > "$stage/DEBIAN/control" <<CONTROL
Package: luo
Version: $deb_version
Architecture: $arch
Maintainer: luo developers <luo@localhost>
Installed-Size: $size
Section: admin
Priority: optional
Homepage: https://github.com/liveupdate/luo
Description: Linux Live Update userspace: luod and luoctl
 luod is a service manager with systemd's file descriptor store semantics
 that carries its services' state across its own re-execution and across
 kexec live updates, through the kernel's Live Update Orchestrator
 (/dev/liveupdate). luoctl controls it: units, fd stores, staged and
 running live updates.
CONTROL
cat > "$stage/DEBIAN/postinst" <<'SCRIPT'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload || true
fi
SCRIPT
cat > "$stage/DEBIAN/prerm" <<'SCRIPT'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
  systemctl disable --now luod.service >/dev/null 2>&1 || true
  # The units' state luod kept in systemd's fd store goes with the package.
  systemctl clean --what=fdstore luod.service >/dev/null 2>&1 || true
fi
SCRIPT
cat > "$stage/DEBIAN/postrm" <<'SCRIPT'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload || true
fi
SCRIPT
chmod 0755 "$stage/DEBIAN/postinst" "$stage/DEBIAN/prerm" "$stage/DEBIAN/postrm"

mkdir -p "$out"
deb="$out/luo_${deb_version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "$deb"
