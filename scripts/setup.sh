#!/usr/bin/env bash
# Everything mip46 needs on a fresh Debian machine: Debian packages, npm packages, generated code.
# Safe to run again; it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  protobuf-compiler   # protoc, for scripts/generate.sh
  libpcap-dev         # the data plane's capture (npm cap builds against it)
  tshark              # independent decoder in the packet tests
  python3-scapy       # independent packet builder in the tests (/usr/bin/python3)
  iproute2            # ip netns / veth for the network tests and the lab
  tayga               # the benchmark baseline for translation
  netsniff-ng         # trafgen, the benchmark's packet generator
  ethtool             # turns offloads off on test veths
  build-essential     # node-gyp builds (better-sqlite3, cap)
  python3             # node-gyp
  etcd-server         # the replicated store (issue 5) and its tests
  etcd-client         # etcdctl, for operators and the failure tests
  prometheus          # promtool checks deploy/prometheus; the lab scrape test
  qemu-system-x86     # the lab's VMs are QEMU guests (deploy/lab/qemu.ts)
  busybox-static      # the guests' initramfs (deploy/lab/guest/build.sh)
  iputils-ping        # ping, called by the lab tests
  chromium            # headless, renders the handover chart in its test (test/lab/chart.test.ts)
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund
fi

# Regenerate from proto/ and make sure the committed gen/ matches.
npm run --silent generate
if git rev-parse --is-inside-work-tree >/dev/null 2>&1 && ! git diff --quiet -- gen; then
  echo "setup: gen/ differs from what proto/ generates; commit the result of 'npm run generate'" >&2
  git --no-pager diff --stat -- gen >&2
  exit 1
fi
bash scripts/build.sh
# mip46-lab, mipctl and the daemons on PATH, as the README writes them.
bash scripts/install-bin.sh
# The lab's guest image: Debian's kernel and a busybox initramfs (skipped when up to date).
bash deploy/lab/guest/build.sh || { echo "setup: the lab's guest image could not be built" >&2; exit 1; }
echo "setup: ready"
