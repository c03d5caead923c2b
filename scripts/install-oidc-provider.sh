#!/usr/bin/env bash
# Installs the npm package oidc-provider (a certified OpenID Provider) at .build/tools/oidc-provider
# (repo-relative) for the OIDC access tests, which start it on a loopback port, and prints the folder
# that holds node_modules. Idempotent.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$root/.build/tools/oidc-provider"
# Pinned so that every machine runs the same provider.
version="${OTUN_OIDC_PROVIDER_VERSION:-9.13.3}"
if [ -f "$dir/node_modules/oidc-provider/package.json" ] && grep -q "\"version\": \"$version\"" "$dir/node_modules/oidc-provider/package.json"; then
  echo "$dir"
  exit 0
fi
mkdir -p "$dir"
echo "install-oidc-provider.sh: npm install oidc-provider@$version" >&2
(cd "$dir" && npm install --no-audit --no-fund --silent "oidc-provider@$version" >&2)
echo "$dir"
