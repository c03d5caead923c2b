using Microsoft.Extensions.DependencyInjection;
using OrleansTunnel.Gateway.Cluster;
using OrleansTunnel.Gateway.Routing;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;

namespace OrleansTunnel.Tests.Cluster;

/// <summary>
/// Gateway:AgentAdvertisedTunnel: the URL agents are told about is apart from the one peers dial
/// (the Helm chart gives peers an in-cluster name and agents an external per-gateway address), and
/// "none" tells agents nothing about a gateway they cannot reach.
/// </summary>
public sealed class AgentAdvertisedTunnelTests
{
    [Fact]
    public async Task AgentsLearnTheAgentUrl_PeersStillDialThePeerUrl_AndNoneIsNotAdvertised()
    {
        await using var h = await TunnelHarness.StartAsync();
        const string external = "https://gw-1.tunnel.example.com:443";
        await using var b = await h.StartPeerGatewayAsync("gw-b", new() { ["Gateway:AgentAdvertisedTunnel"] = external + "/" });
        await using var c = await h.StartPeerGatewayAsync("gw-c", new() { ["Gateway:AgentAdvertisedTunnel"] = "none" });
        var presence = h.Gateway.Services.GetRequiredService<ClusterPresence>();
        var routing = h.Gateway.Services.GetRequiredService<RoutingCache>();

        await Eventually.TrueAsync(() => routing.Current.Snapshot.Gateways.Count() == 3 && presence.GatewayUrls.Contains(external),
            TimeSpan.FromSeconds(30), "gw-test never learned gw-b's agent URL: " + string.Join(", ", presence.GatewayUrls));
        // Agents are told gw-test's own URL and gw-b's external one; never gw-b's peer URL nor anything of gw-c.
        Assert.Equal(2, presence.GatewayUrls.Length);
        Assert.DoesNotContain(b.TunnelUrl, presence.GatewayUrls);
        Assert.DoesNotContain(c.TunnelUrl, presence.GatewayUrls);
        var gwB = routing.Current.Snapshot.Gateways.Single(g => g.GatewayId == "gw-b");
        Assert.Equal((b.TunnelUrl, external), (gwB.TunnelUrl, gwB.AgentTunnelUrl));

        // The agent is held by gw-test only: a request entering gw-b and gw-c crosses over the peer link (peer URL).
        foreach (var peer in new[] { b, c })
        {
            // Each peer learns gw-test's session by its own routing push: retry until then (bounded).
            string body = "";
            for (var deadline = DateTime.UtcNow.AddSeconds(30); body != "hello" && DateTime.UtcNow < deadline;)
            {
                using var response = await h.Client.GetAsync(peer.Url("/hello"));
                body = await response.Content.ReadAsStringAsync();
                if (body != "hello")
                {
                    await Task.Delay(200);
                }
            }
            Assert.True(body == "hello", $"a request through {peer.GatewayId} never reached the agent held by gw-test: {body}");
            Assert.True(peer.Service<Dispatcher>().CrossGateway > 0, $"{peer.GatewayId} served without crossing to gw-test");
        }
    }

    [Theory]
    [InlineData("gw-0.example.com")]
    [InlineData("ftp://gw-0.example.com")]
    public void AnAgentUrlThatIsNeitherAUrlNorNone_IsRefusedNamingTheKey(string value)
    {
        var result = new OrleansTunnel.Gateway.GatewayOptionsValidator().Validate(null, new OrleansTunnel.Gateway.GatewayOptions { AgentAdvertisedTunnel = value });

        Assert.True(result.Failed);
        Assert.Contains("Gateway:AgentAdvertisedTunnel", result.FailureMessage);
        Assert.Contains(value, result.FailureMessage);
    }
}
