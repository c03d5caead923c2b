using System.Net;
using System.Security.Cryptography;
using OrleansTunnel.Gateway.Auth;

namespace OrleansTunnel.Tests.Infrastructure;

/// <summary>What <see cref="ClusterRig"/> starts. Extra arguments per role are appended to every process of that role.</summary>
public sealed class ClusterRigOptions
{
    public int Silos { get; set; } = 1;
    public int Gateways { get; set; } = 1;
    public int Agents { get; set; } = 1;

    /// <summary>Tunnel connections each agent keeps (to each gateway).</summary>
    public int Connections { get; set; } = 1;

    public string ClusterId { get; set; } = "rig-" + Guid.NewGuid().ToString("N")[..8];

    /// <summary>Keys durable state in Redis; keep it across restarts to see the same state.</summary>
    public string ServiceId { get; set; } = "rig-" + Guid.NewGuid().ToString("N")[..8];

    /// <summary>The service name the agents expose the in-process backend as.</summary>
    public string Service { get; set; } = ClusterRig.DefaultService;

    /// <summary>Gateway:DrainDelay of every gateway (no load balancer in most tests, so none).</summary>
    public string DrainDelay { get; set; } = "00:00:00";

    /// <summary>Also expose the backend's h2c (gRPC) port as service "grpc", routed from 127.0.0.1/orleanstunnel.tests.Echo and host grpc.test.</summary>
    public bool ExposeGrpc { get; set; }

    /// <summary>Also listen for cleartext HTTP/2 (prior knowledge) on each gateway (Gateway:H2cIngress).</summary>
    public bool H2cIngress { get; set; }

    /// <summary>Hosts seeded into the gateways' configuration as routes to <see cref="Service"/> (--route HOST=SERVICE).</summary>
    public List<string> SeededHosts { get; set; } = [];

    /// <summary>Extra args for silos, e.g. ["--set", "Cluster:ProbeTimeout=00:00:01"].</summary>
    public List<string> SiloArgs { get; set; } = [];

    /// <summary>Extra redis-server arguments (e.g. --tls-port and its certificates).</summary>
    public List<string> RedisArgs { get; set; } = [];

    /// <summary>Redis requirepass; null: none.</summary>
    public string? RedisPassword { get; set; }

    /// <summary>The Cluster:Redis connection string nodes get instead of the plain one (e.g. the TLS port with the password).</summary>
    public string? RedisConnectionString { get; set; }

    public List<string> GatewayArgs { get; set; } = [];

    public List<string> AgentArgs { get; set; } = [];

    /// <summary>Extra args for one process only, by name ("silo-1", "gateway-2", "agent-1").</summary>
    public Dictionary<string, List<string>> ArgsFor { get; set; } = [];

    /// <summary>How long each process may take to print its ready line.</summary>
    public TimeSpan ReadyTimeout { get; set; } = TimeSpan.FromSeconds(60);
}

/// <summary>
/// A cluster as separate processes on free loopback ports: redis-server, N silos, M gateways (Orleans
/// clients) and K agents, all in front of one in-process <see cref="TestBackend"/>. Every process keeps
/// its ports across restarts. Processes are indexed from 0 (silo i is named "silo-(i+1)").
/// </summary>
public sealed class ClusterRig : IAsyncDisposable
{
    public const string DefaultService = "backend";

    private readonly OtunProcess?[] _silos;
    private readonly OtunProcess?[] _gateways;
    private readonly OtunProcess?[] _agents;
    private readonly (int Silo, int OrleansGateway, int Admin)[] _siloPorts;
    private readonly (int Ingress, int Tunnel, int Admin, int H2c)[] _gatewayPorts;
    private readonly string[] _agentTokens;

    public ClusterRigOptions Options { get; }

    public RedisServer Redis { get; }

    public TestBackend Backend { get; }

