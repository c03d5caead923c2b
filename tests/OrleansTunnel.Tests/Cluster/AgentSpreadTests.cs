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

    [Fact]
    public async Task WhenOneGatewayDies_TheAgentKeepsBothConnections_OnTheGatewayThatIsLeft()
    {
        await using var h = await TunnelHarness.StartAsync(o => o.Agent["Agent:Connections"] = "2");
        var b = await h.StartPeerGatewayAsync("gw-b");
        var status = h.Agent.Services.GetRequiredService<AgentStatus>();
        await Eventually.TrueAsync(() => status.Tunnels.Select(t => t.GatewayId).Distinct().Count() == 2,
            TimeSpan.FromSeconds(30), "the agent never spread its connections over both gateways");

        await b.App.StopAsync(TimeSpan.FromMilliseconds(1).ToCancellationToken());
        await b.App.DisposeAsync();
        // The slot that lost gw-b does not keep dialling the dead gateway: it joins the other slot on gw-test.
        await Eventually.TrueAsync(() => status.Tunnels.Count == 2 && status.Tunnels.All(t => t.GatewayId == "gw-test"),
            TimeSpan.FromSeconds(30), "the agent did not bring its second connection back on the gateway that is left: "
                + string.Join(", ", status.Tunnels.Select(t => t.GatewayId)));
        using var response = await h.Client.GetAsync(h.Url("/hello"));
        Assert.Equal("hello", await response.Content.ReadAsStringAsync());
    }
}
