#!/usr/bin/env bash
# Installs the Kubernetes object schemas the chart tests validate rendered manifests against, and
# prints the folder to run scripts/k8s-validate/validate.mjs from. There is no API server here and
# kubectl validates only against one, so the schemas come from the npm packages kubernetes-models
# (the Kubernetes OpenAPI schemas as JSON Schema, checked with ajv) and
# @kubernetes-models/prometheus-operator (PodMonitor). Idempotent.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$root/.build/tools/k8s-validate"
models="kubernetes-models@${OTUN_K8S_MODELS_VERSION:-5.1.0}"
prometheus="@kubernetes-models/prometheus-operator@${OTUN_K8S_PROMETHEUS_MODELS_VERSION:-6.0.0}"
mkdir -p "$dir"
cp "$root/scripts/k8s-validate/validate.mjs" "$dir/validate.mjs"
if [ ! -f "$dir/node_modules/kubernetes-models/package.json" ] || [ ! -f "$dir/node_modules/@kubernetes-models/prometheus-operator/package.json" ]; then
  echo "install-k8s-schemas.sh: npm install $models $prometheus" >&2
  (cd "$dir" && { [ -f package.json ] || echo '{"name":"otun-k8s-validate","private":true,"type":"module"}' > package.json; } \
    && npm install --silent --no-audit --no-fund "$models" "$prometheus" >&2)
fi
echo "$dir"
