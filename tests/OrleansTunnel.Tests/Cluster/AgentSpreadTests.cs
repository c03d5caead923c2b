using Microsoft.Extensions.DependencyInjection;
using OrleansTunnel.Agent;
using OrleansTunnel.Gateway.Cluster;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;

namespace OrleansTunnel.Tests.Cluster;

/// <summary>
/// An agent configured with one gateway and two connections learns the cluster's other gateway from
/// the cluster (config frame) and moves its second connection there; each gateway then serves locally.
/// </summary>
public sealed class AgentSpreadTests
{
    [Fact]
    public async Task AnAgentLearnsTheOtherGateway_AndKeepsItsTwoConnectionsOnDistinctGateways()
    {
        await using var h = await TunnelHarness.StartAsync(o => o.Agent["Agent:Connections"] = "2");
        await using var b = await h.StartPeerGatewayAsync("gw-b");
        var status = h.Agent.Services.GetRequiredService<AgentStatus>();
        await Eventually.TrueAsync(() => status.Tunnels.Select(t => t.GatewayId).Distinct().Count() == 2,
            TimeSpan.FromSeconds(30), "the agent never spread its connections over both gateways");
        Assert.Equal(["gw-b", "gw-test"], status.Tunnels.Select(t => t.GatewayId).Order());
        Assert.Contains(b.TunnelUrl, h.Agent.Services.GetServices<Microsoft.Extensions.Hosting.IHostedService>().OfType<AgentWorker>().Single().Book.Known);

        // With a tunnel of its own, gw-b serves locally: no request crosses to gw-test.
        long crossed = b.Service<Dispatcher>().CrossGateway;
        for (int i = 0; i < 20; i++)
        {
            using var response = await h.Client.GetAsync(b.Url("/hello"));
            Assert.Equal("hello", await response.Content.ReadAsStringAsync());
        }
        Assert.Equal(crossed, b.Service<Dispatcher>().CrossGateway);
    }
}
