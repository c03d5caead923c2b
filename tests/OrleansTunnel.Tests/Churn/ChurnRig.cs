using System.Net.Http.Json;
using System.Text.Json;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace OrleansTunnel.Tests.Churn;

/// <summary>The churn tests run one after another, never beside each other (each runs a whole cluster).</summary>
[CollectionDefinition("churn")]
public sealed class ChurnCollection;

/// <summary>
/// The churn tests' shared set-up: the <see cref="ChurnRig"/> cluster started, nginx in front of its
/// gateways, and every agent holding a tunnel to every gateway. Disposes nginx, then the cluster.
/// </summary>
public sealed class ChurnCluster : IAsyncDisposable
{
    private ChurnCluster(ClusterRig rig, NginxLoadBalancer lb)
    {
        Rig = rig;
        Lb = lb;
    }

    public ClusterRig Rig { get; }

    public NginxLoadBalancer Lb { get; }

    public static async Task<ChurnCluster> StartAsync(string drainDelay)
    {
        var rig = await ClusterRig.StartAsync(ChurnRig.Options(drainDelay));
        NginxLoadBalancer? lb = null;
        try
        {
            lb = await NginxLoadBalancer.StartAsync(rig, rig.Client);
            await ChurnRig.UntilWholeAsync(rig, TimeSpan.FromSeconds(60), "every agent did not get a tunnel to every gateway");
            return new ChurnCluster(rig, lb);
        }
        catch
        {
            if (lb is not null)
            {
                await lb.DisposeAsync();
            }
            await rig.DisposeAsync();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await Lb.DisposeAsync();
        await Rig.DisposeAsync();
    }
}

/// <summary>
/// The local cluster of the churn tests: redis, 2 silos, 2 gateways (with h2c ingresses), 2 agents with a
/// tunnel to each gateway, the test backend (HTTP, WebSocket and gRPC), and nginx in front of the gateways.
/// </summary>
public static class ChurnRig
{
    public static ClusterRigOptions Options(string drainDelay) => new()
    {
        Silos = 2,
        Gateways = 2,
        Agents = 2,
        Connections = 2,
        SeededHosts = ["127.0.0.1"],
        ExposeGrpc = true,
        H2cIngress = true,
        DrainDelay = drainDelay,
        ReadyTimeout = TimeSpan.FromSeconds(120),
        // A restarted silo or gateway is found again within seconds (defaults: a minute), failure detection in ~6 s.
        SiloArgs = ["--set", "Cluster:ProbeTimeout=00:00:02", "--set", "Cluster:NumMissedProbesLimit=3"],
        GatewayArgs = ["--set", "Cluster:GatewayListRefreshPeriod=00:00:02", "--set", "Cluster:ResponseTimeout=00:00:10",
            "--set", "Gateway:PermitLeaseTimeout=00:00:02"],
        AgentArgs = ["--set", "Agent:ReconnectMaxDelay=00:00:03"],
    };

    /// <summary>
    /// The agent ids holding an accepting tunnel on gateway i (its admin /tunnels), or none when it does not
    /// answer. Tunnels opened before <paramref name="sinceUnixMs"/> (the agent's epoch: its clock at the
    /// dial) do not count, so a killed agent's tunnels the gateway has not dropped yet are not taken for the new one's.
    /// </summary>
    public static async Task<string[]> AgentsOnAsync(ClusterRig rig, int gateway, long sinceUnixMs = 0)
    {
        try
        {
            using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
            var tunnels = await client.GetFromJsonAsync<JsonElement>(new Uri(rig.GatewayAdminUrl(gateway), "/tunnels"));
            return [.. tunnels.EnumerateArray()
                .Where(t => t.GetProperty("accepting").GetBoolean() && t.GetProperty("epoch").GetInt64() >= sinceUnixMs)
                .Select(t => t.GetProperty("agent").GetString()!).Distinct()];
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or JsonException)
        {
            return [];
        }
    }

    /// <summary>Polls an asynchronous condition until it holds; fails with the message after the timeout.</summary>
    public static async Task UntilAsync(Func<Task<bool>> condition, TimeSpan timeout, string message)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"{message} (waited {timeout.TotalSeconds:0.#} s)");
            }
            await Task.Delay(100);
        }
    }

    /// <summary>Waits until the cluster is whole; the failure shows each gateway's agents and every process's last lines.</summary>
    public static async Task UntilWholeAsync(ClusterRig rig, TimeSpan timeout, string message, long sinceUnixMs = 0)
    {
        try
        {
            await UntilAsync(() => WholeAsync(rig, sinceUnixMs), timeout, message);
        }
        catch (TimeoutException ex)
        {
            var views = new List<string>();
            for (int g = 0; g < rig.Options.Gateways; g++)
            {
                views.Add($"gateway-{g + 1}: [{string.Join(", ", await AgentsOnAsync(rig, g))}]");
            }
            throw new TimeoutException($"{ex.Message}; accepting tunnels: {string.Join("; ", views)}\n{rig.Describe()}", ex);
        }
    }

    /// <summary>Every agent holds an accepting tunnel on every gateway (the cluster is whole again).</summary>
    public static async Task<bool> WholeAsync(ClusterRig rig, long sinceUnixMs = 0)
    {
        for (int g = 0; g < rig.Options.Gateways; g++)
        {
            if ((await AgentsOnAsync(rig, g, sinceUnixMs)).Length < rig.Options.Agents)
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>A Prometheus value from gateway i's /metrics (sum over its series), or null when it does not answer.</summary>
    public static async Task<double?> MetricAsync(ClusterRig rig, int gateway, string name)
    {
        try
        {
            using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
            string text = await client.GetStringAsync(new Uri(rig.GatewayAdminUrl(gateway), "/metrics"));
            double sum = 0;
            bool seen = false;
            foreach (var line in text.Split('\n'))
            {
                if (line.StartsWith(name, StringComparison.Ordinal) && (line.Length > name.Length && (line[name.Length] == ' ' || line[name.Length] == '{')))
                {
                    sum += double.Parse(line[(line.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture);
                    seen = true;
                }
            }
            return seen ? sum : 0;
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or FormatException)
        {
            return null;
        }
    }

    /// <summary>Writes a line to the test output and to the churn report file (kept for the closing note).</summary>
    public static void Report(ITestOutputHelper output, string line)
    {
        output.WriteLine(line);
        File.AppendAllText(Path.Combine(Path.GetTempPath(), "otun-churn-report.txt"), $"{DateTime.UtcNow:HH:mm:ss} {line}\n");
    }
}
