using System.Net;
using System.Text.Json;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;

namespace OrleansTunnel.Tests.Resilience;

/// <summary>
/// Per-route Resilience settings over the gateway's defaults (3 failures, 3 s cool-down, retries on):
/// nort.test turns retries off in configuration; low.test gets CircuitFailures 1 and a 60 s cool-down
/// through `otun admin route set --resilience`. Both services are served by res-a (backend refuses) and
/// res-b (backend works), so a request sent to res-a fails on its path.
/// </summary>
public sealed partial class ResilienceTests
{
    [Fact]
    public async Task RouteWithRetryOff_IsNotRetried_TheVisitorSeesTheRefusal()
    {
        long retriesBefore = Circuits.RetriesTotal;
        (HttpStatusCode Status, string Body)? failed = null;
        int ok = 0;
        // GETs would be retried under the gateway's default; on this route the one sent to res-a fails.
        for (int i = 0; i < 40 && failed is null; i++)
        {
            var (status, text, _) = await SendAsync(HttpMethod.Get, "nort.test", $"/nort/{i}");
            if (status == HttpStatusCode.OK)
            {
                Assert.Equal(ResilienceBackend.Expected("GET", $"/nort/{i}", []), text);
                ok++;
                continue;
            }
            failed = (status, text);
        }
        Assert.True(failed is not null, $"all {ok} GETs succeeded: none was sent to res-a's refusing backend, the test proved nothing");
        Assert.Equal(HttpStatusCode.BadGateway, failed.Value.Status);
        Assert.Contains("the backend refused or reset the connection", failed.Value.Body);
        Assert.Equal(retriesBefore, Circuits.RetriesTotal);
    }

    [Fact]
    public async Task RouteWithLowerCircuitThreshold_OpensAfterOneFailure_WithItsOwnCooldown()
    {
        var bad = await OtunCli.RunAsync("admin", "--url", H.Admin.ToString(), "--token", H.AdminToken, "route", "set", "low.test", "low",
            "--resilience", "{\"circuitFailures\":-1}");
        Assert.NotEqual(0, bad.Exit);
        Assert.Contains("Resilience:CircuitFailures -1 must be between 0 (off) and 10000", bad.Err);

        var set = await OtunCli.RunAsync("admin", "--url", H.Admin.ToString(), "--token", H.AdminToken, "route", "set", "low.test", "low",
            "--resilience", "{\"circuitFailures\":1,\"circuitCooldown\":\"60s\"}");
        Assert.True(set.Exit == 0, set.Err);
        var cache = (Gateway.Routing.RoutingCache)H.Gateway.Services.GetService(typeof(Gateway.Routing.RoutingCache))!;
        await Eventually.TrueAsync(() => cache.Current.Snapshot.Routes.Any(r => r.Host == "low.test" && r.Resilience?.CircuitFailures == 1),
            Wait, "the route with its resilience settings never reached the gateway");

        long retriesBefore = Circuits.RetriesTotal;
        for (int i = 0; i < 40 && Circuits.RetriesTotal == retriesBefore; i++)
        {
            var (status, text, _) = await SendAsync(HttpMethod.Get, "low.test", $"/low/{i}");
            Assert.True(status == HttpStatusCode.OK, $"request {i} answered {(int)status}: {text}");
        }
        Assert.True(Circuits.RetriesTotal > retriesBefore, "no GET was sent to res-a's refusing backend: the test proved nothing");
        // One failure (the gateway's default needs three) opened res-a's circuit, for the route's 60 s (default 3 s).
        var open = Assert.Single(Circuits.OpenFor("low"));
        Assert.Equal("res-a", open.AgentId);
        Assert.Equal("open", open.State);
        Assert.Equal(1, open.ConsecutiveFailures);
        Assert.True(open.OpenUntil > DateTimeOffset.UtcNow.AddSeconds(30), $"the circuit is open until {open.OpenUntil:O}: the route's 60 s cool-down was not used");

        var routes = await AdminJsonAsync("/api/routes");
        var route = routes.EnumerateArray().Single(r => r.GetProperty("host").GetString() == "low.test");
        Assert.Equal(60_000, route.GetProperty("resilience").GetProperty("circuitCooldownMs").GetInt64());
        Assert.Equal(JsonValueKind.Null, route.GetProperty("resilience").GetProperty("retry").ValueKind);
    }
}