    /// <summary>The admin API's bearer token (gateways hold its SHA-256 as Gateway:AdminTokenSha256).</summary>
    public string AdminToken { get; } = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));

    /// <summary>A client for visitors: no proxy, no redirects.</summary>
    public HttpClient Client { get; } = new(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false }) { Timeout = TimeSpan.FromSeconds(30) };

    private ClusterRig(ClusterRigOptions options, RedisServer redis, TestBackend backend)
    {
        Options = options;
        Redis = redis;
        Backend = backend;
        _silos = new OtunProcess?[options.Silos];
        _gateways = new OtunProcess?[options.Gateways];
        _agents = new OtunProcess?[options.Agents];
        _siloPorts = [.. Enumerable.Range(0, options.Silos).Select(_ => (Ports.Free(), Ports.Free(), Ports.Free()))];
        _gatewayPorts = [.. Enumerable.Range(0, options.Gateways).Select(_ => (Ports.Free(), Ports.Free(), Ports.Free(), Ports.Free()))];
        _agentTokens = [.. Enumerable.Range(0, options.Agents).Select(_ => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16)))];
    }

    /// <summary>Starts redis, the backend, then silos, gateways and agents, each awaited until it printed its ready line.</summary>
    public static async Task<ClusterRig> StartAsync(ClusterRigOptions? options = null)
    {
        options ??= new ClusterRigOptions();
        var redis = await RedisServer.StartAsync(options.RedisArgs.ToArray(), options.RedisPassword, options.RedisConnectionString);
        TestBackend backend;
        try
        {
            backend = await TestBackend.StartAsync();
        }
        catch
        {
            await redis.DisposeAsync();
            throw;
        }
        var rig = new ClusterRig(options, redis, backend);
        try
        {
            await rig.StartAllAsync();
        }
        catch
        {
            await rig.DisposeAsync();
            throw;
        }
        return rig;
    }

    /// <summary>Starts every process that is not running (silos, then gateways, then agents) and waits until each is ready.</summary>
    public async Task StartAllAsync()
    {
        for (int i = 0; i < _silos.Length; i++)
        {
            if (_silos[i] is not { HasExited: false })
            {
                await StartSiloAsync(i);
            }
        }
        await Task.WhenAll(Enumerable.Range(0, _gateways.Length).Where(i => _gateways[i] is not { HasExited: false }).Select(StartGatewayAsync));
        await Task.WhenAll(Enumerable.Range(0, _agents.Length).Where(i => _agents[i] is not { HasExited: false }).Select(StartAgentAsync));
    }

    public OtunProcess Silo(int i) => _silos[i] ?? throw new InvalidOperationException($"silo-{i + 1} was never started");

    public OtunProcess Gateway(int i) => _gateways[i] ?? throw new InvalidOperationException($"gateway-{i + 1} was never started");

    public OtunProcess Agent(int i) => _agents[i] ?? throw new InvalidOperationException($"agent-{i + 1} was never started");

    public Uri GatewayIngressUrl(int i) => new($"http://127.0.0.1:{_gatewayPorts[i].Ingress}");

    /// <summary>Gateway i's cleartext HTTP/2 ingress (with <see cref="ClusterRigOptions.H2cIngress"/>).</summary>
    public Uri GatewayH2cUrl(int i) => new($"http://127.0.0.1:{_gatewayPorts[i].H2c}");

    public Uri GatewayTunnelUrl(int i) => new($"http://127.0.0.1:{_gatewayPorts[i].Tunnel}");

    public Uri GatewayAdminUrl(int i) => new($"http://127.0.0.1:{_gatewayPorts[i].Admin}");

    public Uri SiloAdminUrl(int i) => new($"http://127.0.0.1:{_siloPorts[i].Admin}");

    /// <summary>An HTTP client for gateway i's admin API, with the bearer token set.</summary>
    public HttpClient AdminClient(int gateway = 0)
    {
        var client = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { BaseAddress = GatewayAdminUrl(gateway), Timeout = TimeSpan.FromSeconds(30) };
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", AdminToken);
        return client;
    }

    /// <summary>GET path through gateway i's ingress with the given Host header.</summary>
    public async Task<HttpResponseMessage> GetAsync(int gateway, string host, string path, HttpCompletionOption completion = HttpCompletionOption.ResponseContentRead)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(GatewayIngressUrl(gateway), path));
        request.Headers.Host = host;
        return await Client.SendAsync(request, completion);
    }

    /// <summary>Polls GET path through gateway i until it answers <paramref name="expected"/>; fails with the last answer.</summary>
    public async Task WaitForStatusAsync(int gateway, string host, string path, HttpStatusCode expected, TimeSpan timeout)
    {
        string last = "no answer yet";
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            try
            {
                using var response = await GetAsync(gateway, host, path);
                if (response.StatusCode == expected)
                {
                    return;
                }
                last = $"{(int)response.StatusCode}: {Truncate(await response.Content.ReadAsStringAsync())}";
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or IOException)
            {
                last = ex.GetType().Name + ": " + ex.Message;
            }
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"GET {path} (Host: {host}) through gateway-{gateway + 1} never answered {(int)expected} within {timeout.TotalSeconds:0.#} s; last: {last}\n{Describe()}");
            }
            await Task.Delay(100);
        }
    }

    private static string Truncate(string text) => text.Length > 300 ? text[..300] + "..." : text;

    public async Task StartSiloAsync(int i)
    {
        var (silo, orleansGateway, admin) = _siloPorts[i];
        string name = $"silo-{i + 1}";
        await ReplaceAsync(_silos, i, OtunProcess.Start(name, "silo",
            [.. ClusterArgs(), "--silo-port", silo.ToString(), "--gateway-port", orleansGateway.ToString(), "--silo-admin", $"http://127.0.0.1:{admin}",
             .. Options.SiloArgs, .. ExtraArgs(name)]));
    }

    public async Task StartGatewayAsync(int i)
    {
        var (ingress, tunnel, admin, h2c) = _gatewayPorts[i];
        string name = $"gateway-{i + 1}";
        List<string> args = [.. ClusterArgs(), "--gateway-id", name,
            "--ingress", $"http://127.0.0.1:{ingress}", "--tunnel", $"http://127.0.0.1:{tunnel}", "--admin", $"http://127.0.0.1:{admin}",
            "--set", $"Gateway:AdminTokenSha256={AgentCredentialStore.Hash(AdminToken)}",
            "--set", $"Gateway:DrainDelay={Options.DrainDelay}"];
        if (Options.H2cIngress)
        {
            args.AddRange(["--set", $"Gateway:H2cIngress=http://127.0.0.1:{h2c}"]);
        }
        foreach (var host in Options.SeededHosts)
        {
            args.AddRange(["--route", $"{host}={Options.Service}"]);
        }
        if (Options.ExposeGrpc)
        {
            args.AddRange(["--route", "grpc.test=grpc", "--route", "127.0.0.1/orleanstunnel.tests.Echo=grpc"]);
        }
        string services = Options.ExposeGrpc ? Options.Service + ",grpc" : Options.Service;
        for (int a = 0; a < _agentTokens.Length; a++)
        {
            args.AddRange(["--agent", $"agent-{a + 1}:{AgentCredentialStore.Hash(_agentTokens[a])}:{services}"]);
        }
        await ReplaceAsync(_gateways, i, OtunProcess.Start(name, "gateway", [.. args, .. Options.GatewayArgs, .. ExtraArgs(name)]));
    }

    public async Task StartAgentAsync(int i)
    {
        string name = $"agent-{i + 1}";
        List<string> args = ["--agent-id", name, "--connections", Options.Connections.ToString()];
        for (int g = 0; g < _gatewayPorts.Length; g++)
        {
            args.AddRange(["--gateway", GatewayTunnelUrl(g).ToString().TrimEnd('/')]);
        }
        args.AddRange(["--expose", Backend.Url, "--service", Options.Service]);
        if (Options.ExposeGrpc)
        {
            args.AddRange(["--expose", $"h2c://127.0.0.1:{Backend.H2cPort}", "--service", "grpc"]);
        }
        await ReplaceAsync(_agents, i, OtunProcess.Start(name, "agent", [.. args, .. Options.AgentArgs, .. ExtraArgs(name)],
            new Dictionary<string, string> { ["OTUN_Agent__Token"] = _agentTokens[i] }));
    }

    private string[] ClusterArgs() => ["--redis", Redis.ConnectionString, "--cluster-id", Options.ClusterId, "--service-id", Options.ServiceId];

    private IEnumerable<string> ExtraArgs(string name) => Options.ArgsFor.TryGetValue(name, out var extra) ? extra : [];

    private async Task ReplaceAsync(OtunProcess?[] slot, int i, OtunProcess process)
    {
        if (slot[i] is { } previous)
        {
            await previous.DisposeAsync();
        }
        slot[i] = process;
        await process.ReadyAsync(Options.ReadyTimeout);
    }

    /// <summary>The running process of a role by index ("silo", "gateway", "agent").</summary>
    public OtunProcess Process(string role, int i) => role switch
    {
        "silo" => Silo(i),
        "gateway" => Gateway(i),
        "agent" => Agent(i),
        _ => throw new ArgumentException($"unknown role '{role}'", nameof(role)),
    };

    /// <summary>Starts process i of a role again (same ports and arguments) and waits until it is ready.</summary>
    public Task StartAsync(string role, int i) => role switch
    {
        "silo" => StartSiloAsync(i),
        "gateway" => StartGatewayAsync(i),
        "agent" => StartAgentAsync(i),
        _ => throw new ArgumentException($"unknown role '{role}'", nameof(role)),
    };

    /// <summary>kill -9 silo i.</summary>
    public void KillSilo(int i) => Silo(i).Kill();

    /// <summary>kill -9 gateway i.</summary>
    public void KillGateway(int i) => Gateway(i).Kill();

    /// <summary>kill -9 agent i.</summary>
    public void KillAgent(int i) => Agent(i).Kill();

    /// <summary>Kills silo i if it still runs and starts it again (same ports and arguments); waits until it is ready.</summary>
    public Task RestartSiloAsync(int i) => StartSiloAsync(i);

    public Task RestartGatewayAsync(int i) => StartGatewayAsync(i);

    public Task RestartAgentAsync(int i) => StartAgentAsync(i);

    /// <summary>kill -9 redis and start it again on the same port and data directory.</summary>
    public Task RestartRedisAsync() => Redis.RestartAsync();

    /// <summary>SIGTERM to every otun process, agents first, then gateways, then silos; each must exit within 30 s.</summary>
    public async Task TerminateAllAsync()
    {
        foreach (var group in new[] { _agents, _gateways, _silos })
        {
            await Task.WhenAll(group.OfType<OtunProcess>().Where(p => !p.HasExited).Select(p => p.TerminateAsync()));
        }
    }

    /// <summary>Every process with its pid and last lines (for failure messages).</summary>
    public string Describe() => string.Join("\n", _silos.Concat(_gateways).Concat(_agents).OfType<OtunProcess>()
        .Select(p => $"--- {p.Name} pid {p.Pid}{(p.HasExited ? $" exited ({p.ExitCode})" : "")}:\n{p.Tail(15)}"));

    public async ValueTask DisposeAsync()
    {
        foreach (var process in _agents.Concat(_gateways).Concat(_silos).OfType<OtunProcess>())
        {
            await process.DisposeAsync();
        }
        Client.Dispose();
        await Backend.DisposeAsync();
        await Redis.DisposeAsync();
    }
}
