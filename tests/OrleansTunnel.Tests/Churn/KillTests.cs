using System.Diagnostics;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace OrleansTunnel.Tests.Churn;

/// <summary>
/// kill -9 in the middle of work: a gateway, a silo, an agent and Redis, each in turn, while a 1 GiB
/// download and upload, a WebSocket and a gRPC stream cross it. Every transfer completes whole or ends with
/// an error; none hangs past its deadline; the surviving gateways' in-flight requests and permits in use go
/// back to zero once the traffic stopped.
/// </summary>
[Collection("churn")]
public sealed class KillTests(ITestOutputHelper output)
{
    // Generous: 1 GiB each way on a loaded 2-core machine; a transfer still running then counts as hung.
    private static readonly TimeSpan Deadline = TimeSpan.FromMinutes(5);

    [Fact]
    public async Task KillingAGatewayASiloAnAgentAndRedis_MidTransfer_EndsEveryTransferAndTheSurvivorsReturnToBaseline()
    {
        await using var cluster = await ChurnCluster.StartAsync(drainDelay: "00:00:00");
        var (rig, lb) = (cluster.Rig, cluster.Lb);
        ChurnRig.Report(output, $"kill -9 mid-transfer ({CrossingTransfers.Size >> 20} MiB download and upload, WebSocket, gRPC duplex):");

        // A gateway: the transfers go straight to it, so their path dies with it: each must end with an error.
        var ends = await CrossAsync("gateway-1", rig.GatewayIngressUrl(0), rig.GatewayH2cUrl(0), () => rig.KillGateway(0));
        Assert.All(ends, e => Assert.False(e.Ok, $"{e.Kind} through the killed gateway did not fail: {e.Detail}"));
        Assert.All(ends, e => Assert.True(e.EndedAfterKill < TimeSpan.FromSeconds(30), $"{e.Kind} ended only {e.EndedAfterKill.TotalSeconds:0.0} s after the kill"));
        await RecoverAsync(rig, "gateway-1", () => rig.StartGatewayAsync(0), survivors: [1]);

        // A silo: no grain is on a request's path, so everything completes.
        ends = await CrossAsync("silo-1", lb.HttpUrl, lb.H2cUrl, () => rig.KillSilo(0));
        Assert.All(ends, e => Assert.True(e.Ok, $"{e.Kind} failed when a silo died: {e.Detail}"));
        await RecoverAsync(rig, "silo-1", () => rig.StartSiloAsync(0), survivors: [0, 1]);

        // An agent: transfers on its tunnels end with an error, the others complete.
        ends = await CrossAsync("agent-1", lb.HttpUrl, lb.H2cUrl, () => rig.KillAgent(0));
        Assert.All(ends, e => Assert.DoesNotContain("HUNG", e.Detail));
        await RecoverAsync(rig, "agent-1", () => rig.StartAgentAsync(0), survivors: [0, 1], newAgent: "agent-1");

        // Redis: membership and durable state are gone for a while; requests do not touch them.
        ends = await CrossAsync("redis", lb.HttpUrl, lb.H2cUrl, () => rig.Redis.KillAsync().GetAwaiter().GetResult());
        Assert.All(ends, e => Assert.True(e.Ok, $"{e.Kind} failed when Redis died: {e.Detail}"));
        await RecoverAsync(rig, "redis", () => rig.Redis.RestartAsync(), survivors: [0, 1]);

        async Task<TransferEnd[]> CrossAsync(string name, Uri http, Uri h2c, Action kill)
        {
            await using var transfers = new CrossingTransfers(http, h2c, Deadline);
            await transfers.StartAsync();
            kill();
            transfers.Killed();
            // The message sessions keep going past the kill (20 more echoes each), so they cross it with traffic.
            await transfers.CrossedAsync(20);
            var ends = await transfers.EndAsync().Within(Deadline + TimeSpan.FromSeconds(30));
            int hung = ends.Count(e => e.Detail.StartsWith("HUNG", StringComparison.Ordinal));
            ChurnRig.Report(output, $"  kill -9 {name}: {ends.Count(e => e.Ok)} ok, {ends.Count(e => !e.Ok) - hung} failed, {hung} hung; last transfer ended {ends.Max(e => e.EndedAfterKill).TotalSeconds:0.0} s after the kill");
            ChurnRig.Report(output, "    " + string.Join("; ", ends.Select(e => $"{e.Kind} {(e.Ok ? "ok" : e.Detail.StartsWith("HUNG") ? "HUNG" : "failed")} at +{e.EndedAfterKill.TotalSeconds:0.0} s ({Short(e.Detail)})")));
            Assert.All(ends, e => Assert.False(e.Detail.StartsWith("HUNG", StringComparison.Ordinal), $"{e.Kind} hung: {e.Detail}\n{rig.Describe()}"));
            return ends;
        }
    }

    /// <summary>Starts the killed process again, waits until the cluster is whole, and checks the survivors' baseline.</summary>
    private async Task RecoverAsync(ClusterRig rig, string name, Func<Task> start, int[] survivors, string? newAgent = null)
    {
        var clock = Stopwatch.StartNew();
        long startedAt = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        await start();
        var ready = clock.Elapsed;
        await ChurnRig.UntilWholeAsync(rig, TimeSpan.FromSeconds(120), $"after {name} came back, every agent did not get a tunnel to every gateway");
        if (newAgent is not null)
        {
            // The restarted agent's own tunnels (dialled after its start), not the killed process's.
            await ChurnRig.UntilAsync(async () =>
            {
                for (int g = 0; g < rig.Options.Gateways; g++)
                {
                    if (!(await ChurnRig.AgentsOnAsync(rig, g, startedAt)).Contains(newAgent))
                    {
                        return false;
                    }
                }
                return true;
            }, TimeSpan.FromSeconds(120), $"the restarted {newAgent} did not get a tunnel to every gateway");
        }
        var whole = clock.Elapsed;
        await rig.WaitForStatusAsync(0, "127.0.0.1", "/hello", System.Net.HttpStatusCode.OK, TimeSpan.FromSeconds(60));
        foreach (int g in survivors)
        {
            foreach (var metric in new[] { "otun_gateway_requests_in_flight", "otun_gateway_permits_in_use" })
            {
                await ChurnRig.UntilAsync(async () => await ChurnRig.MetricAsync(rig, g, metric) == 0, TimeSpan.FromSeconds(60),
                    $"gateway-{g + 1}'s {metric} did not return to 0 after {name} was killed (now {await ChurnRig.MetricAsync(rig, g, metric)})");
            }
        }
        ChurnRig.Report(output, $"  {name} recovery: restarted and ready in {ready.TotalSeconds:0.0} s, every agent on every gateway after {whole.TotalSeconds:0.0} s; survivors' in-flight and permits in use back to 0");
    }

    private static string Short(string text) => text.Length > 90 ? text[..90] + "..." : text;
}
