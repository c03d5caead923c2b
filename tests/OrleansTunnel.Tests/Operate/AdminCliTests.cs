using System.Diagnostics;
using System.Net;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;

namespace OrleansTunnel.Tests.Operate;

/// <summary>`otun admin ...` as a user runs it, against a real gateway's admin port.</summary>
public sealed class AdminCliTests
{
    private static async Task<(int Exit, string Out, string Err)> OtunAsync(params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "otun.dll"));
        foreach (var a in args)
        {
            start.ArgumentList.Add(a);
        }
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().Within(TimeSpan.FromSeconds(60));
        return (process.ExitCode, await stdout, await stderr);
    }

    [Fact]
    public async Task RouteSet_List_AndRemove_ThroughTheCommandLine()
    {
        await using var h = await TunnelHarness.StartAsync();
        string url = h.Admin.ToString(), token = h.AdminToken;

        var set = await OtunAsync("admin", "--url", url, "--token", token, "route", "set", "cli.test/api", "backend");
        Assert.True(set.Exit == 0, set.Err);
        var list = await OtunAsync("admin", "--url", url, "--token", token, "routes");
        Assert.Equal(0, list.Exit);
        Assert.Contains("\"host\": \"cli.test\"", list.Out);
        Assert.Contains("\"pathPrefix\": \"/api\"", list.Out);

        // The backend has no /api/x, so a routed request gets the backend's own 404 (empty body), not the gateway's.
        await Eventually.TrueAsync(() =>
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, h.Url("/api/x"));
            request.Headers.Host = "cli.test";
            using var response = h.Client.Send(request);
            return !response.Content.ReadAsStringAsync().GetAwaiter().GetResult().StartsWith("otun: no route", StringComparison.Ordinal);
        }, TimeSpan.FromSeconds(5), "the route set by the CLI was not served");

        var rm = await OtunAsync("admin", "--url", url, "--token", token, "route", "rm", "cli.test/api");
        Assert.True(rm.Exit == 0, rm.Err);
        var wrong = await OtunAsync("admin", "--url", url, "--token", "wrong", "routes");
        Assert.Equal(1, wrong.Exit);
        Assert.Equal("otun admin: invalid admin token\n", wrong.Err);
    }
}
