#!/usr/bin/env bash
# Builds the three role images from the repository root and pushes them:
#   docker/build.sh REGISTRY TAG        e.g. docker/build.sh ghcr.io/acme 0.2.0
# makes REGISTRY/orleans-tunnel-{silo,gateway,agent}:TAG, the names the Helm chart uses with
# --set image.registry=REGISTRY,image.tag=TAG. Set PUSH=0 to build only; DOCKER=podman to use podman.
# Prints each pushed image's digest (for silo.image.digest etc.).
set -euo pipefail
if [ $# -ne 2 ] || [ -z "$1" ] || [ -z "$2" ]; then
  echo "usage: docker/build.sh REGISTRY TAG   (e.g. docker/build.sh ghcr.io/acme 0.2.0)" >&2
  exit 2
fi
registry="${1%/}"
tag="$2"
docker="${DOCKER:-docker}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if [ -d .data ] && ! grep -qx '.data' .dockerignore; then
  echo "docker/build.sh: .dockerignore must exclude .data/ (dev keys and tokens)" >&2
  exit 1
fi
for role in silo gateway agent; do
  image="$registry/orleans-tunnel-$role:$tag"
  echo "docker/build.sh: building $image" >&2
  "$docker" build -f "docker/$role.Dockerfile" -t "$image" .
  if [ "${PUSH:-1}" != "0" ]; then
    "$docker" push "$image"
    digest="$("$docker" image inspect --format '{{index .RepoDigests 0}}' "$image" 2>/dev/null || true)"
    echo "$role: ${digest:-$image}"
  fi
done
