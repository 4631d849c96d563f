#!/usr/bin/env bash
# Puts the package's executables (package.json "bin") on PATH: a small wrapper per command in
# /usr/local/bin (or $MIP46_BIN_DIR) that runs this checkout's bin/<name>.js with node. A wrapper
# of another checkout is replaced; a file that is not a mip46 wrapper is left alone and named.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${MIP46_BIN_DIR:-/usr/local/bin}"
here="$(pwd -P)"
node_bin="$(command -v node)"
SUDO=""; [ -w "$dir" ] || { [ "$(id -u)" -eq 0 ] || SUDO="sudo"; }
$SUDO mkdir -p "$dir"
for name in $(node -e 'for (const n of Object.keys(require("./package.json").bin)) console.log(n)'); do
  target="$dir/$name"
  if [ -e "$target" ] && ! grep -q "^# mip46 wrapper" "$target" 2>/dev/null; then
    echo "install-bin: $target exists and is not a mip46 wrapper; left alone" >&2
    continue
  fi
  printf '#!/bin/sh\n# mip46 wrapper (scripts/install-bin.sh): runs %s\nexec "%s" "%s" "$@"\n' "$here/bin/$name.js" "$node_bin" "$here/bin/$name.js" | $SUDO tee "$target" >/dev/null
  $SUDO chmod 0755 "$target"
done
echo "install-bin: $(node -e 'console.log(Object.keys(require("./package.json").bin).join(", "))') in $dir"
