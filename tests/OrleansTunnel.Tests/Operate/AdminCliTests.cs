using System.Diagnostics;
using System.Net;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;

namespace OrleansTunnel.Tests.Operate;

/// <summary>`otun admin ...` as a user runs it, against a real gateway's admin port.</summary>
public sealed class AdminCliTests
{
    private static Task<(int Exit, string Out, string Err)> OtunAsync(params string[] args) => OtunCli.RunAsync(args);

    [Fact]
    public async Task RouteSet_WithRewriteAndRateLimit_IsEnforced_AndBadJsonIsNamed()
    {
        await using var h = await TunnelHarness.StartAsync();
        string url = h.Admin.ToString(), token = h.AdminToken;
        var set = await OtunAsync("admin", "--url", url, "--token", token, "route", "set", "cli-policy.test", "backend",
            "--rewrite", "{\"requestHeaders\":{\"set\":{\"X-Cli-Rewrite\":\"{request_id}\"}}}",
            "--rate-limit", "{\"requests\":1,\"per\":\"1m\",\"key\":\"route\"}");
        Assert.True(set.Exit == 0, set.Err);
        await Eventually.TrueAsync(() => h.Gateway.Services.GetService(typeof(OrleansTunnel.Gateway.Routing.RoutingCache)) is OrleansTunnel.Gateway.Routing.RoutingCache c
            && c.Current.Snapshot.Routes.Any(r => r.Host == "cli-policy.test" && r.RateLimit is not null), TimeSpan.FromSeconds(30), "the route reached the gateway");

        using var first = new HttpRequestMessage(HttpMethod.Get, h.Url("/echo"));
        first.Headers.Host = "cli-policy.test";
        using (var served = await h.Client.SendAsync(first))
        {
            Assert.Equal(HttpStatusCode.OK, served.StatusCode);
            string id = served.Headers.GetValues("X-Tunnel-Request-Id").Single();
            Assert.Contains($"[\"X-Cli-Rewrite\",\"{id}\"]", await served.Content.ReadAsStringAsync());
        }
        using var second = new HttpRequestMessage(HttpMethod.Get, h.Url("/echo"));
        second.Headers.Host = "cli-policy.test";
        using (var limited = await h.Client.SendAsync(second))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, limited.StatusCode);
            Assert.NotNull(limited.Headers.RetryAfter);
        }

        var bad = await OtunAsync("admin", "--url", url, "--token", token, "route", "set", "cli-policy.test", "backend", "--rate-limit", "{requests:");
        Assert.NotEqual(0, bad.Exit);
        Assert.Contains("--rate-limit is not valid JSON", bad.Err);
    }

    [Fact]
    public async Task RequestShowReplayAndCancel_ThroughTheCommandLine()
    {
        await using var h = await TunnelHarness.StartAsync();
        string url = h.Admin.ToString(), token = h.AdminToken;
        using var first = await h.Client.GetAsync(h.Url("/hello?cli=1"));
        string id = first.Headers.GetValues("X-Tunnel-Request-Id").Single();

        var show = await OtunAsync("admin", "--url", url, "--token", token, "request", id);
        Assert.True(show.Exit == 0, show.Err);
        Assert.Contains("\"state\": \"completed\"", show.Out);
        Assert.Contains("\"target\": \"/hello?cli=1\"", show.Out);
        var inspect = await OtunAsync("inspect", "--url", url, "--token", token, "show", id);
        Assert.True(inspect.Exit == 0, inspect.Err);
        Assert.Contains(id, inspect.Out);
        var replay = await OtunAsync("inspect", "--url", url, "--token", token, "replay", id);
        Assert.True(replay.Exit == 0, replay.Err);
        Assert.Contains($"\"replayOf\": \"{id}\"", replay.Out);

        // Cancel a hanging request by id: the visitor gets 503 naming the cancel.
        string hang = Guid.NewGuid().ToString("N");
        var call = h.Client.GetAsync(h.Url($"/hang?id={hang}"));
        await h.Backend.StartedSignal(hang).Task.Within(TimeSpan.FromSeconds(10));
        using var admin = new HttpClient { BaseAddress = h.Admin };
        admin.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
        string list = await admin.GetStringAsync("api/requests?live=true&path=/hang");
        string hangId = System.Text.Json.JsonDocument.Parse(list).RootElement.GetProperty("items")[0].GetProperty("requestId").GetString()!;
        var cancel = await OtunAsync("admin", "--url", url, "--token", token, "cancel", hangId, "from", "the", "cli");
        Assert.True(cancel.Exit == 0, cancel.Err);
        using var cancelled = await call.Within(TimeSpan.FromSeconds(10));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, cancelled.StatusCode);
        Assert.Contains("cancelled by an operator: from the cli", await cancelled.Content.ReadAsStringAsync());
        var unknown = await OtunAsync("admin", "--url", url, "--token", token, "request", "gw-test.1.1");
        Assert.Equal(1, unknown.Exit);
        Assert.Contains("not known", unknown.Err);
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
