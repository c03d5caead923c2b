#!/usr/bin/env bash
# Self-check of ./test.sh's summary: builds a throwaway test project (in a temp folder, never part of
# the suite) whose second test kills its test host with an unhandled exception on a thread-pool
# thread, runs ./test.sh on it, and checks that the run is reported as a crash and a failure.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tmp="$(mktemp -d /tmp/otun-crash-XXXXXX)"
trap '[ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT
cat >"$tmp/Crash.csproj" <<'XML'
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup>
    <TargetFramework>net10.0</TargetFramework>
    <IsPackable>false</IsPackable>
    <IsTestProject>true</IsTestProject>
    <ManagePackageVersionsCentrally>false</ManagePackageVersionsCentrally>
  </PropertyGroup>
  <ItemGroup>
    <PackageReference Include="Microsoft.NET.Test.Sdk" Version="18.0.1" />
    <PackageReference Include="xunit" Version="2.9.3" />
    <PackageReference Include="xunit.runner.visualstudio" Version="3.1.5" PrivateAssets="all" />
  </ItemGroup>
</Project>
XML
cat >"$tmp/CrashTests.cs" <<'CS'
using System;
using System.Threading;
using Xunit;

public sealed class CrashTests
{
    [Fact]
    public void A_Passes() { }

    [Fact]
    public void B_KillsTheHost()
    {
        ThreadPool.QueueUserWorkItem(_ => throw new ObjectDisposedException("OutsideRuntimeClient"));
        Thread.Sleep(TimeSpan.FromSeconds(30));
    }
}
CS
echo '{ "parallelizeTestCollections": false }' >"$tmp/xunit.runner.json"
if ! dotnet build "$tmp/Crash.csproj" -c Release --nologo -v q -clp:ErrorsOnly >"$tmp/build.log" 2>&1; then
  cat "$tmp/build.log"
  echo "test-sh-selfcheck: could not build the crashing project"
  exit 2
fi
out=$(OTUN_TEST_PROJECT="$tmp/Crash.csproj" "$root/test.sh" 2>&1)
status=$?
tail_lines=$(tail -n 2 <<<"$out")
echo "$tail_lines"
summary=$(tail -n 1 <<<"$out")
reason=$(tail -n 2 <<<"$out" | head -n 1)
if [ "$status" -ne 0 ] && [[ "$reason" == "test.sh: the test host crashed: "* ]] \
  && [[ "$summary" =~ ^[0-9]+\ passed,\ [1-9][0-9]*\ failed(,\ [0-9]+\ skipped)?$ ]]; then
  echo "test-sh-selfcheck: ok (exit $status)"
  exit 0
fi
echo "test-sh-selfcheck: FAILED: test.sh did not report the crash (exit $status)"
exit 1
