#!/usr/bin/env bash
# Installs simtrip from a fresh checkout: the oneDNN headers for the fast CPU engine (where this
# machine lets us: root or password-less sudo, and apt-get), then the npm packages, which also build
# the native engine and compile the TypeScript. Without oneDNN simtrip still installs and runs on the
# slow pure-JavaScript engine; `simtrip doctor` then says how to enable the fast one.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
dpkg -s libdnnl-dev >/dev/null 2>&1 || need+=(libdnnl-dev)
# libjpeg-turbo for the native JPEG decoder (src/io/jpeg_native.ts); without it JPEGs decode through sharp.
dpkg -s libjpeg-dev >/dev/null 2>&1 || need+=(libjpeg-dev)
command -v g++ >/dev/null 2>&1 || need+=(g++)
command -v make >/dev/null 2>&1 || need+=(make)
command -v python3 >/dev/null 2>&1 || need+=(python3)

if [ ${#need[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then sudo=(); elif sudo -n true 2>/dev/null; then sudo=(sudo -n); else sudo=(none); fi
    if [ "${sudo[0]:-}" = none ]; then
      echo "simtrip setup: cannot install ${need[*]} (not root, no password-less sudo); run: sudo apt-get install -y ${need[*]}, then npm rebuild" >&2
    else
      echo "simtrip setup: installing ${need[*]} with apt-get" >&2
      export DEBIAN_FRONTEND=noninteractive
      "${sudo[@]}" apt-get update -qq
      "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    fi
  else
    echo "simtrip setup: no apt-get here; install oneDNN (libdnnl, headers included) and a C++ compiler for the fast CPU engine" >&2
  fi
fi

npm ci --no-audit --no-fund
