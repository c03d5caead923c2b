using System.Net;
using Microsoft.Extensions.DependencyInjection;
using OrleansTunnel.Grains;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;

namespace OrleansTunnel.Tests.EndToEnd;

public sealed class ReconnectTests
{
    [Fact]
    public async Task AgentReconnects_AfterTheGatewayRestarts_AndTrafficResumes()
    {
        await using var h = await TunnelHarness.StartAsync();
        using (var before = await h.Client.GetAsync(h.Url("/hello")))
        {
            Assert.Equal("hello", await before.Content.ReadAsStringAsync());
        }
        long connects = h.AgentStatus.Connects;

        await h.StopGatewayAsync();
        await h.StartGatewayAsync();
        await Eventually.TrueAsync(() => h.AgentStatus.Connects > connects, TimeSpan.FromSeconds(30), "the agent did not reconnect");
        await h.WaitForRoutableAsync();

        using var client = TunnelHarness.NewClient();
        using var after = await client.GetAsync(h.Url("/hello"));
        Assert.Equal(HttpStatusCode.OK, after.StatusCode);
        Assert.Equal("hello", await after.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Grains_RecordTheAgentSession_AndEachRequest()
    {
        await using var h = await TunnelHarness.StartAsync();
        using var response = await h.Client.GetAsync(h.Url("/hello"));
        string requestId = response.Headers.GetValues("X-Tunnel-Request-Id").Single();
        var grains = h.Gateway.Services.GetRequiredService<IGrainFactory>();

        var agent = await grains.GetGrain<IAgentGrain>(TunnelHarness.AgentId).GetSnapshot();
        var session = Assert.Single(agent.Sessions);
        Assert.Equal("gw-test", session.GatewayId);
        Assert.Contains("backend", agent.Services);

        // The request grain is completed after the visitor has the answer: wait for that signal.
        RequestSnapshot? snapshot = null;
        await Eventually.TrueAsync(() =>
        {
            snapshot = grains.GetGrain<IRequestGrain>(requestId).GetSnapshot().GetAwaiter().GetResult();
            return snapshot.State == RequestState.Completed;
        }, TimeSpan.FromSeconds(10), "the request grain was never completed");
        Assert.Equal(200, snapshot!.Outcome!.Status);
        Assert.Equal("backend", snapshot.Open!.Service);
        Assert.Equal(TunnelHarness.AgentId, snapshot.Open.AgentId);
    }
}
