using System.Net;

namespace OrleansTunnel.Tests.Deploy.Run;

/// <summary>
/// A pod network on this machine: a Linux bridge with a /24 subnet, and one network namespace per
/// pod attached to it by a veth pair, so every pod has its own IP address and its own ports (two
/// silos both bind 0.0.0.0:11111, as in Kubernetes). Service addresses are extra addresses of the
/// bridge (the node), where nginx proxies them. Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN).
/// Everything is named after a random id and removed on dispose.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class PodNetwork : IAsyncDisposable
{
    private readonly string _id = Guid.NewGuid().ToString("N")[..5];
    private readonly List<string> _namespaces = [];
    private readonly List<string> _links = [];
    private int _nextPod = 10;
    private int _nextService = 200;

    private PodNetwork(string subnet) => Subnet = subnet;

    /// <summary>The first three octets of the /24, e.g. "10.213.7".</summary>
    public string Subnet { get; }

    public string Bridge => "otb" + _id;

    /// <summary>The node's address on the bridge (where the test, its backend and nginx are).</summary>
    public IPAddress Node => IPAddress.Parse(Subnet + ".1");

    public static async Task<PodNetwork> CreateAsync()
    {
        var routes = (await RunAsync("ip", "-4", "route", "show")).StandardOutput;
        string subnet;
        do
        {
            subnet = $"10.{Random.Shared.Next(200, 250)}.{Random.Shared.Next(1, 255)}";
        }
        while (routes.Contains(subnet + ".", StringComparison.Ordinal));
        var network = new PodNetwork(subnet);
        try
        {
            await RunAsync("ip", "link", "add", network.Bridge, "type", "bridge");
            network._links.Add(network.Bridge);
            await RunAsync("ip", "addr", "add", $"{network.Node}/24", "dev", network.Bridge);
            await RunAsync("ip", "link", "set", network.Bridge, "up");
        }
        catch
        {
            await network.DisposeAsync();
            throw;
        }
        return network;
    }

    /// <summary>A new pod namespace with its address; returns (namespace name, address).</summary>
    public async Task<(string Namespace, IPAddress Address)> AddPodAsync()
    {
        int n = _nextPod++;
        string ns = $"otn{_id}{n}";
        string host = $"otv{_id}{n}";
        string pod = $"otp{_id}{n}";
        var address = IPAddress.Parse($"{Subnet}.{n}");
        await RunAsync("ip", "netns", "add", ns);
        _namespaces.Add(ns);
        await RunAsync("ip", "link", "add", host, "type", "veth", "peer", "name", pod);
        _links.Add(host);
        await RunAsync("ip", "link", "set", pod, "netns", ns);
        await RunAsync("ip", "link", "set", host, "master", Bridge, "up");
        await RunAsync("ip", "netns", "exec", ns, "ip", "addr", "add", $"{address}/24", "dev", pod);
        await RunAsync("ip", "netns", "exec", ns, "ip", "link", "set", pod, "up");
        await RunAsync("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up");
        await RunAsync("ip", "netns", "exec", ns, "ip", "route", "add", "default", "via", Node.ToString());
        return (ns, address);
    }

    /// <summary>A new address of the node (a Service's cluster IP or a load balancer's address).</summary>
    public async Task<IPAddress> AddServiceAddressAsync()
    {
        var address = IPAddress.Parse($"{Subnet}.{_nextService++}");
        await RunAsync("ip", "addr", "add", $"{address}/24", "dev", Bridge);
        return address;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var ns in _namespaces)
        {
            await RunAsync(false, "ip", "netns", "del", ns);
        }
        foreach (var link in Enumerable.Reverse(_links))
        {
            await RunAsync(false, "ip", "link", "del", link);
        }
    }

    private static Task<ProcessResult> RunAsync(params string[] command) => RunAsync(true, command);

    private static async Task<ProcessResult> RunAsync(bool check, params string[] command)
    {
        var result = await ProcessRunner.RunAsync(command[0], command[1..], "/", TimeSpan.FromSeconds(30));
        if (check && result.ExitCode != 0)
        {
            throw new InvalidOperationException($"pod network setup failed (this test needs root with CAP_NET_ADMIN): {result.Describe()}");
        }
        return result;
    }
}
