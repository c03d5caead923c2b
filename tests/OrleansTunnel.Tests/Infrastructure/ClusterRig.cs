using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using OrleansTunnel.Gateway.Auth;

namespace OrleansTunnel.Tests.Infrastructure;

/// <summary>
/// A redis-server on a free loopback port with append-only persistence in a temp directory, so the
/// cluster's membership and durable grain state survive <see cref="RestartAsync"/> (appendfsync always:
/// even a kill -9 right after a write keeps it, so tests do not depend on the once-a-second fsync).
/// </summary>
public sealed class RedisServer : IAsyncDisposable
{
    private Process? _process;
    private readonly List<string> _output = [];

    public int Port { get; } = Ports.Free();

    public string Directory { get; } = Path.Combine(Path.GetTempPath(), "otun-redis-" + Guid.NewGuid().ToString("N")[..8]);

    /// <summary>The StackExchange.Redis connection string (Cluster:Redis).</summary>
    public string ConnectionString => _connectionString ?? $"127.0.0.1:{Port}";

    private string[] _extraArgs = [];
    private string? _password;
    private string? _connectionString;

    public int? Pid => _process is { HasExited: false } p ? p.Id : null;

    private RedisServer()
    {
    }

    /// <summary>redis-server on PATH or in /usr/bin, else null.</summary>
    public static string? Executable() =>
        new[] { "/usr/bin/redis-server", "/usr/local/bin/redis-server" }
            .Concat((Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries).Select(d => Path.Combine(d, "redis-server")))
            .FirstOrDefault(File.Exists);

    /// <summary>
    /// Starts redis-server; <paramref name="extraArgs"/> are added to its command line (e.g. a TLS port),
    /// <paramref name="password"/> is its requirepass, <paramref name="connectionString"/> replaces the
    /// plain one the nodes get.
    /// </summary>
    public static async Task<RedisServer> StartAsync(string[]? extraArgs = null, string? password = null, string? connectionString = null)
    {
        var redis = new RedisServer { _extraArgs = extraArgs ?? [], _password = password, _connectionString = connectionString };
        System.IO.Directory.CreateDirectory(redis.Directory);
        try
        {
            await redis.LaunchAsync();
        }
        catch
        {
            await redis.DisposeAsync();
            throw;
        }
        return redis;
    }

