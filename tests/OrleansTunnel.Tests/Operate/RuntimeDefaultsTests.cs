using System.Diagnostics;
using OrleansTunnel.Cli;
using Xunit;

namespace OrleansTunnel.Tests.Operate;

/// <summary>
/// The process settings only the environment can give (cli/RuntimeDefaults.cs): applied unless the
/// operator set them, and the GC cap reaching the runtime under the name it reads.
/// </summary>
public sealed class RuntimeDefaultsTests
{
    [Fact]
    public void Apply_SetsEachDefault_UnlessTheOperatorSetIt()
    {
        var target = new Dictionary<string, string?> { ["MALLOC_ARENA_MAX"] = "4" };
        RuntimeDefaults.Apply(target, name => name == RuntimeDefaults.Gen0MaxBudgetVariable ? "0x4000000" : null);

        Assert.Equal("4", target["MALLOC_ARENA_MAX"]);
        Assert.False(target.ContainsKey(RuntimeDefaults.Gen0MaxBudgetVariable));

        var empty = new Dictionary<string, string?>();
        RuntimeDefaults.Apply(empty, _ => null);
        Assert.Equal("2", empty["MALLOC_ARENA_MAX"]);
        Assert.Equal("0x2000000", empty[RuntimeDefaults.Gen0MaxBudgetVariable]);
    }

    [Fact]
    public void DescribeGc_NamesTheModeAndBudget_AndWarnsOnlyAboveTheThreshold()
    {
        var capped = new Dictionary<string, object> { ["ServerGC"] = false, ["ConcurrentGC"] = true, ["GCGen0MaxBudget"] = 33554432L };
        Assert.Equal("gc workstation concurrent, gen0 budget <= 32 MiB", RuntimeDefaults.DescribeGc(capped));
        Assert.Null(RuntimeDefaults.Gen0Warning(capped));

        var derived = new Dictionary<string, object> { ["ServerGC"] = true, ["ConcurrentGC"] = false, ["GCGen0MaxBudget"] = 83886080L };
        Assert.Equal("gc server, gen0 budget <= 80 MiB", RuntimeDefaults.DescribeGc(derived));
        string warning = RuntimeDefaults.Gen0Warning(derived)!;
        Assert.Contains("gen0 budget is 80 MiB", warning, StringComparison.Ordinal);
        Assert.Contains("DOTNET_GCGen0MaxBudget=0x2000000", warning, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("0x2000000", "gen0 budget <= 32 MiB", false)]
    [InlineData("0x6000000", "gen0 budget <= 96 MiB", true)]
    public async Task Version_ReportsTheGen0Budget_TheRuntimeTookFromTheEnvironment(string value, string expected, bool warns)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "otun.dll"));
        start.ArgumentList.Add("version");
        start.Environment[RuntimeDefaults.Gen0MaxBudgetVariable] = value;
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));

        Assert.True(process.ExitCode == 0, $"otun version exited {process.ExitCode}: {await stderr}");
        string runtime = (await stdout).Split('\n').Single(l => l.StartsWith("otun runtime: ", StringComparison.Ordinal));
        Assert.EndsWith(expected, runtime.TrimEnd(), StringComparison.Ordinal);
        Assert.Equal(warns, (await stderr).Contains($"Set {RuntimeDefaults.Gen0MaxBudgetVariable}=0x2000000", StringComparison.Ordinal));
    }
}
