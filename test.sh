#!/usr/bin/env bash
# Runs the whole OrleansTunnel test suite. Installs what the tests need when it is missing, builds
# in Release, runs every test and ends with a plain summary line: "N passed, N failed".
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$root"

# Debian packages the tests (and benchmarks) use; installed only when absent.
missing=()
for tool in redis-server:redis-server nginx:nginx-light unzip:unzip npm:npm chromium:chromium; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool##*:}")
done
# The chart tests parse rendered manifests with python3's yaml module; the HTTP/2 attack tests use
# Debian's python3-h2 through /usr/bin/python3.
python3 -c 'import yaml' >/dev/null 2>&1 || /usr/bin/python3 -c 'import yaml' >/dev/null 2>&1 || missing+=(python3-yaml)
/usr/bin/python3 -c 'import h2' >/dev/null 2>&1 || missing+=(python3-h2)
# The chart's render-and-run test puts its Services on nginx stream proxies (a dynamic module on Debian).
command -v nginx >/dev/null 2>&1 || missing+=(nginx-light)
[ -f /usr/lib/nginx/modules/ngx_stream_module.so ] || missing+=(libnginx-mod-stream)
# TCP and UDP services (tests/L4, bench/tcp.sh): sshd, dig, dnsmasq, redis-cli, iperf3, socat.
for tool in /usr/sbin/sshd:openssh-server dig:bind9-dnsutils /usr/sbin/dnsmasq:dnsmasq-base redis-cli:redis-tools iperf3:iperf3 socat:socat; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool##*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "test.sh: installing ${missing[*]}"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") >/tmp/otun-apt.log 2>&1 \
    || { echo "test.sh: apt-get install ${missing[*]} failed (see /tmp/otun-apt.log)"; }
fi

results="$root/.build/test-results"
rm -rf "$results"
mkdir -p "$results"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

# OTUN_TEST_PROJECT runs another (already built) test project through the same summary logic: the
# self-check (scripts/test-sh-selfcheck.sh) uses it to prove that a crashing test host is a failure.
project="${OTUN_TEST_PROJECT:-tests/OrleansTunnel.Tests/OrleansTunnel.Tests.csproj}"
if [ -z "${OTUN_TEST_PROJECT:-}" ] && ! dotnet build OrleansTunnel.sln -c Release --nologo -v q -clp:ErrorsOnly; then
  echo "test.sh: build failed"
  echo "0 passed, 1 failed"
  exit 1
fi

console="$results/console.log"
dotnet test "$project" -c Release --no-build --nologo \
  --logger "trx;LogFileName=results.trx" --logger "console;verbosity=normal" --results-directory "$results" \
  --blame-hang --blame-hang-timeout 10m "$@" 2>&1 | tee "$console"
status=${PIPESTATUS[0]}

# An aborted run (the test host crashed or hung) still writes a TRX with the tests that finished:
# find the abort in the output, the TRX and the blame files, and count it as a failure.
trx="$results/results.trx"
abort=""
if grep -q "Test host process crashed\|The active test run was aborted\|test host process exited unexpectedly" "$console"; then
  abort=$(grep -m 1 -o "Test host process crashed.*\|test host process exited unexpectedly.*\|The active test run was aborted.*" "$console" | cut -c 1-300)
  # The exception's object name (a disposed object) is on the next line of the output.
  detail=$(grep -m 1 -A 1 -F "$abort" "$console" | sed -n '2s/^\(Object name: .*\)/\1/p')
  [ -n "$detail" ] && abort="$abort $detail"
elif [ -f "$trx" ] && grep -A 2 '<RunInfo [^>]*outcome="Error"' "$trx" | grep -qiE 'crash|aborted|exited unexpectedly|unhandled exception'; then
  # vstest also files an ordinary failing test's "[FAIL]" line as an Error RunInfo: only a crash counts here.
  abort="the run reported an error: $(grep -A 2 '<RunInfo [^>]*outcome="Error"' "$trx" | grep -iE 'crash|aborted|exited unexpectedly|unhandled exception' | sed -n 's/.*<Text>\(.*\)/\1/p; t; s/^[[:space:]]*//p' | head -n 1 | cut -c 1-300)"
elif [ -f "$trx" ] && grep -q '<ResultSummary outcome="Aborted"' "$trx"; then
  abort="the test run was aborted (TRX outcome Aborted)"
fi
# The tests that were running when the host died (from the output or blame's sequence file): they have no result.
running=$(sed -n '/The test running when the crash occurred/,/^$/p; /tests running when the crash occurred/,/^$/p' "$console" \
  | grep -v "when the crash occurred" | sed 's/^[[:space:]]*//' | grep -v '^$' | sort -u)

if [ -f "$trx" ]; then
  counters=$(grep -o '<Counters [^>]*>' "$trx" | head -n 1)
  passed=$(sed -n 's/.* passed="\([0-9]*\)".*/\1/p' <<<"$counters")
  failed=$(sed -n 's/.* failed="\([0-9]*\)".*/\1/p' <<<"$counters")
  total=$(sed -n 's/.* total="\([0-9]*\)".*/\1/p' <<<"$counters")
  executed=$(sed -n 's/.* executed="\([0-9]*\)".*/\1/p' <<<"$counters")
  skipped=$(( ${total:-0} - ${executed:-0} ))
  failed=${failed:-0}
  # Failed test names, so a red run says what to look at.
  grep -o '<UnitTestResult [^>]*outcome="Failed"[^>]*>' "$trx" | sed -n 's/.*testName="\([^"]*\)".*/test.sh: failed: \1/p'
else
  passed=0 failed=0 skipped=0 executed=0
fi
if [ -n "$abort" ]; then
  # The abort is one failure; each test that was running when it happened (and got no result) is another.
  n_running=0
  if [ -n "$running" ]; then
    while IFS= read -r name; do
      echo "test.sh: failed: $name (running when the test host died)"
      n_running=$((n_running + 1))
    done <<<"$running"
  fi
  failed=$(( failed + (n_running > 0 ? n_running : 1) ))
  echo "test.sh: the test host crashed: $abort"
  echo "${passed:-0} passed, ${failed} failed, ${skipped} skipped"
  [ "$status" -eq 0 ] && status=1
  exit "$status"
fi
if [ -f "$trx" ]; then
  echo "${passed:-0} passed, ${failed} failed, ${skipped} skipped"
  if [ "${executed:-0}" -eq 0 ]; then
    echo "test.sh: no test ran"
    exit 1
  fi
else
  echo "test.sh: no test results were written"
  echo "0 passed, 1 failed"
  [ "$status" -eq 0 ] && status=1
fi
exit "$status"
