#!/usr/bin/env bash
# Installs the npm package oidc-provider (a certified OpenID Provider) at .build/tools/oidc-provider for
# the OIDC access tests, which start it on a loopback port, and prints that folder (scripts/install-npm-tool.sh).
# Pinned so that every machine runs the same provider.
exec bash "$(dirname "${BASH_SOURCE[0]}")/install-npm-tool.sh" oidc-provider "${OTUN_OIDC_PROVIDER_VERSION:-9.13.3}"
