using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using OrleansTunnel.Gateway.Tunnel;
using OrleansTunnel.Tests.Infrastructure;
using OrleansTunnel.Tests.Security;
using Xunit;
using Xunit.Abstractions;

namespace OrleansTunnel.Tests.Cluster;

/// <summary>An agent that stops answering heartbeats leaves the rotation, at its gateway and at the others.</summary>
public sealed class HealthRotationTests(ITestOutputHelper output)
{
    [Fact]
    public async Task AnAgentThatMissesThreeHeartbeats_LeavesTheRotationOfEveryGateway()
    {
        var interval = TimeSpan.FromSeconds(1);
        await using var h = await TunnelHarness.StartAsync(o => o.Gateway["Gateway:HeartbeatInterval"] = "00:00:01");
        await using var b = await h.StartPeerGatewayAsync("gw-b");
        var registry = h.Gateway.Services.GetRequiredService<ConnectionRegistry>();
        var elsewhere = b.Service<Gateway.Routing.RoutingCache>();

        // The hand-written agent answers nothing after its welcome: no pong, no frame.
        await using var silent = await FakeAgent.ConnectAsync(h, "other");
        var since = Stopwatch.StartNew();
        await Eventually.TrueAsync(() => elsewhere.Current.Snapshot.Endpoints.ContainsKey("other"), TimeSpan.FromSeconds(10), "gw-b never saw the agent");

        await Eventually.TrueAsync(() => registry.Choose("other") is null, TimeSpan.FromSeconds(10), "the silent agent stayed in gw-test's rotation");
        var leftLocal = since.Elapsed;
        await Eventually.TrueAsync(() => !elsewhere.Current.Snapshot.Endpoints.ContainsKey("other"), TimeSpan.FromSeconds(10), "the silent agent stayed in gw-b's routing");
        var leftRemote = since.Elapsed;
        output.WriteLine($"left gw-test's rotation after {leftLocal.TotalSeconds:0.00} s, gw-b's after {leftRemote.TotalSeconds:0.00} s (heartbeat {interval.TotalSeconds} s)");
        // Pings go out each interval; the third one missed (three intervals after the first) closes it.
        Assert.True(leftLocal <= interval * 4 + TimeSpan.FromSeconds(1), $"took {leftLocal.TotalSeconds:0.00} s");
        Assert.True(leftRemote - leftLocal <= TimeSpan.FromSeconds(1), $"gw-b learned {(leftRemote - leftLocal).TotalSeconds:0.00} s later");

        using var request = new HttpRequestMessage(HttpMethod.Get, b.Url("/"));
        request.Headers.Host = "other.test";
        using var response = await h.Client.SendAsync(request);
        Assert.Equal(System.Net.HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Contains("no agent is connected for service 'other'", await response.Content.ReadAsStringAsync());
    }
}
