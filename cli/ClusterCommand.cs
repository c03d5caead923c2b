using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using OrleansTunnel.Demo;
using OrleansTunnel.Gateway.Auth;

namespace OrleansTunnel.Cli;

/// <summary>
/// `otun cluster`: a whole cluster on one machine as separate processes — a redis-server (clustering
/// and durable state), silos, gateways and agents, each a child `otun` process — to watch failover by
/// killing one of them. Prints `&lt;role&gt;-&lt;n&gt; pid=&lt;pid&gt;` per process and `otun cluster: ready`
/// once the agents are connected and every gateway's ingress answers.
/// </summary>
public static class ClusterCommand
{
    // Pseudo configuration keys of the command's own flags (everything else in Args.Config comes from --set
    // and is forwarded to the children by section).
    private const string P = "@cluster:";

    private static readonly Args.Flag[] Flags =
    [
        new("--data", P + "data", "data directory: redis/ (appendonly), logs/<role>-<n>.log, admin-token", ".data/cluster"),
        new("--cluster-id", P + "cluster-id", "Orleans cluster id", "otun-cluster"),
        new("--service-id", P + "service-id", "Orleans service id (keys durable state)", "orleans-tunnel"),
        new("--redis-server", P + "redis-server", "the redis-server executable", "redis-server"),
        new("--redis-port", P + "redis-port", "redis port (loopback)", "6390"),
        new("--silos", P + "silos", "number of silos", "2"),
        new("--gateways", P + "gateways", "number of gateways", "2"),
        new("--agents", P + "agents", "number of agents", "2"),
        new("--connections", P + "connections", "tunnel connections per agent", "2"),
        new("--port-offset", P + "port-offset", "added to every port below (e.g. 1000 for a second cluster next to the first)", "0"),
        new("--silo-port", P + "silo-port", "silo-to-silo port of silo-1; silo-n: +n-1", "11111"),
        new("--gateway-port", P + "gateway-port", "Orleans client port of silo-1; silo-n: +n-1", "30000"),
        new("--silo-admin-port", P + "silo-admin-port", "admin port (/healthz, /readyz) of silo-1; silo-n: +n-1", "9091"),
        new("--dashboard-port", P + "dashboard-port", "Orleans dashboard port on silo-1; 0: none", "8090"),
        new("--ingress-port", P + "ingress-port", "ingress port of gateway-1; gateway-n: +100*(n-1)", "8080"),
        new("--tunnel-port", P + "tunnel-port", "tunnel port of gateway-1; gateway-n: +100*(n-1)", "7070"),
        new("--admin-port", P + "admin-port", "admin port of gateway-1; gateway-n: +100*(n-1)", "9090"),
    ];

    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(10);

