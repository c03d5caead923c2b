using System.Net;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;

namespace OrleansTunnel.Tests.Telemetry;

/// <summary>Silos and agents serve /metrics on their admin port like gateways (what the chart's PodMonitors scrape).</summary>
public sealed class RoleMetricsTests
{
    [Fact]
    public async Task SiloAndAgent_ServeMetricsOnTheirAdminPort_NotOnTheDashboardPort()
    {
        int agentAdmin = Ports.Free();
        await using var rig = await ClusterRig.StartAsync(new ClusterRigOptions
        {
            SeededHosts = ["metrics.test"],
            AgentArgs = ["--agent-admin", $"http://127.0.0.1:{agentAdmin}"],
        });
        await rig.WaitForStatusAsync(0, "metrics.test", "/hello", HttpStatusCode.OK, TimeSpan.FromSeconds(60));
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };

        string silo = await http.GetStringAsync(new Uri(rig.SiloAdminUrl(0), "/metrics"));
        Assert.Contains("orleans_", silo);
        Assert.Contains("# TYPE", silo);

        // The agent forwarded /hello: its request counter is there.
        string agent = await http.GetStringAsync($"http://127.0.0.1:{agentAdmin}/metrics");
        Assert.Contains("otun_agent_requests", agent);
        Assert.Equal("ok\n", await http.GetStringAsync($"http://127.0.0.1:{agentAdmin}/healthz"));
    }
}
