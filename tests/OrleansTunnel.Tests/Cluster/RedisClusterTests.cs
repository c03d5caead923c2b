using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using OrleansTunnel.Demo;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace OrleansTunnel.Tests.Cluster;

/// <summary>A Redis-backed cluster as separate processes: redis-server, silos, gateways and agents.</summary>
public sealed class RedisClusterTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Served = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task ARouteAddedThroughTheAdminApi_SurvivesRestartingEveryOtunProcess_BecauseItIsKeptInRedis()
    {
        // No route in any process's configuration: the only route is the one added at runtime.
        await using var rig = await ClusterRig.StartAsync(new ClusterRigOptions { Silos = 1, Gateways = 1, Agents = 1 });
        const string host = "durable.test";
        const long size = 300_000;
        string path = $"/download?size={size}";

        using (var before = await rig.GetAsync(0, host, path))
        {
            Assert.Equal(HttpStatusCode.NotFound, before.StatusCode);
        }
        using (var admin = rig.AdminClient(0))
        using (var put = await admin.PutAsJsonAsync("/api/routes", new { host, service = ClusterRig.DefaultService }))
        {
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        }
        await rig.WaitForStatusAsync(0, host, path, HttpStatusCode.OK, Served);
        await AssertDownloadAsync(rig, host, path, size);
        output.WriteLine($"served before the restart (silo pid {rig.Silo(0).Pid}, gateway pid {rig.Gateway(0).Pid}, agent pid {rig.Agent(0).Pid})");

        // Every otun process stops (SIGTERM, a clean exit); redis keeps running with the cluster's state.
        await rig.TerminateAllAsync();
        Assert.Equal(0, rig.Agent(0).ExitCode);
        Assert.Equal(0, rig.Gateway(0).ExitCode);
        Assert.Equal(0, rig.Silo(0).ExitCode);

        // Same redis, same ClusterId and ServiceId, still no route in the configuration.
        await rig.StartAllAsync();
        Assert.DoesNotContain(rig.Gateway(0).Arguments, a => a.Contains(host, StringComparison.OrdinalIgnoreCase));
        output.WriteLine($"restarted (silo pid {rig.Silo(0).Pid}, gateway pid {rig.Gateway(0).Pid}, agent pid {rig.Agent(0).Pid})");

        await rig.WaitForStatusAsync(0, host, path, HttpStatusCode.OK, Served);
        await AssertDownloadAsync(rig, host, path, size);
        using (var admin = rig.AdminClient(0))
        {
            var routes = await admin.GetFromJsonAsync<JsonElement>("/api/routes");
            Assert.Contains(routes.EnumerateArray(), r => r.GetProperty("host").GetString() == host && r.GetProperty("service").GetString() == ClusterRig.DefaultService);
        }
    }

    private static async Task AssertDownloadAsync(ClusterRig rig, string host, string path, long size)
    {
        using var response = await rig.GetAsync(0, host, path, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var (hash, length) = await Hashing.Sha256Async(await response.Content.ReadAsStreamAsync());
        Assert.Equal(size, length);
        Assert.Equal(DemoBackend.DownloadHash(size), hash);
    }
}