    public static async Task<int> RunAsync(string[] argv)
    {
        var args = Args.Parse(argv, Flags, allowExpose: true, allowRoutes: false, allowAgents: false, allowGateways: false);
        if (args.Help)
        {
            Help();
            return 0;
        }
        if (args.Positional.Count > 0)
        {
            throw new CliException($"unexpected argument '{args.Positional[0]}'; see otun cluster --help");
        }

        string Opt(string name, string fallback) => args.Config.GetValueOrDefault(P + name) ?? fallback;
        int Int(string name, int fallback, int min, int max)
        {
            string text = Opt(name, fallback.ToString(System.Globalization.CultureInfo.InvariantCulture));
            if (!int.TryParse(text, System.Globalization.CultureInfo.InvariantCulture, out int value) || value < min || value > max)
            {
                throw new CliException($"--{name} takes a number from {min} to {max}, not '{text}'");
            }
            return value;
        }

        int offset = Int("port-offset", 0, 0, 50000);
        int Port(string name, int fallback)
        {
            int port = Int(name, fallback, 0, 65535);
            return port == 0 ? 0 : port + offset;
        }
        int silos = Int("silos", 2, 1, 9), gateways = Int("gateways", 2, 1, 9), agents = Int("agents", 2, 0, 9);
        int connections = Int("connections", 2, 1, 64);
        int redisPort = Port("redis-port", 6390);
        int siloPort = Port("silo-port", 11111), orleansGatewayPort = Port("gateway-port", 30000), siloAdminPort = Port("silo-admin-port", 9091);
        int dashboardPort = Port("dashboard-port", 8090);
        int ingressPort = Port("ingress-port", 8080), tunnelPort = Port("tunnel-port", 7070), adminPort = Port("admin-port", 9090);
        string clusterId = Opt("cluster-id", "otun-cluster"), serviceId = Opt("service-id", "orleans-tunnel");
        string dataDirectory = Path.GetFullPath(Opt("data", Path.Combine(".data", "cluster")));
        string redisServer = FindExecutable(Opt("redis-server", "redis-server"))
            ?? throw new CliException($"{Opt("redis-server", "redis-server")} not found; install Redis (apt-get install redis-server) or pass --redis-server PATH");

        // Every port the cluster listens on, checked up front so a clash is a clear message, not a child's crash.
        var ports = new List<(int Port, string What)> { (redisPort, "redis") };
        for (int i = 0; i < silos; i++)
        {
            ports.Add((siloPort + i, $"silo-{i + 1} silo port"));
            ports.Add((orleansGatewayPort + i, $"silo-{i + 1} gateway port"));
            ports.Add((siloAdminPort + i, $"silo-{i + 1} admin"));
        }
        if (dashboardPort > 0)
        {
            ports.Add((dashboardPort, "silo-1 dashboard"));
        }
        for (int i = 0; i < gateways; i++)
        {
            ports.Add((ingressPort + 100 * i, $"gateway-{i + 1} ingress"));
            ports.Add((tunnelPort + 100 * i, $"gateway-{i + 1} tunnel"));
            ports.Add((adminPort + 100 * i, $"gateway-{i + 1} admin"));
        }
        foreach (var dup in ports.GroupBy(p => p.Port).Where(g => g.Count() > 1))
        {
            throw new CliException($"port {dup.Key} is used twice ({string.Join(", ", dup.Select(d => d.What))}); change the port flags");
        }
        foreach (var (port, what) in ports)
        {
            if (port > 65535 || !PortIsFree(port))
            {
                throw new CliException($"port {port} ({what}) is in use or invalid; is another otun cluster running? pick other ports (--port-offset N)");
            }
        }

        // --set Section:Key=Value goes to the roles that read that section.
        var sets = args.Config.Where(kv => !kv.Key.StartsWith(P, StringComparison.Ordinal)).ToList();
        string[] roleSections = ["Cluster", "Gateway", "Agent"];
        bool InSection(string key, string section) => key.StartsWith(section + ":", StringComparison.OrdinalIgnoreCase);
        IEnumerable<string> SetsFor(params string[] sections) => sets
            .Where(kv => sections.Any(s => InSection(kv.Key, s)) || !roleSections.Any(s => InSection(kv.Key, s)))
            .SelectMany(kv => new[] { "--set", $"{kv.Key}={kv.Value}" });

        Directory.CreateDirectory(Path.Combine(dataDirectory, "redis"));
        Directory.CreateDirectory(Path.Combine(dataDirectory, "logs"));
        string adminTokenFile = AdminCli.EnsureDevAdminToken(dataDirectory);
        string adminTokenSha = AgentCredentialStore.Hash(File.ReadAllText(adminTokenFile).Trim());

        using var signal = new ShutdownSignal();
        var children = new List<Child>();
        WebApplication? demo = null;
        int exitCode = 0;
        try
        {
            // The services the agents expose: the demo backend in this process, or --expose URL --host NAME.
            (demo, var services) = await Cli.ExposedServicesAsync(args);

            Console.WriteLine($"otun cluster: redis, {silos} silo(s), {gateways} gateway(s), {agents} agent(s) as separate processes (pid {Environment.ProcessId})");
            Console.WriteLine($"  data      {dataDirectory}  (logs in logs/<role>-<n>.log)");

            // Redis first: clustering and durable state (appendonly, so state survives a redis restart).
            string redisDirectory = Path.Combine(dataDirectory, "redis");
            var redis = Child.Start("redis-1", null, redisServer,
                ["--port", Inv(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes", "--dir", redisDirectory], null, dataDirectory);
            children.Add(redis);
            Console.WriteLine($"redis-1 pid={redis.Pid}");
            Console.WriteLine($"  redis     127.0.0.1:{redisPort}  (appendonly in {redisDirectory})");
            await Until(signal, redis, () => RedisAnswersAsync(redisPort), "redis to answer PING");
            string redisConnection = $"127.0.0.1:{redisPort}";
            string[] clusterArgs = ["--redis", redisConnection, "--cluster-id", clusterId, "--service-id", serviceId];

            var (command, prefix) = OtunCommand();
            for (int i = 0; i < silos; i++)
            {
                List<string> siloArgs = [.. prefix, "silo", .. clusterArgs,
                    "--silo-port", Inv(siloPort + i), "--gateway-port", Inv(orleansGatewayPort + i),
                    "--silo-admin", $"http://127.0.0.1:{siloAdminPort + i}"];
                if (i == 0 && dashboardPort > 0)
                {
                    siloArgs.AddRange(["--set", $"Cluster:Dashboard=http://127.0.0.1:{dashboardPort}"]);
                }
                siloArgs.AddRange(SetsFor("Cluster"));
                var silo = Child.Start($"silo-{i + 1}", "otun silo: ready", command, siloArgs, null, dataDirectory);
                children.Add(silo);
                Console.WriteLine($"silo-{i + 1} pid={silo.Pid}");
                Console.WriteLine($"  admin     http://127.0.0.1:{siloAdminPort + i}  (/healthz, /readyz)");
                if (i == 0 && dashboardPort > 0)
                {
                    Console.WriteLine($"  dashboard http://127.0.0.1:{dashboardPort}/dashboard");
                }
                await Until(signal, silo, silo.Ready, "silo-" + (i + 1) + " to be ready");
            }

            // One fresh token per agent and run: the agent gets it in its environment, the gateways its hash.
            var tokens = Enumerable.Range(0, agents).Select(_ => NewTokenValue()).ToArray();
            string serviceList = string.Join(',', services.Select(s => s.Name).Distinct(StringComparer.Ordinal));
            var gatewayStarts = new List<Child>();
            for (int i = 0; i < gateways; i++)
            {
                int step = 100 * i;
                List<string> gatewayArgs = [.. prefix, "gateway", .. clusterArgs,
                    "--gateway-id", $"gateway-{i + 1}",
                    "--ingress", $"http://127.0.0.1:{ingressPort + step}", "--tunnel", $"http://127.0.0.1:{tunnelPort + step}",
                    "--admin", $"http://127.0.0.1:{adminPort + step}",
                    "--set", $"Gateway:AdminTokenSha256={adminTokenSha}"];
                foreach (var (name, _, hosts) in services)
                {
                    foreach (var host in hosts)
                    {
                        gatewayArgs.AddRange(["--route", $"{host}={name}"]);
                    }
                }
                for (int a = 0; a < agents; a++)
                {
                    gatewayArgs.AddRange(["--agent", $"agent-{a + 1}:{AgentCredentialStore.Hash(tokens[a])}:{serviceList}"]);
                }
                gatewayArgs.AddRange(SetsFor("Cluster", "Gateway"));
                var gateway = Child.Start($"gateway-{i + 1}", "otun gateway: ready", command, gatewayArgs, null, dataDirectory);
                children.Add(gateway);
                gatewayStarts.Add(gateway);
                Console.WriteLine($"gateway-{i + 1} pid={gateway.Pid}");
                Console.WriteLine($"  ingress   http://127.0.0.1:{ingressPort + step}");
                Console.WriteLine($"  tunnel    http://127.0.0.1:{tunnelPort + step}");
                Console.WriteLine($"  admin     http://127.0.0.1:{adminPort + step}  (/healthz, /readyz, /api: otun admin --url http://127.0.0.1:{adminPort + step} --data {dataDirectory} routes)");
            }
            foreach (var gateway in gatewayStarts)
            {
                await Until(signal, gateway, gateway.Ready, gateway.Name + " to be ready");
            }

            var agentStarts = new List<Child>();
            for (int a = 0; a < agents; a++)
            {
                List<string> agentArgs = [.. prefix, "agent", "--agent-id", $"agent-{a + 1}", "--connections", Inv(connections)];
                for (int i = 0; i < gateways; i++)
                {
                    agentArgs.AddRange(["--gateway", $"http://127.0.0.1:{tunnelPort + 100 * i}"]);
                }
                foreach (var (name, url, _) in services)
                {
                    agentArgs.AddRange(["--expose", url, "--service", name]);
                }
                agentArgs.AddRange(SetsFor("Agent"));
                // The token travels in the environment, never on the command line (ps shows that).
                var agent = Child.Start($"agent-{a + 1}", "otun agent: ready", command, agentArgs,
                    new Dictionary<string, string> { ["OTUN_Agent__Token"] = tokens[a] }, dataDirectory);
                children.Add(agent);
                agentStarts.Add(agent);
                Console.WriteLine($"agent-{a + 1} pid={agent.Pid}");
            }
            foreach (var (name, url, hosts) in services)
            {
                Console.WriteLine($"  service   {name} -> {url}  (hosts: {string.Join(", ", hosts)})");
            }
            foreach (var agent in agentStarts)
            {
                await Until(signal, agent, agent.Ready, agent.Name + " to connect a tunnel");
            }

            // Ready means a visitor's request succeeds through every gateway.
            string path = demo is not null ? "/hello" : "/";
            string firstHost = services[0].Hosts[0];
            using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false }) { Timeout = TimeSpan.FromSeconds(5) };
            for (int i = 0; i < gateways; i++)
            {
                string url = $"http://127.0.0.1:{ingressPort + 100 * i}{path}";
                await Until(signal, null, () => AnswersAsync(http, url, firstHost), $"GET {url} (Host: {firstHost}) through gateway-{i + 1}");
            }

            Console.WriteLine("try:");
            for (int i = 0; i < gateways; i++)
            {
                string ingress = $"http://127.0.0.1:{ingressPort + 100 * i}";
                Console.WriteLine(demo is not null ? $"  curl {ingress}/hello" : $"  curl -H 'Host: {firstHost}' {ingress}/");
            }
            Console.WriteLine("  kill -9 <pid> of any process above and watch the others carry on; Ctrl-C stops them all");
            Console.WriteLine($"otun cluster: ready (pid {Environment.ProcessId})");
            await Task.Delay(Timeout.Infinite, signal.Token).ContinueWith(_ => { }, TaskScheduler.Default);
        }
        catch (StartupAbortedException ex)
        {
            if (ex.Message.Length > 0)
            {
                Console.Error.WriteLine($"otun cluster: {ex.Message}");
                exitCode = 1;
            }
        }
        finally
        {
            Console.WriteLine("otun cluster: stopping");
            // Agents first (visitors' requests drain), then gateways, silos, and redis last.
            foreach (string role in new[] { "agent", "gateway", "silo", "redis" })
            {
                await Task.WhenAll(children.Where(c => c.Role == role).Select(c => c.StopAsync(StopTimeout)));
            }
            foreach (var child in children)
            {
                child.Dispose();
            }
            if (demo is not null)
            {
                await demo.StopAsync(TimeSpan.FromSeconds(5).ToToken());
                await demo.DisposeAsync();
            }
            Console.WriteLine("otun cluster: stopped");
        }
        return exitCode;
    }

    private static void Help()
    {
        Console.WriteLine("otun cluster: a cluster on this machine as separate processes — redis-server, silos, gateways and agents —");
        Console.WriteLine("to try failover (kill -9 any of them). Without --expose, the demo backend runs in this process.");
        Console.WriteLine();
        Console.WriteLine("usage: otun cluster [--expose URL --host NAME [--host NAME]... [--service NAME]]... [flags]");
        Console.WriteLine();
        foreach (var f in Flags)
        {
            Console.WriteLine($"  {f.Name,-22} {f.Help} (default {f.Default})");
        }
        Console.WriteLine($"  {"--expose URL",-22} expose your own backend instead of the demo (repeatable); every agent exposes it");
        Console.WriteLine($"  {"--host NAME",-22} a host name routed to the preceding --expose (repeatable)");
        Console.WriteLine($"  {"--service NAME",-22} the service name of the preceding --expose (default: its first host)");
        Console.WriteLine($"  {"--set KEY=VALUE",-22} passed on to the roles that read it: Cluster:* silos and gateways, Gateway:* gateways,");
        Console.WriteLine($"  {"",-22} Agent:* agents, anything else all of them");
        Console.WriteLine($"  {"-h, --help",-22} this help");
        Console.WriteLine();
        Console.WriteLine("Each process is printed as '<role>-<n> pid=<pid>' (redis as 'redis-1'); 'otun cluster: ready' follows once");
        Console.WriteLine("every agent has a tunnel up and every gateway's ingress answers. Child output is relayed prefixed");
        Console.WriteLine("'[<role>-<n>] ' and written to <data>/logs/<role>-<n>.log. A child that exits is reported as");
        Console.WriteLine("'<role>-<n> exited (code N)'; the others keep running. Ctrl-C stops agents, gateways, silos, then redis.");
    }

    /// <summary>How to start this otun again: the apphost itself, or `dotnet otun.dll`.</summary>
    private static (string Command, string[] Prefix) OtunCommand()
    {
        string process = Environment.ProcessPath ?? throw new CliException("cannot tell which executable is running");
        if (string.Equals(Path.GetFileNameWithoutExtension(process), "dotnet", StringComparison.OrdinalIgnoreCase))
        {
            string dll = Assembly.GetEntryAssembly()?.Location is { Length: > 0 } location ? location : Path.Combine(AppContext.BaseDirectory, "otun.dll");
            return (process, [dll]);
        }
        return (process, []);
    }

    private static string Inv(int value) => value.ToString(System.Globalization.CultureInfo.InvariantCulture);

    private static string NewTokenValue() =>
        Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private static CancellationToken ToToken(this TimeSpan timeout) => new CancellationTokenSource(timeout).Token;

    private static string? FindExecutable(string name)
    {
        if (name.Contains('/'))
        {
            return File.Exists(name) ? Path.GetFullPath(name) : null;
        }
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            string candidate = Path.Combine(dir, name);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }
        return null;
    }

