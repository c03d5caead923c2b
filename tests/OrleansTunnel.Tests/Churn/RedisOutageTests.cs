using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace OrleansTunnel.Tests.Churn;

/// <summary>
/// Redis unavailable for 60 s: requests keep flowing, route changes are refused with 503 and a message
/// naming Redis, and once Redis is back on the same port a route change is saved and served again, with
/// every process still the one that started.
/// </summary>
[Collection("churn")]
public sealed class RedisOutageTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Outage = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task RedisDownForAMinute_RequestsKeepFlowing_RouteChangesAreRefusedNamingRedis_AndAllRecoversWithoutARestart()
    {
        await using var cluster = await ChurnCluster.StartAsync(drainDelay: "00:00:00");
        var (rig, lb) = (cluster.Rig, cluster.Lb);
        var pids = new[] { "silo", "gateway", "agent" }.SelectMany(role => Enumerable.Range(0, 2).Select(i => rig.Process(role, i))).ToDictionary(p => p.Name, p => p.Pid);
        using var admin = rig.AdminClient(0);
        Assert.Equal(HttpStatusCode.OK, (await admin.PutAsJsonAsync("/api/routes", new { host = "before.test", service = ClusterRig.DefaultService })).StatusCode);

        await using var load = new ChurnLoad(lb.HttpUrl, lb.H2cUrl, smallPerSecond: 10);
        load.Start();
        var from = load.Now;
        await rig.Redis.KillAsync();
        var outage = Stopwatch.StartNew();

        // Throughout the outage (its length is the point of the test, so it is timed), route changes are
        // refused with a clear message, and the route saved before keeps working.
        int refused = 0;
        string example = "";
        while (outage.Elapsed < Outage)
        {
            using var change = await admin.PutAsJsonAsync("/api/routes", new { host = $"during-{refused}.test", service = ClusterRig.DefaultService });
            string message = await change.Content.ReadAsStringAsync();
            Assert.True(change.StatusCode == HttpStatusCode.ServiceUnavailable && message.Contains("Redis", StringComparison.Ordinal),
                $"a route change while Redis is down answered {(int)change.StatusCode}: {message}");
            refused++;
            example = message.Trim();
            using var before = await rig.GetAsync(1, "before.test", "/hello");
            Assert.Equal(HttpStatusCode.OK, before.StatusCode);
            await Task.Delay(TimeSpan.FromSeconds(5));
        }
        ChurnRig.Report(output, $"redis down {outage.Elapsed.TotalSeconds:0} s: {refused} route changes refused with 503 naming Redis; route saved before served throughout; load {ChurnLoad.Counts(load.During(from, load.Now))}; last refusal: {example}");

        await rig.Redis.RestartAsync();
        var back = Stopwatch.StartNew();
        string last = "";
        await ChurnRig.UntilAsync(async () =>
        {
            using var change = await admin.PutAsJsonAsync("/api/routes", new { host = "after.test", service = ClusterRig.DefaultService });
            last = $"{(int)change.StatusCode}: {await change.Content.ReadAsStringAsync()}";
            return change.IsSuccessStatusCode;
        }, TimeSpan.FromSeconds(90), $"route changes were still refused after Redis came back (last: {last})");
        var saved = back.Elapsed;
        // Pushed to every gateway: the new route serves through both.
        for (int g = 0; g < 2; g++)
        {
            await rig.WaitForStatusAsync(g, "after.test", "/hello", HttpStatusCode.OK, TimeSpan.FromSeconds(60));
        }
        var served = back.Elapsed;
        await load.StopAsync();

        var all = load.Outcomes;
        ChurnRig.Report(output, $"  redis back: a route change saved after {saved.TotalSeconds:0.0} s, served by both gateways after {served.TotalSeconds:0.0} s; whole test load {ChurnLoad.Counts(all)}");
        var bad = all.Where(o => !o.Ok).ToList();
        Assert.True(bad.Count == 0, $"{bad.Count} operations failed or hung around the Redis outage:\n"
            + string.Join("\n", bad.Take(20).Select(o => $"{o.Kind} at {o.Started.TotalSeconds:0.0} s: {o.Error}")) + "\n" + rig.Describe());
        foreach (var (name, pid) in pids)
        {
            var process = name.Split('-') is [var role, var n] ? rig.Process(role, int.Parse(n) - 1) : throw new InvalidOperationException(name);
            Assert.True(process.Pid == pid && !process.HasExited, $"{name} was restarted or exited during the outage");
        }
    }
}
