#!/usr/bin/env bash
# Installs playwright-core (the browser driver only; no browser download) at .build/tools/playwright for
# the browser tests, which drive Debian's chromium, and prints that folder (scripts/install-npm-tool.sh).
# Pinned so that every machine drives the browser the same way.
exec bash "$(dirname "${BASH_SOURCE[0]}")/install-npm-tool.sh" playwright-core "${OTUN_PLAYWRIGHT_VERSION:-1.65.1}" playwright
