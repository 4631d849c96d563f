#!/usr/bin/env bash
# Builds the lab's guest image from Debian packages (issue 9): Debian's kernel (the version
# linux-image-amd64 depends on, unpacked into the cache, never installed into /boot) and an
# initramfs of busybox-static, the virtio-net modules, udp-echo (built static from udp-echo.c) and
# init. Output in $MIP46_GUEST_DIR (default /var/cache/mip46/guest):
#   vmlinuz  initrd.gz  stamp (what they were built from)
# Skips the work when the stamp matches. Fails loudly when anything is missing.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
OUT="${MIP46_GUEST_DIR:-/var/cache/mip46/guest}"
MODULES=(virtio virtio_ring virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net)
die() { echo "guest build: $*" >&2; exit 1; }

command -v gcc >/dev/null || die "gcc missing (build-essential)"
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "install ok installed" || die "busybox-static missing"
KPKG="$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -1)"
[ -n "$KPKG" ] || die "cannot tell which kernel linux-image-amd64 depends on (apt-get update?)"
KVER_PKG="$(apt-cache policy "$KPKG" | sed -n 's/^ *Candidate: //p')"
SOURCES_SUM="$(cat "$HERE/init" "$HERE/udp-echo.c" "$HERE/build.sh" /bin/busybox | sha256sum | cut -c1-16)"
STAMP="$KPKG $KVER_PKG $SOURCES_SUM"
if [ -f "$OUT/stamp" ] && [ "$(cat "$OUT/stamp")" = "$STAMP" ] && [ -s "$OUT/vmlinuz" ] && [ -s "$OUT/initrd.gz" ]; then
  echo "guest build: up to date ($STAMP) in $OUT"
  exit 0
fi
echo "guest build: $KPKG $KVER_PKG into $OUT"
mkdir -p "$OUT"
WORK="$(mktemp -d "$OUT/.build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# The kernel package, unpacked (apt-get download needs no root; the lists may need a refresh).
DEB="$(ls "$OUT"/"${KPKG}"_"${KVER_PKG//:/%3a}"_amd64.deb 2>/dev/null | head -1 || true)"
if [ -z "$DEB" ]; then
  rm -f "$OUT"/linux-image-*.deb
  (cd "$OUT" && { apt-get download -q "$KPKG=$KVER_PKG" || { apt-get update -qq && apt-get download -q "$KPKG=$KVER_PKG"; }; }) \
    || die "apt-get download $KPKG failed"
  DEB="$(ls "$OUT"/"${KPKG}"_*_amd64.deb | head -1)"
fi
dpkg-deb -x "$DEB" "$WORK/kernel"
VMLINUZ="$(ls "$WORK"/kernel/boot/vmlinuz-* | head -1)"
[ -s "$VMLINUZ" ] || die "no vmlinuz in $DEB"
KREL="${VMLINUZ##*/vmlinuz-}"
MODDIR="$WORK/kernel/lib/modules/$KREL"

# The initramfs tree.
ROOT="$WORK/root"
mkdir -p "$ROOT"/{bin,sbin,proc,sys,dev,tmp,lib/modules}
cp /bin/busybox "$ROOT/bin/busybox"
ln -s busybox "$ROOT/bin/sh"
gcc -static -O2 -Wall -Werror -o "$ROOT/bin/udp-echo" "$HERE/udp-echo.c"
cp "$HERE/init" "$ROOT/init"
chmod 755 "$ROOT/init"
for m in "${MODULES[@]}"; do
  if grep -qE "/$m\.ko(\.[a-z]+)?$" "$MODDIR/modules.builtin" 2>/dev/null; then continue; fi
  # The package carries no modules.dep (depmod writes it at install): find the file by name.
  rel="$(cd "$MODDIR" && find kernel -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" -o -name "$m.ko.gz" | head -1)"
  [ -n "$rel" ] || die "module $m is neither built in nor under $MODDIR"
  case "$rel" in
    *.ko) cp "$MODDIR/$rel" "$ROOT/lib/modules/$m.ko" ;;
    *.ko.xz) xz -dc "$MODDIR/$rel" > "$ROOT/lib/modules/$m.ko" ;;
    *.ko.zst) zstd -dqc "$MODDIR/$rel" > "$ROOT/lib/modules/$m.ko" ;;
    *.ko.gz) gzip -dc "$MODDIR/$rel" > "$ROOT/lib/modules/$m.ko" ;;
  esac
done
(cd "$ROOT" && find . | LC_ALL=C sort | busybox cpio -o -H newc -R 0:0 2>/dev/null | gzip -9 > "$WORK/initrd.gz")
[ -s "$WORK/initrd.gz" ] || die "empty initramfs"
cp "$VMLINUZ" "$WORK/vmlinuz"
mv -f "$WORK/vmlinuz" "$OUT/vmlinuz"
mv -f "$WORK/initrd.gz" "$OUT/initrd.gz"
echo "$STAMP" > "$OUT/stamp"
echo "guest build: done: $OUT/vmlinuz ($KREL), $OUT/initrd.gz ($(stat -c %s "$OUT/initrd.gz") bytes)"
