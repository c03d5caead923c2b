using System.Net;
using Microsoft.Extensions.DependencyInjection;
using OrleansTunnel.Agent;
using OrleansTunnel.Cli;
using OrleansTunnel.Gateway.Auth;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;

namespace OrleansTunnel.Tests.Cluster;

/// <summary>
/// The gateway that holds the agent's only tunnel dies while a request from another gateway crosses
/// through it: that request fails at once with a status and a message (nothing hangs), and the agent,
/// which learned the other gateway from the cluster, reconnects there and serves again.
/// </summary>
public sealed class HolderGatewayLossTests
{
    [Fact]
    public async Task WhenTheGatewayHoldingTheAgentDies_ACrossingRequestFailsCleanly_AndTheAgentMovesToTheOther()
    {
        await using var h = await TunnelHarness.StartAsync();
        var b = await h.StartPeerGatewayAsync("gw-b", new()
        {
            ["Gateway:Agents:1:Id"] = TunnelHarness.OtherAgentId,
            ["Gateway:Agents:1:TokenSha256"] = AgentCredentialStore.Hash(h.OtherAgentToken),
            ["Gateway:Agents:1:Services:0"] = "other",
        });
        // An agent that knows only gw-b and keeps one tunnel.
        using var agent = Roles.BuildAgent(new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase)
        {
            ["Agent:AgentId"] = TunnelHarness.OtherAgentId,
            ["Agent:Token"] = h.OtherAgentToken,
            ["Agent:Gateways:0"] = b.TunnelUrl,
            ["Agent:Connections"] = "1",
            ["Agent:Services:0:Name"] = "other",
            ["Agent:Services:0:Url"] = h.Backend.Url,
            ["Agent:ReconnectMinDelay"] = "00:00:00.100",
            ["Agent:ReconnectMaxDelay"] = "00:00:01",
            ["Logging:LogLevel:Default"] = "Warning",
        });
        await agent.StartAsync();
        var status = agent.Services.GetRequiredService<AgentStatus>();
        var routingAtA = h.Gateway.Services.GetRequiredService<Gateway.Routing.RoutingCache>();
        await Eventually.TrueAsync(() => routingAtA.Current.Snapshot.Endpoints.GetValueOrDefault("other", []).Any(e => e.GatewayId == "gw-b"),
            TimeSpan.FromSeconds(30), "gw-test never learned that gw-b serves 'other'");

        // A request enters gw-test, crosses to gw-b and waits at the backend.
        string id = Guid.NewGuid().ToString("N");
        var started = h.Backend.StartedSignal(id);
        using var hanging = new HttpRequestMessage(HttpMethod.Get, h.Url($"/hang?id={id}"));
        hanging.Headers.Host = "other.test";
        var call = h.Client.SendAsync(hanging);
        await started.Task.Within(TimeSpan.FromSeconds(10));

        // gw-b dies (no grace period).
        await b.App.StopAsync(new CancellationToken(canceled: true));
        await b.App.DisposeAsync();

        using var failed = await call.Within(TimeSpan.FromSeconds(10));
        Assert.Equal(HttpStatusCode.BadGateway, failed.StatusCode);
        Assert.Contains("the agent was lost before it answered", await failed.Content.ReadAsStringAsync());
        await h.Backend.AbortedSignal(id).Task.Within(TimeSpan.FromSeconds(10));

        // The agent learned gw-test from gw-b's welcome and reconnects there; 'other' is served again.
        await Eventually.TrueAsync(() => status.Tunnels.Any(t => t.GatewayId == "gw-test"), TimeSpan.FromSeconds(30), "the agent never reconnected to gw-test");
        using var again = new HttpRequestMessage(HttpMethod.Get, h.Url("/hello"));
        again.Headers.Host = "other.test";
        using var served = await h.Client.SendAsync(again);
        Assert.Equal("hello", await served.Content.ReadAsStringAsync());
        await agent.StopAsync();
    }
}
