using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace OrleansTunnel.Tests.Cluster;

/// <summary>
/// 2 silos + 2 gateways + 2 agents (each agent keeps a connection to both gateways) as separate
/// processes on a real redis-server, with failure detection shortened for tests:
/// silo probes 1 s x 2 missed, grain calls time out after 5 s, gateways report every 1 s and are
/// declared dead after 3 s, tunnel pings every 1 s. Each test restores the full cluster first.
/// </summary>
public sealed class FailoverFixture : IAsyncLifetime
{
    public const string Host = "app.test";

    public ClusterRig Rig { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Rig = await ClusterRig.StartAsync(new ClusterRigOptions
        {
            Silos = 2,
            Gateways = 2,
            Agents = 2,
            Connections = 2,
            SeededHosts = [Host],
            SiloArgs =
            [
                "--set", "Cluster:ProbeTimeout=00:00:01", "--set", "Cluster:NumMissedProbesLimit=2",
                "--set", "Cluster:ResponseTimeout=00:00:05", "--set", "Directory:GatewayTimeToLive=00:00:03",
                "--set", "Requests:OwnerTimeout=00:00:02",
            ],
            GatewayArgs =
            [
                "--set", "Cluster:ResponseTimeout=00:00:05", "--set", "Cluster:GatewayListRefreshPeriod=00:00:01",
                "--set", "Gateway:ClusterHeartbeatInterval=00:00:01", "--set", "Gateway:HeartbeatInterval=00:00:01",
                "--set", "Gateway:ResponseTimeout=00:00:10",
            ],
            AgentArgs = ["--set", "Agent:ReconnectMinDelay=00:00:00.100", "--set", "Agent:ReconnectMaxDelay=00:00:01"],
        });
    }

    public async Task DisposeAsync() => await Rig.DisposeAsync();
}

[CollectionDefinition("failover", DisableParallelization = true)]
public sealed class FailoverCollection : ICollectionFixture<FailoverFixture>;

[Collection("failover")]
public sealed class FailoverTests(FailoverFixture fixture, ITestOutputHelper output)
{
    /// <summary>A request not answered within this long counts as hung (the gateway's response timeout is 10 s).</summary>
    private static readonly TimeSpan HungAfter = TimeSpan.FromSeconds(20);

    private ClusterRig Rig => fixture.Rig;

    [Fact]
    public async Task KillingOneAgent_ItsServiceKeepsAnsweringThroughTheOther()
    {
        await RestoreAsync(Rig);
        await using var load = Load.Start(Rig, [0, 1], output);
        await load.WaitForOkAsync(50);
        var killedAt = load.Elapsed;
        Rig.KillAgent(0);
        output.WriteLine($"kill -9 agent-1 at {killedAt.TotalSeconds:0.00} s");
        // Three tunnel heartbeats (1 s) is the longest a dead agent may stay in rotation.
        await load.RunForAsync(TimeSpan.FromSeconds(6));
        var result = await load.StopAsync();
        output.WriteLine(result.Report());
        result.AssertNothingHung();
        result.AssertFailuresCarryStatusAndMessage();
        result.AssertAllOkAfter(killedAt + TimeSpan.FromSeconds(3));
    }