    private static bool PortIsFree(int port)
    {
        try
        {
            // SO_REUSEADDR as Kestrel and redis set it: a port with only TIME_WAIT connections left counts as free.
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            socket.Bind(new IPEndPoint(IPAddress.Loopback, port));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    /// <summary>Polls a condition every 100 ms until it holds; a stop signal or the child's exit abort the start.</summary>
    private static async Task Until(ShutdownSignal signal, Child? child, Func<Task<bool>> condition, string what)
    {
        var started = Stopwatch.StartNew();
        bool warned = false;
        while (true)
        {
            if (signal.Token.IsCancellationRequested)
            {
                throw new StartupAbortedException("");
            }
            if (child is not null && child.HasExited)
            {
                throw new StartupAbortedException($"{child.Name} exited (code {child.ExitCode}) while waiting for {what}; see {child.LogPath}");
            }
            if (await condition())
            {
                return;
            }
            if (!warned && started.Elapsed > TimeSpan.FromSeconds(60))
            {
                Console.Error.WriteLine($"otun cluster: still waiting for {what} after 60 s (Ctrl-C to give up)");
                warned = true;
            }
            await Task.Delay(100, signal.Token).ContinueWith(_ => { }, TaskScheduler.Default);
        }
    }

    private static Task Until(ShutdownSignal signal, Child child, Task ready, string what) =>
        Until(signal, child, () => Task.FromResult(ready.IsCompletedSuccessfully), what);

    /// <summary>True when a redis-server on this loopback port answers PING with +PONG (raw RESP over TCP).</summary>
    public static async Task<bool> RedisAnswersAsync(int port)
    {
        try
        {
            using var client = new TcpClient();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(1));
            await client.ConnectAsync(IPAddress.Loopback, port, timeout.Token);
            var stream = client.GetStream();
            await stream.WriteAsync("PING\r\n"u8.ToArray(), timeout.Token);
            var buffer = new byte[64];
            int n = await stream.ReadAsync(buffer, timeout.Token);
            return Encoding.ASCII.GetString(buffer, 0, n).StartsWith("+PONG", StringComparison.Ordinal);
        }
        catch (Exception ex) when (ex is SocketException or IOException or OperationCanceledException)
        {
            return false;
        }
    }

    private static async Task<bool> AnswersAsync(HttpClient http, string url, string host)
    {
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, url);
            request.Headers.Host = host;
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            return (int)response.StatusCode < 500;
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or IOException)
        {
            return false;
        }
    }

    private sealed class StartupAbortedException(string message) : Exception(message);

    /// <summary>A child process: output relayed with a [name] prefix and written to its log file.</summary>
    private sealed class Child : IDisposable
    {
        private readonly Process _process;
        private readonly StreamWriter _log;
        private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly string? _readyPrefix;
        private volatile bool _stopping;
        private bool _logClosed;

        public string Name { get; }
        public string Role { get; }
        public string LogPath { get; }
        public int Pid { get; }
        public Task Ready => _ready.Task;

        public bool HasExited => _process.HasExited;
        public int ExitCode => _process.HasExited ? _process.ExitCode : -1;

        private Child(string name, string? readyPrefix, ProcessStartInfo start, string logPath)
        {
            Name = name;
            Role = name.Split('-')[0];
            _readyPrefix = readyPrefix;
            LogPath = logPath;
            _log = new StreamWriter(new FileStream(logPath, FileMode.Create, FileAccess.Write, FileShare.Read)) { AutoFlush = true };
            _process = new Process { StartInfo = start, EnableRaisingEvents = true };
            _process.OutputDataReceived += (_, e) => Line(e.Data, Console.Out);
            _process.ErrorDataReceived += (_, e) => Line(e.Data, Console.Error);
            _process.Exited += (_, _) =>
            {
                if (!_stopping)
                {
                    // Reported whenever it happens (during start-up the start is also aborted); the others keep running.
                    Console.WriteLine($"{Name} exited (code {SafeExitCode()})");
                }
            };
            if (!_process.Start())
            {
                throw new CliException($"could not start {name}");
            }
            Pid = _process.Id;
            _process.BeginOutputReadLine();
            _process.BeginErrorReadLine();
        }

        public static Child Start(string name, string? readyPrefix, string command, IEnumerable<string> args, IDictionary<string, string>? environment, string dataDirectory)
        {
            // setsid: the children are not in the terminal's process group, so Ctrl-C reaches only this process,
            // which then stops them in order (agents first, redis last). setsid execs, so the pid is the child's.
            bool setsid = File.Exists("/usr/bin/setsid");
            var start = new ProcessStartInfo(setsid ? "/usr/bin/setsid" : command)
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                RedirectStandardInput = false,
                UseShellExecute = false,
            };
            if (setsid)
            {
                start.ArgumentList.Add(command);
            }
            foreach (var arg in args)
            {
                start.ArgumentList.Add(arg);
            }
            foreach (var (key, value) in environment ?? new Dictionary<string, string>())
            {
                start.Environment[key] = value;
            }
            return new Child(name, readyPrefix, start, Path.Combine(dataDirectory, "logs", name + ".log"));
        }

        private void Line(string? line, TextWriter relay)
        {
            if (line is null)
            {
                return;
            }
            lock (_log)
            {
                if (!_logClosed)
                {
                    _log.WriteLine(line);
                }
            }
            relay.WriteLine($"[{Name}] {line}");
            if (_readyPrefix is not null && line.StartsWith(_readyPrefix, StringComparison.Ordinal))
            {
                _ready.TrySetResult();
            }
        }

        private string SafeExitCode()
        {
            try
            {
                return _process.ExitCode.ToString(System.Globalization.CultureInfo.InvariantCulture);
            }
            catch (InvalidOperationException)
            {
                return "?";
            }
        }

        /// <summary>SIGTERM, then SIGKILL if it has not exited within <paramref name="timeout"/>.</summary>
        public async Task StopAsync(TimeSpan timeout)
        {
            _stopping = true;
            if (_process.HasExited)
            {
                return;
            }
            _ = Kill(Pid, SigTerm);
            try
            {
                await _process.WaitForExitAsync().WaitAsync(timeout);
            }
            catch (TimeoutException)
            {
                Console.Error.WriteLine($"otun cluster: {Name} did not exit within {timeout.TotalSeconds:0} s of SIGTERM; killing it");
                try
                {
                    _process.Kill(entireProcessTree: true);
                    await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(5));
                }
                catch (Exception ex) when (ex is InvalidOperationException or TimeoutException or System.ComponentModel.Win32Exception)
                {
                }
            }
        }

        public void Dispose()
        {
            _stopping = true;
            try
            {
                if (!_process.HasExited)
                {
                    _process.Kill(entireProcessTree: true);
                }
            }
            catch (InvalidOperationException)
            {
            }
            _process.Dispose();
            lock (_log)
            {
                _logClosed = true;
                _log.Dispose();
            }
        }
    }

    private const int SigTerm = 15;

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);
}
