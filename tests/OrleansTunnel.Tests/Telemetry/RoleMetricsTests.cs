using System.Net;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;

namespace OrleansTunnel.Tests.Telemetry;

/// <summary>
/// Silos and agents serve /metrics on their admin port like gateways (what the chart's PodMonitors scrape),
/// and, like the gateway's admin listener, their admin and dashboard listeners answer only IP literals,
/// localhost and the configured names (DNS rebinding, issue 12 section 7).
/// </summary>
public sealed class RoleMetricsTests
{
    [Fact]
    public async Task SiloAndAgent_ServeMetricsOnTheirAdminPort_AndOperatorListenersRefuseForeignHosts()
    {
        int agentAdmin = Ports.Free(), dashboard = Ports.Free();
        await using var rig = await ClusterRig.StartAsync(new ClusterRigOptions
        {
            SeededHosts = ["metrics.test"],
            SiloArgs = ["--set", $"Cluster:Dashboard=http://127.0.0.1:{dashboard}", "--set", "Cluster:AdminHosts:0=ops.example"],
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

        async Task<(HttpStatusCode, string)> GetAsync(string url, string host)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, url);
            request.Headers.Host = host;
            using var response = await http.SendAsync(request);
            return (response.StatusCode, await response.Content.ReadAsStringAsync());
        }
        var listeners = new[]
        {
            (new Uri(rig.SiloAdminUrl(0), "/metrics").ToString(), "silo admin", "Cluster:AdminHosts", "ops.example"),
            ($"http://127.0.0.1:{dashboard}/dashboard/", "dashboard", "Cluster:AdminHosts", "ops.example"),
            ($"http://127.0.0.1:{agentAdmin}/metrics", "agent admin", "Agent:AdminHosts", "localhost"),
        };
        foreach (var (url, listener, key, configured) in listeners)
        {
            var (status, body) = await GetAsync(url, "attacker.example");
            Assert.Equal(HttpStatusCode.MisdirectedRequest, status);
            Assert.Equal($"otun: Host not allowed on the {listener} listener; add the name to {key}\n", body);
            Assert.Equal(HttpStatusCode.OK, (await GetAsync(url, configured)).Item1);
            Assert.Equal(HttpStatusCode.OK, (await GetAsync(url, "127.0.0.1")).Item1);
        }
    }
}