    [Fact]
    public async Task KillingOneGateway_RequestsThroughTheOtherKeepSucceeding_AndItsAgentsReconnectElsewhere()
    {
        await RestoreAsync(Rig);
        await using var load = Load.Start(Rig, [1], output);
        await load.WaitForOkAsync(50);
        var killedAt = load.Elapsed;
        Rig.KillGateway(0);
        output.WriteLine($"kill -9 gateway-1 at {killedAt.TotalSeconds:0.00} s");
        await load.RunForAsync(TimeSpan.FromSeconds(6));
        var result = await load.StopAsync();
        output.WriteLine(result.Report());
        result.AssertNothingHung();
        // Through gateway-2, nothing fails at any time: its own agent connections serve the service.
        Assert.True(result.Failed == 0, "requests through the surviving gateway failed:\n" + result.Report());
        // The agents keep two connections; with gateway-1 gone both land on gateway-2.
        using var admin = Rig.AdminClient(1);
        string last = "";
        await Eventually.TrueAsync(() =>
        {
            last = admin.GetStringAsync("/api/agents").GetAwaiter().GetResult();
            using var agents = System.Text.Json.JsonDocument.Parse(last);
            var gatewaysByAgent = agents.RootElement.EnumerateArray().ToDictionary(
                a => a.GetProperty("agentId").GetString()!,
                a => a.GetProperty("connections").EnumerateArray().Select(c => c.GetProperty("gatewayId").GetString()).ToArray());
            return new[] { "agent-1", "agent-2" }.All(id => gatewaysByAgent.TryGetValue(id, out var g) && g.Length == 2 && g.All(x => x == "gateway-2"));
        }, TimeSpan.FromSeconds(20), "the agents did not reconnect both tunnels to gateway-2");
        output.WriteLine("after the kill, /api/agents at gateway-2: " + last);
    }

