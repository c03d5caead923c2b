#!/usr/bin/env bash
# Installs playwright-core (the browser driver only; no browser download) at .build/tools/playwright
# (repo-relative) for the inspector's browser tests, which drive Debian's chromium, and prints the
# folder that holds node_modules. Idempotent.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$root/.build/tools/playwright"
# Pinned so that every machine drives the browser the same way.
version="${OTUN_PLAYWRIGHT_VERSION:-1.65.1}"
if [ -f "$dir/node_modules/playwright-core/package.json" ] && grep -q "\"version\": \"$version\"" "$dir/node_modules/playwright-core/package.json"; then
  echo "$dir"
  exit 0
fi
mkdir -p "$dir"
echo "install-playwright.sh: npm install playwright-core@$version" >&2
# PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: the core package downloads nothing, but say so anyway.
(cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --silent "playwright-core@$version" >&2)
echo "$dir"
