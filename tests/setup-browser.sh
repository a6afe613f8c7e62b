#!/usr/bin/env bash
# What the browser tests need, installed idempotently: Debian's Chromium (the browser the tests
# drive; npm's own browser downloads do not work offline), and from npm playwright-core, jco
# (transpiles the component to JavaScript) and preview2-shim (WASI for it in Node and browsers).
set -euo pipefail
cd "$(dirname "$0")/browser"
if ! command -v chromium >/dev/null; then
  echo "installing Debian's chromium (apt-get)"
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
  fi
fi
# `npm install`, not `npm ci`: the lock file comes from one platform, and npm ci refuses it when
# optional dependencies of other platforms (jco's native bindings) are not listed in it.
npm install --no-audit --no-fund --loglevel=error
chromium --version
