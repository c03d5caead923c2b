#!/usr/bin/env bash
# Runs the whole OrleansTunnel test suite. Installs what the tests need when it is missing, builds
# in Release, runs every test and ends with a plain summary line: "N passed, N failed".
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$root"

# Debian packages the tests (and benchmarks) use; installed only when absent.
missing=()
for tool in redis-server:redis-server unzip:unzip npm:npm chromium:chromium; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool##*:}")
done
# The chart tests parse rendered manifests with python3's yaml module; the HTTP/2 attack tests use
# Debian's python3-h2 through /usr/bin/python3.
python3 -c 'import yaml' >/dev/null 2>&1 || /usr/bin/python3 -c 'import yaml' >/dev/null 2>&1 || missing+=(python3-yaml)
/usr/bin/python3 -c 'import h2' >/dev/null 2>&1 || missing+=(python3-h2)
if [ ${#missing[@]} -gt 0 ]; then
  echo "test.sh: installing ${missing[*]}"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") >/tmp/otun-apt.log 2>&1 \
    || { echo "test.sh: apt-get install ${missing[*]} failed (see /tmp/otun-apt.log)"; }
fi

results="$root/.build/test-results"
rm -rf "$results"
mkdir -p "$results"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

if ! dotnet build OrleansTunnel.sln -c Release --nologo -v q -clp:ErrorsOnly; then
  echo "test.sh: build failed"
  echo "0 passed, 1 failed"
  exit 1
fi

dotnet test tests/OrleansTunnel.Tests/OrleansTunnel.Tests.csproj -c Release --no-build --nologo \
  --logger "trx;LogFileName=results.trx" --logger "console;verbosity=normal" --results-directory "$results" \
  --blame-hang --blame-hang-timeout 10m "$@"
status=$?

trx="$results/results.trx"
if [ -f "$trx" ]; then
  counters=$(grep -o '<Counters [^>]*>' "$trx" | head -n 1)
  passed=$(sed -n 's/.* passed="\([0-9]*\)".*/\1/p' <<<"$counters")
  failed=$(sed -n 's/.* failed="\([0-9]*\)".*/\1/p' <<<"$counters")
  total=$(sed -n 's/.* total="\([0-9]*\)".*/\1/p' <<<"$counters")
  executed=$(sed -n 's/.* executed="\([0-9]*\)".*/\1/p' <<<"$counters")
  skipped=$(( ${total:-0} - ${executed:-0} ))
  echo "${passed:-0} passed, ${failed:-0} failed, ${skipped} skipped"
  if [ "${executed:-0}" -eq 0 ]; then
    echo "test.sh: no test ran"
    exit 1
  fi
else
  echo "0 passed, 1 failed"
  echo "test.sh: no test results were written"
  [ "$status" -eq 0 ] && status=1
fi
exit "$status"