    [Fact]
    public async Task KillingOneSilo_NewRequestsSucceedAgainWithinFailureDetection_AndNoneHang()
    {
        await RestoreAsync(Rig);
        await using var load = Load.Start(Rig, [0, 1], output);
        await load.WaitForOkAsync(50);
        var killedAt = load.Elapsed;
        Rig.KillSilo(0);
        output.WriteLine($"kill -9 silo-1 at {killedAt.TotalSeconds:0.00} s");
        await load.RunForAsync(TimeSpan.FromSeconds(15));
        var result = await load.StopAsync();
        output.WriteLine(result.Report());
        result.AssertNothingHung();
        result.AssertFailuresCarryStatusAndMessage();
        // Failure detection: 2 missed probes of 1 s plus the vote and the membership update; grain
        // calls to the dead silo time out after 5 s. Everything sent 10 s after the kill succeeds.
        result.AssertAllOkAfter(killedAt + TimeSpan.FromSeconds(10));
        // The control plane works on the surviving silo: a route change (the routing grain, re-activated
        // there from its state in Redis if it lived on silo-1) reaches both gateways.
        using var admin = Rig.AdminClient(1);
        using (var put = await admin.PutAsync("/api/routes", System.Net.Http.Json.JsonContent.Create(new { host = "after-silo.test", service = ClusterRig.DefaultService })))
        {
            Assert.True(put.IsSuccessStatusCode, $"the route change failed: {(int)put.StatusCode} {await put.Content.ReadAsStringAsync()}");
        }
        await Rig.WaitForStatusAsync(0, "after-silo.test", "/hello", HttpStatusCode.OK, TimeSpan.FromSeconds(20));
        await Rig.WaitForStatusAsync(0, FailoverFixture.Host, "/hello", HttpStatusCode.OK, TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task RestartingRedis_TheClusterRecoversWithoutRestartingAnyProcess()
    {
        await RestoreAsync(Rig);
        // Which processes run (name, pid, exited): the output tails Describe() adds may change.
        static string Processes(ClusterRig rig) => string.Join("\n", rig.Describe().Split('\n').Where(l => l.StartsWith("--- ", StringComparison.Ordinal)));
        var pids = Processes(Rig);
        await using var load = Load.Start(Rig, [0, 1], output);
        await load.WaitForOkAsync(50);
        var killedAt = load.Elapsed;
        await Rig.Redis.KillAsync();
        output.WriteLine($"kill -9 redis at {killedAt.TotalSeconds:0.00} s");
        await load.RunForAsync(TimeSpan.FromSeconds(2));
        await Rig.RestartRedisAsync();
        var restartedAt = load.Elapsed;
        output.WriteLine($"redis restarted at {restartedAt.TotalSeconds:0.00} s");
        await load.RunForAsync(TimeSpan.FromSeconds(5));
        var result = await load.StopAsync();
        output.WriteLine(result.Report());
        result.AssertNothingHung();
        result.AssertFailuresCarryStatusAndMessage();
        result.AssertAllOkAfter(restartedAt + TimeSpan.FromSeconds(2));
        Assert.Equal(pids, Processes(Rig));
        // The cluster still takes changes that need Redis: a route added now is served.
        using var admin = Rig.AdminClient(1);
        await Eventually.TrueAsync(() =>
        {
            using var put = admin.PutAsync("/api/routes", System.Net.Http.Json.JsonContent.Create(new { host = "after-redis.test", service = ClusterRig.DefaultService })).GetAwaiter().GetResult();
            return put.IsSuccessStatusCode;
        }, TimeSpan.FromSeconds(20), "the routing grain never accepted a change after redis restarted");
        await Rig.WaitForStatusAsync(0, "after-redis.test", "/hello", HttpStatusCode.OK, TimeSpan.FromSeconds(20));
    }

    /// <summary>Restarts whatever an earlier test killed and waits until both gateways serve through local tunnels.</summary>
    internal static async Task RestoreAsync(ClusterRig Rig)
    {
        if (!await Rig.Redis.PingAsync())
        {
            await Rig.RestartRedisAsync();
        }
        await Rig.StartAllAsync();
        foreach (int g in new[] { 0, 1 })
        {
            await Rig.WaitForStatusAsync(g, FailoverFixture.Host, "/hello", HttpStatusCode.OK, TimeSpan.FromSeconds(60));
        }
        // Both agents hold a tunnel on each gateway again (so each gateway has a local path).
        foreach (int g in new[] { 0, 1 })
        {
            using var admin = Rig.AdminClient(g);
            await Eventually.TrueAsync(() =>
            {
                var text = admin.GetStringAsync("/api/agents").GetAwaiter().GetResult();
                return text.Split("gateway-1").Length - 1 >= 2 && text.Split("gateway-2").Length - 1 >= 2;
            }, TimeSpan.FromSeconds(60), "the agents did not spread over both gateways:\n" + Rig.Describe());
        }
    }

    /// <summary>Steady load: workers send GET /hello through the given gateways in turn and record every outcome.</summary>
    private sealed class Load : IAsyncDisposable
    {
        private readonly ClusterRig _rig;
        private readonly int[] _gateways;
        private readonly ITestOutputHelper _output;
        private readonly CancellationTokenSource _stop = new();
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private readonly ConcurrentQueue<Outcome> _outcomes = new();
        private readonly HttpClient _client = new(new SocketsHttpHandler { UseProxy = false, PooledConnectionLifetime = TimeSpan.FromSeconds(2) }) { Timeout = Timeout.InfiniteTimeSpan };
        private Task[] _workers = [];
        private long _ok;
        private readonly SemaphoreSlim _progress = new(0);

        private Load(ClusterRig rig, int[] gateways, ITestOutputHelper output)
        {
            _rig = rig;
            _gateways = gateways;
            _output = output;
        }

        public TimeSpan Elapsed => _clock.Elapsed;

        public static Load Start(ClusterRig rig, int[] gateways, ITestOutputHelper output)
        {
            var load = new Load(rig, gateways, output);
            load._workers = [.. Enumerable.Range(0, 8).Select(i => Task.Run(() => load.WorkAsync(i)))];
            return load;
        }

        public async Task WaitForOkAsync(long count)
        {
            var deadline = Stopwatch.StartNew();
            while (Interlocked.Read(ref _ok) < count)
            {
                if (deadline.Elapsed > TimeSpan.FromSeconds(30))
                {
                    throw new TimeoutException($"the load never reached {count} successes:\n" + Result().Report());
                }
                await _progress.WaitAsync(TimeSpan.FromMilliseconds(100));
            }
        }

        public Task RunForAsync(TimeSpan duration) => Task.Delay(duration);

        public async Task<LoadResult> StopAsync()
        {
            _stop.Cancel();
            await Task.WhenAll(_workers);
            return Result();
        }

        private LoadResult Result() => new([.. _outcomes]);

        private async Task WorkAsync(int worker)
        {
            int n = worker;
            while (!_stop.IsCancellationRequested)
            {
                int gateway = _gateways[n++ % _gateways.Length];
                var started = _clock.Elapsed;
                using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(_rig.GatewayIngressUrl(gateway), "/hello"));
                request.Headers.Host = FailoverFixture.Host;
                using var hung = new CancellationTokenSource(HungAfter);
                Outcome outcome;
                try
                {
                    using var response = await _client.SendAsync(request, hung.Token);
                    string body = await response.Content.ReadAsStringAsync(hung.Token);
                    outcome = new Outcome(gateway, started, _clock.Elapsed, (int)response.StatusCode, body.Trim(), false);
                }
                catch (OperationCanceledException) when (hung.IsCancellationRequested)
                {
                    outcome = new Outcome(gateway, started, _clock.Elapsed, 0, $"no answer within {HungAfter.TotalSeconds} s", true);
                }
                catch (HttpRequestException ex)
                {
                    // The visitor's own connection to a killed gateway: a transport error, no HTTP status.
                    outcome = new Outcome(gateway, started, _clock.Elapsed, -1, ex.Message, false);
                }
                _outcomes.Enqueue(outcome);
                if (outcome.Status == 200)
                {
                    Interlocked.Increment(ref _ok);
                    if (_progress.CurrentCount == 0)
                    {
                        _progress.Release();
                    }
                }
                else if (outcome.Status != 200)
                {
                    // Do not spin on a gateway that refuses connections.
                    await Task.Delay(20);
                }
            }
        }

        public async ValueTask DisposeAsync()
        {
            if (!_stop.IsCancellationRequested)
            {
                await StopAsync();
            }
            _client.Dispose();
        }
    }

    private sealed record Outcome(int Gateway, TimeSpan Started, TimeSpan Ended, int Status, string Message, bool Hung);

    private sealed record LoadResult(Outcome[] Outcomes)
    {
        public int Ok => Outcomes.Count(o => o.Status == 200);
        public int Hung => Outcomes.Count(o => o.Hung);
        public int Failed => Outcomes.Length - Ok - Hung;

        public string Report()
        {
            var lines = new List<string> { $"ok {Ok} / failed {Failed} / hung {Hung}" };
            foreach (var g in Outcomes.GroupBy(o => o.Gateway).OrderBy(g => g.Key))
            {
                lines.Add($"  through gateway-{g.Key + 1}: ok {g.Count(o => o.Status == 200)} / failed {g.Count(o => o.Status != 200 && !o.Hung)} / hung {g.Count(o => o.Hung)}");
            }
            foreach (var f in Outcomes.Where(o => o.Status != 200).GroupBy(o => (o.Status, o.Message)).OrderByDescending(g => g.Count()).Take(8))
            {
                var first = f.Min(o => o.Started).TotalSeconds;
                var last = f.Max(o => o.Started).TotalSeconds;
                lines.Add($"  {f.Count()} x {(f.Key.Status > 0 ? f.Key.Status.ToString() : f.Key.Status == 0 ? "hung" : "transport")} '{f.Key.Message}' (sent {first:0.00}..{last:0.00} s)");
            }
            return string.Join("\n", lines);
        }

        public void AssertNothingHung() => Assert.True(Hung == 0, "requests hung:\n" + Report());

        /// <summary>Failed requests carry an HTTP status and the gateway's one-line message (transport errors only come from a killed gateway).</summary>
        public void AssertFailuresCarryStatusAndMessage()
        {
            foreach (var f in Outcomes.Where(o => o.Status != 200 && !o.Hung))
            {
                Assert.True(f.Status >= 400 && f.Message.StartsWith("otun: ", StringComparison.Ordinal),
                    $"a failure without a clear status and message: {f.Status} '{f.Message}'\n{Report()}");
            }
        }

        public void AssertAllOkAfter(TimeSpan from)
        {
            var late = Outcomes.Where(o => o.Started >= from).ToArray();
            Assert.True(late.Length > 0, $"no request was sent after {from.TotalSeconds:0.0} s");
            Assert.True(late.All(o => o.Status == 200), $"requests sent after {from.TotalSeconds:0.0} s failed:\n" + new LoadResult(late).Report());
        }
    }
}
