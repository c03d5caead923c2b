using System.Diagnostics;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace OrleansTunnel.Tests.Churn;

/// <summary>
/// The rolling-restart drill, as a Kubernetes rollout does it: under steady load through the load
/// balancer (small GETs at a fixed rate, half of the capacity measured first through the same load
/// balancer, plus long downloads, SSE, WebSockets and gRPC streams), every gateway, then every silo,
/// then every agent is stopped with SIGTERM and started again,
/// one at a time, each only once the cluster is whole again. No request may fail or hang, and every long
/// transfer completes whole.
/// </summary>
[Collection("churn")]
public sealed class RollingRestartTests(ITestOutputHelper output)
{
    [Fact]
    public async Task RestartingEveryGatewaySiloAndAgentInTurn_UnderLoadThroughTheLoadBalancer_FailsAndHangsNothing()
    {
        await using var cluster = await ChurnCluster.StartAsync(drainDelay: "00:00:02");
        var (rig, lb) = (cluster.Rig, cluster.Lb);

        await using var load = new ChurnLoad(lb.HttpUrl, lb.H2cUrl, smallPerSecond: 0);
        // The long operations run first, so the capacity measured is what is left for small requests beside
        // them (measured alone, half of it plus the downloads would load the machine past what it serves).
        load.StartLong();
        var capacity = await ChurnCapacity.MeasureAsync(lb.HttpUrl, workers: 8, duration: TimeSpan.FromSeconds(5));
        double rate = Math.Max(1, capacity.PerSecond / 2);
        ChurnRig.Report(output, $"rolling restart drill: capacity through nginx {capacity.PerSecond:0} GET/s ({capacity.Requests} in {capacity.Duration.TotalSeconds:0} s, {capacity.Workers} closed-loop workers, beside the long operations); steady load {rate:0} GET/s");
        load.StartSmall(rate);
        // Warm: every kind of operation succeeded once before anything restarts.
        await ChurnRig.UntilAsync(() => Task.FromResult(new[] { "small", "download", "sse", "websocket", "grpc" }
            .All(k => load.Outcomes.Any(o => o.Kind == k && o.Ok))), TimeSpan.FromSeconds(90),
            "not every kind of operation succeeded before the drill: " + string.Join("; ", load.Outcomes.Where(o => !o.Ok).Take(5).Select(o => o.Error)));

        var steps = new (string Role, int Index)[] { ("gateway", 0), ("gateway", 1), ("silo", 0), ("silo", 1), ("agent", 0), ("agent", 1) };
        var windows = new List<(string Name, TimeSpan From, TimeSpan To, string Timing)>();
        foreach (var (role, i) in steps)
        {
            string name = $"{role}-{i + 1}";
            var from = load.Now;
            var clock = Stopwatch.StartNew();
            int code = await rig.Process(role, i).TerminateAsync(TimeSpan.FromSeconds(90));
            var exited = clock.Elapsed;
            Assert.True(code == 0, $"{name} exited with code {code} after SIGTERM:\n{rig.Process(role, i).Tail()}");
            await rig.StartAsync(role, i);
            var ready = clock.Elapsed;
            // The next step waits until the cluster is whole again, as a rollout waits for readiness.
            await ChurnRig.UntilWholeAsync(rig, TimeSpan.FromSeconds(90), $"after restarting {name}, every agent did not get a tunnel to every gateway again");
            var whole = clock.Elapsed;
            windows.Add((name, from, load.Now, $"SIGTERM to exit {exited.TotalSeconds:0.0} s, started and ready {(ready - exited).TotalSeconds:0.0} s, whole again {whole.TotalSeconds:0.0} s after SIGTERM"));
        }

        await load.StopAsync();
        ChurnRig.Report(output, $"rolling restart drill (SIGTERM, restart, one at a time; {rate:0} small GET/s open loop + {ChurnLoad.DownloadSize >> 20} MiB downloads + SSE + WebSocket + gRPC duplex through nginx):");
        foreach (var (name, from, to, timing) in windows)
        {
            var during = load.During(from, to).ToList();
            string kinds = string.Join(", ", during.GroupBy(o => o.Kind).OrderBy(g => g.Key).Select(g => $"{g.Key} {ChurnLoad.Counts(g)}"));
            ChurnRig.Report(output, $"  {name}: {ChurnLoad.Counts(during)} ({kinds}); {timing}");
        }
        var all = load.Outcomes;
        ChurnRig.Report(output, $"  whole drill: {ChurnLoad.Counts(all)}");
        var bad = all.Where(o => !o.Ok).ToList();
        Assert.True(bad.Count == 0, $"{bad.Count} operations failed or hung during the drill:\n"
            + string.Join("\n", bad.Take(20).Select(o => $"{o.Kind} at {o.Started.TotalSeconds:0.0}-{o.Ended.TotalSeconds:0.0} s: {o.Error}"))
            + "\n" + rig.Describe() + "\nnginx:\n" + lb.Output);
        Assert.True(all.Count(o => o.Kind == "download") >= steps.Length, "fewer long downloads completed than restarts: the drill did not cross them");
    }
}
