#!/usr/bin/env bash
# Debian packages the tests need, installed idempotently: each package named that is not
# installed yet is installed with apt-get (as root, or through sudo).
# Usage: bash tests/setup-debian.sh faketime …
set -euo pipefail
missing=()
for package in "$@"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${missing[*]} (apt-get)"
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
