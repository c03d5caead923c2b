#!/usr/bin/env bash
# Usage: scripts/install-npm-tool.sh NAME VERSION [FOLDER]
# Installs the npm package NAME@VERSION at .build/tools/FOLDER (repo-relative; FOLDER defaults to NAME)
# for the tests that need it, and prints the folder that holds node_modules. Idempotent: nothing is
# downloaded when that version is already there. Progress goes to stderr, the folder to stdout.
# Callers: scripts/install-oidc-provider.sh, scripts/install-playwright.sh.
set -euo pipefail
if [ $# -lt 2 ] || [ $# -gt 3 ] || [ -z "$1" ] || [ -z "$2" ]; then
  echo "usage: install-npm-tool.sh NAME VERSION [FOLDER]  (e.g. install-npm-tool.sh oidc-provider 9.13.3)" >&2
  exit 2
fi
name="$1" version="$2" folder="${3:-$1}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$root/.build/tools/$folder"
if [ -f "$dir/node_modules/$name/package.json" ] && grep -q "\"version\": \"$version\"" "$dir/node_modules/$name/package.json"; then
  echo "$dir"
  exit 0
fi
mkdir -p "$dir"
echo "install-npm-tool.sh: npm install $name@$version" >&2
# PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: playwright-core downloads no browser (the tests use Debian's chromium); say so anyway.
(cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --silent "$name@$version" >&2)
echo "$dir"