    private async Task LaunchAsync()
    {
        string executable = Executable() ?? throw new InvalidOperationException("redis-server is not installed (apt-get install -y redis-server)");
        var start = new ProcessStartInfo(executable) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in new[] { "--port", Port.ToString(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--dir", Directory }
            .Concat(_extraArgs).Concat(_password is null ? [] : ["--requirepass", _password]))
        {
            start.ArgumentList.Add(arg);
        }
        var process = Process.Start(start)!;
        process.OutputDataReceived += (_, e) => Collect(e.Data);
        process.ErrorDataReceived += (_, e) => Collect(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _process = process;
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (!await PingAsync())
        {
            if (process.HasExited || DateTime.UtcNow > deadline)
            {
                throw new InvalidOperationException($"redis-server on port {Port} did not answer PING:\n{string.Join("\n", Output)}");
            }
            await Task.Delay(50);
        }
    }

    private void Collect(string? line)
    {
        if (line is not null)
        {
            lock (_output)
            {
                _output.Add(line);
            }
        }
    }

    public string[] Output
    {
        get
        {
            lock (_output)
            {
                return [.. _output];
            }
        }
    }

    /// <summary>True when redis answers PING with +PONG (raw RESP over TCP).</summary>
    public Task<bool> PingAsync() => OrleansTunnel.Cli.ClusterCommand.RedisAnswersAsync(Port, _password);

    /// <summary>kill -9: no shutdown, no final fsync (the append-only file is what survives).</summary>
    public async Task KillAsync()
    {
        if (_process is { HasExited: false } process)
        {
            process.Kill();
            await process.WaitForExitAsync().Within(TimeSpan.FromSeconds(10));
        }
    }

    /// <summary>Kills redis if it runs, then starts it again on the same port with the same data directory.</summary>
    public async Task RestartAsync()
    {
        await KillAsync();
        _process?.Dispose();
        await LaunchAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await KillAsync();
        _process?.Dispose();
        try
        {
            if (System.IO.Directory.Exists(Directory))
            {
                System.IO.Directory.Delete(Directory, recursive: true);
            }
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>
/// One `otun &lt;role&gt; args...` process (dotnet otun.dll from the test output directory): stdout and
/// stderr collected, lines awaited by prefix, killed (SIGKILL) or terminated (SIGTERM) on demand.
/// </summary>
public sealed class OtunProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly List<string> _stdout = [];
    private readonly List<string> _all = [];
    private readonly List<(string Prefix, TaskCompletionSource<string> Seen)> _waiters = [];
    private readonly TaskCompletionSource _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>A name for messages, e.g. "silo-1".</summary>
    public string Name { get; }

    /// <summary>silo, gateway or agent.</summary>
    public string Role { get; }

    public IReadOnlyList<string> Arguments { get; }

    public IReadOnlyDictionary<string, string> Environment { get; }

    public int Pid { get; }

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    private OtunProcess(string name, string role, IReadOnlyList<string> arguments, IReadOnlyDictionary<string, string> environment)
    {
        Name = name;
        Role = role;
        Arguments = arguments;
        Environment = environment;
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "otun.dll"));
        start.ArgumentList.Add(role);
        foreach (var arg in arguments)
        {
            start.ArgumentList.Add(arg);
        }
        foreach (var (key, value) in environment)
        {
            start.Environment[key] = value;
        }
        _process = new Process { StartInfo = start, EnableRaisingEvents = true };
        _process.OutputDataReceived += (_, e) => OnLine(e.Data, stdout: true);
        _process.ErrorDataReceived += (_, e) => OnLine(e.Data, stdout: false);
        _process.Exited += (_, _) => _exited.TrySetResult();
        _process.Start();
        Pid = _process.Id;
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    /// <summary>Starts `otun <paramref name="role"/>` (does not wait for anything).</summary>
    public static OtunProcess Start(string name, string role, IEnumerable<string> arguments, IReadOnlyDictionary<string, string>? environment = null) =>
        new(name, role, [.. arguments], environment ?? new Dictionary<string, string>());

    /// <summary>The same command line and environment again, as a new process.</summary>
    public OtunProcess StartAgain() => new(Name, Role, Arguments, Environment);

    /// <summary>What the process printed on standard output so far.</summary>
    public string[] Lines
    {
        get
        {
            lock (_all)
            {
                return [.. _stdout];
            }
        }
    }

    /// <summary>The last lines of standard output and error, for failure messages.</summary>
    public string Tail(int count = 40)
    {
        lock (_all)
        {
            return string.Join("\n", _all.Skip(Math.Max(0, _all.Count - count)));
        }
    }

    private void OnLine(string? line, bool stdout)
    {
        if (line is null)
        {
            return;
        }
        List<TaskCompletionSource<string>> matched = [];
        lock (_all)
        {
            _all.Add((stdout ? "" : "! ") + line);
            if (stdout)
            {
                _stdout.Add(line);
                foreach (var waiter in _waiters.Where(w => line.StartsWith(w.Prefix, StringComparison.Ordinal)).ToList())
                {
                    _waiters.Remove(waiter);
                    matched.Add(waiter.Seen);
                }
            }
        }
        foreach (var seen in matched)
        {
            seen.TrySetResult(line);
        }
    }

    /// <summary>Waits for a standard-output line starting with <paramref name="prefix"/> (also one printed before the call).</summary>
    public async Task<string> WaitForLineAsync(string prefix, TimeSpan timeout)
    {
        var seen = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_all)
        {
            var earlier = _stdout.FirstOrDefault(l => l.StartsWith(prefix, StringComparison.Ordinal));
            if (earlier is not null)
            {
                return earlier;
            }
            _waiters.Add((prefix, seen));
        }
        var first = await Task.WhenAny(seen.Task, _exited.Task, Task.Delay(timeout));
        if (first == seen.Task)
        {
            return await seen.Task;
        }
        // An exit may race the last lines: give the reader a moment to deliver them.
        if (first == _exited.Task && await Task.WhenAny(seen.Task, Task.Delay(500)) == seen.Task)
        {
            return await seen.Task;
        }
        string why = first == _exited.Task ? $"exited (code {_process.ExitCode})" : $"did not print it within {timeout.TotalSeconds:0.#} s";
        throw new TimeoutException($"{Name} (pid {Pid}) waiting for '{prefix}': {why}. Last output:\n{Tail()}");
    }

    /// <summary>Waits for "otun &lt;role&gt;: ready".</summary>
    public Task<string> ReadyAsync(TimeSpan? timeout = null) => WaitForLineAsync($"otun {Role}: ready", timeout ?? TimeSpan.FromSeconds(60));

    /// <summary>SIGKILL: the process dies at once, as on a crash or kill -9.</summary>
    public void Kill()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill();
            }
        }
        catch (InvalidOperationException)
        {
        }
        _process.WaitForExit(10_000);
    }

    /// <summary>SIGTERM (what a service manager or Ctrl-C does); waits for the exit and returns its code.</summary>
    public async Task<int> TerminateAsync(TimeSpan? timeout = null)
    {
        if (!_process.HasExited)
        {
            _ = SendSignal(Pid, 15);
        }
        await _process.WaitForExitAsync().Within(timeout ?? TimeSpan.FromSeconds(30));
        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        Kill();
        await _exited.Task.WaitAsync(TimeSpan.FromSeconds(10)).ContinueWith(_ => { }, TaskScheduler.Default);
        _process.Dispose();
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int SendSignal(int pid, int signal);
}

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
