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
        new("--lb", P + "lb", "nginx load balancer in front of the gateways: HTTP/1.1 on this port, h2c (gRPC) on the next; gateways then also get an h2c ingress (ingress port + 1); 0: none", "0"),
        new("--nginx", P + "nginx", "the nginx executable (with --lb)", "nginx"),
        new("--cluster-tls", P + "cluster-tls", "on: mutual TLS on every Orleans connection with a CA made in the data directory (pki/); off: cleartext", "on"),
    ];

    /// <summary>The pid file in the data directory: one "name pid" line per child, rewritten on every (re)start.</summary>
    public const string PidFile = "pids";

    public static async Task<int> RunAsync(string[] argv)
    {
        if (argv.Length > 0 && argv[0] == "restart")
        {
            return ClusterRestart.Run(argv[1..]);
        }
        // --supervise takes no value.
        bool supervise = argv.Contains("--supervise");
        // --with-demo keeps the demo backend beside --expose'd services (bench/soak.sh adds a gRPC one).
        bool withDemo = argv.Contains("--with-demo");
        argv = [.. argv.Where(a => a is not ("--supervise" or "--with-demo"))];
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
        int lbPort = Port("lb", 0);
        string? nginx = lbPort == 0 ? null : FindExecutable(Opt("nginx", "nginx")) ?? FindExecutable("/usr/sbin/nginx")
            ?? throw new CliException($"{Opt("nginx", "nginx")} not found; install nginx (apt-get install nginx) or pass --nginx PATH, or leave out --lb");
        string clusterId = Opt("cluster-id", "otun-cluster"), serviceId = Opt("service-id", "orleans-tunnel");
        string dataDirectory = Path.GetFullPath(Opt("data", Path.Combine(".data", "cluster")));
        bool clusterTls = Opt("cluster-tls", "on") switch
        {
            "on" => true,
            "off" => false,
            var other => throw new CliException($"--cluster-tls takes on or off, not '{other}'"),
        };
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
            if (lbPort > 0)
            {
                ports.Add((ingressPort + 1 + 100 * i, $"gateway-{i + 1} h2c ingress"));
            }
        }
        if (lbPort > 0)
        {
            ports.Add((lbPort, "load balancer (HTTP/1.1)"));
            ports.Add((lbPort + 1, "load balancer (h2c)"));
        }
        // --tcp-port / --udp-port shift with --port-offset like the ports above (and are checked with them).
        var l4Services = L4Flags.Services(args, offset);
        ports.AddRange(L4Flags.TcpPorts(l4Services, gateways));
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
        // The cluster is locked as a production one is: Redis asks for a password, Orleans connections for
        // a certificate of the cluster's own CA (both made once in the data directory).
        var secrets = ClusterSecrets.Ensure(dataDirectory);
        string adminTokenSha = AgentCredentialStore.Hash(File.ReadAllText(adminTokenFile).Trim());

        using var signal = new ShutdownSignal();
        var children = new List<ClusterChild>();
        string pidFile = Path.Combine(dataDirectory, PidFile);
        void WritePids()
        {
            lock (children)
            {
                File.WriteAllLines(pidFile, children.Select(c => $"{c.Name} {c.Pid}"));
            }
        }
        var stopTimeouts = StopTimeouts(sets);
        WebApplication? demo = null;
        int exitCode = 0;
        try
        {
            // The services the agents expose: the demo backend in this process, or --expose URL --host NAME.
            (demo, var services) = await Cli.ExposedServicesAsync(args);
            if (withDemo && demo is null)
            {
                demo = await DemoBackend.StartAsync("http://127.0.0.1:0");
                services.Insert(0, ("demo", $"http://127.0.0.1:{DemoBackend.Port(demo)}", ["demo.localhost", "localhost", "127.0.0.1"]));
            }

            Console.WriteLine($"otun cluster: redis, {silos} silo(s), {gateways} gateway(s), {agents} agent(s) as separate processes (pid {Environment.ProcessId})");
            Console.WriteLine($"  data      {dataDirectory}  (logs in logs/<role>-<n>.log)");

            // Redis first: clustering and durable state (appendonly, so state survives a redis restart).
            string redisDirectory = Path.Combine(dataDirectory, "redis");
            var redis = ClusterChild.Start("redis-1", null, redisServer,
                [secrets.WriteRedisConfig(dataDirectory), "--port", Inv(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes", "--dir", redisDirectory], null, dataDirectory);
            children.Add(redis);
            WritePids();
            Console.WriteLine($"redis-1 pid={redis.Pid}");
            Console.WriteLine($"  redis     127.0.0.1:{redisPort}  (appendonly in {redisDirectory}; password in {Path.Combine(dataDirectory, "redis-password")})");
            await Until(signal, redis, () => RedisAnswersAsync(redisPort, secrets.RedisPassword), "redis to answer PING");
            // The connection string (with the password) reaches silos and gateways in their environment,
            // never on a command line.
            var clusterEnvironment = new Dictionary<string, string> { ["OTUN_Cluster__Redis"] = $"127.0.0.1:{redisPort},password={secrets.RedisPassword}" };
            string[] clusterArgs = ["--cluster-id", clusterId, "--service-id", serviceId, .. clusterTls ? secrets.TlsArgs() : []];
            if (clusterTls)
            {
                Console.WriteLine($"  cluster   mutual TLS, CA {secrets.CaPath}");
            }

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
                var silo = ClusterChild.Start($"silo-{i + 1}", "otun silo: ready", command, siloArgs, clusterEnvironment, dataDirectory);
                children.Add(silo);
                WritePids();
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
            string serviceList = string.Join(',', services.Select(s => s.Name).Concat(l4Services.Select(s => s.Name)).Distinct(StringComparer.Ordinal));
            var gatewayStarts = new List<ClusterChild>();
            for (int i = 0; i < gateways; i++)
            {
                int step = 100 * i;
                List<string> gatewayArgs = [.. prefix, "gateway", .. clusterArgs,
                    "--gateway-id", $"gateway-{i + 1}",
                    "--ingress", $"http://127.0.0.1:{ingressPort + step}", "--tunnel", $"http://127.0.0.1:{tunnelPort + step}",
                    "--admin", $"http://127.0.0.1:{adminPort + step}",
                    "--set", $"Gateway:AdminTokenSha256={adminTokenSha}"];
                if (lbPort > 0)
                {
                    gatewayArgs.AddRange(["--set", $"Gateway:H2cIngress=http://127.0.0.1:{ingressPort + 1 + step}"]);
                }
                foreach (var (name, _, hosts) in services)
                {
                    foreach (var host in hosts)
                    {
                        gatewayArgs.AddRange(["--route", $"{host}={name}"]);
                    }
                }
                var l4Config = new Dictionary<string, string?>();
                L4Flags.AddGatewayConfig(l4Config, l4Services, i);
                gatewayArgs.AddRange(l4Config.SelectMany(kv => new[] { "--set", $"{kv.Key}={kv.Value}" }));
                foreach (var (key, value) in l4Config.Where(kv => kv.Key.EndsWith(":Listen", StringComparison.Ordinal)))
                {
                    Console.WriteLine($"  {(key.Contains("Tcp", StringComparison.Ordinal) ? "tcp" : "udp"),-9} {value} -> service {l4Config[key[..^":Listen".Length] + ":Service"]}  (gateway-{i + 1})");
                }
                for (int a = 0; a < agents; a++)
                {
                    gatewayArgs.AddRange(["--agent", $"agent-{a + 1}:{AgentCredentialStore.Hash(tokens[a])}:{serviceList}"]);
                }
                gatewayArgs.AddRange(SetsFor("Cluster", "Gateway"));
                var gateway = ClusterChild.Start($"gateway-{i + 1}", "otun gateway: ready", command, gatewayArgs, clusterEnvironment, dataDirectory);
                children.Add(gateway);
                WritePids();
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

            var agentStarts = new List<ClusterChild>();
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
                foreach (var (name, _, url, _) in l4Services)
                {
                    agentArgs.AddRange(["--expose", url, "--service", name]);
                }
                agentArgs.AddRange(SetsFor("Agent"));
                // The token travels in the environment, never on the command line (ps shows that).
                var agent = ClusterChild.Start($"agent-{a + 1}", "otun agent: ready", command, agentArgs,
                    new Dictionary<string, string> { ["OTUN_Agent__Token"] = tokens[a] }, dataDirectory);
                children.Add(agent);
                WritePids();
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

            if (lbPort > 0)
            {
                string prefixDirectory = Path.Combine(dataDirectory, "nginx");
                var lbArgs = ClusterLoadBalancer.Prepare(prefixDirectory, lbPort, lbPort + 1,
                    [.. Enumerable.Range(0, gateways).Select(i => ingressPort + 100 * i)], [.. Enumerable.Range(0, gateways).Select(i => ingressPort + 1 + 100 * i)]);
                var lb = ClusterChild.Start("lb-1", null, nginx!, lbArgs, null, dataDirectory);
                children.Add(lb);
                WritePids();
                Console.WriteLine($"lb-1 pid={lb.Pid}");
                Console.WriteLine($"  lb        http://127.0.0.1:{lbPort}  (nginx: HTTP/1.1, WebSockets, SSE to every gateway's ingress)");
                Console.WriteLine($"  lb        http://127.0.0.1:{lbPort + 1}  (nginx: cleartext HTTP/2, gRPC, to every gateway's h2c ingress)");
                string lbUrl = $"http://127.0.0.1:{lbPort}{path}";
                await Until(signal, lb, () => AnswersAsync(http, lbUrl, firstHost), $"GET {lbUrl} (Host: {firstHost}) through the load balancer");
            }
            foreach (var child in children)
            {
                child.StopTimeout = stopTimeouts(child.Role);
                child.PidChanged = WritePids;
                child.Supervised = supervise;
            }

            Console.WriteLine("try:");
            for (int i = 0; i < gateways; i++)
            {
                string ingress = $"http://127.0.0.1:{ingressPort + 100 * i}";
                Console.WriteLine(demo is not null ? $"  curl {ingress}/hello" : $"  curl -H 'Host: {firstHost}' {ingress}/");
            }
            if (lbPort > 0)
            {
                Console.WriteLine(demo is not null ? $"  curl http://127.0.0.1:{lbPort}/hello   (through the load balancer)" : $"  curl -H 'Host: {firstHost}' http://127.0.0.1:{lbPort}/   (through the load balancer)");
            }
            Console.WriteLine(supervise
                ? $"  otun cluster restart gateway-1 --data {dataDirectory}   (SIGTERM; supervised children are started again)"
                : "  kill -9 <pid> of any process above and watch the others carry on; Ctrl-C stops them all");
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
            // Agents first (visitors' requests drain), then gateways, silos, the load balancer, and redis last.
            foreach (string role in new[] { "agent", "gateway", "silo", "lb", "redis" })
            {
                await Task.WhenAll(children.Where(c => c.Role == role).Select(c => c.StopAsync()));
            }
            File.Delete(pidFile);
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
        Console.WriteLine("usage: otun cluster [--expose URL --host NAME [--host NAME]... [--service NAME]]... [--supervise] [--lb PORT] [flags]");
        Console.WriteLine();
        foreach (var f in Flags)
        {
            Console.WriteLine($"  {f.Name,-22} {f.Help} (default {f.Default})");
        }
        Console.WriteLine($"  {"--expose URL",-22} expose your own backend instead of the demo (repeatable); every agent exposes it");
        Console.WriteLine($"  {"--host NAME",-22} a host name routed to the preceding --expose (repeatable)");
        Console.WriteLine($"  {"--expose tcp://H:P",-22} a TCP backend; --tcp-port N: gateway k listens on 127.0.0.1:N+100k for it");
        Console.WriteLine($"  {"--expose udp://H:P",-22} a UDP backend; --udp-port N: gateway k listens on 127.0.0.1:N+100k for it");
        Console.WriteLine($"  {"--service NAME",-22} the service name of the preceding --expose (default: its first host)");
        Console.WriteLine($"  {"--set KEY=VALUE",-22} passed on to the roles that read it: Cluster:* silos and gateways, Gateway:* gateways,");
        Console.WriteLine($"  {"",-22} Agent:* agents, anything else all of them");
        Console.WriteLine($"  {"--supervise",-22} start any child that exits (SIGTERM or crash) again with the same arguments, and log it");
        Console.WriteLine($"  {"--with-demo",-22} also run the demo backend (hosts demo.localhost, localhost, 127.0.0.1) beside --expose'd services");
        Console.WriteLine($"  {"-h, --help",-22} this help");
        Console.WriteLine();
        Console.WriteLine("otun cluster restart NAME [--data DIR] [--kill]: SIGTERM (or SIGKILL) one child of a running cluster,");
        Console.WriteLine("found in <data>/pids; with --supervise it is started again (a rolling-restart drill, one child at a time).");
        Console.WriteLine();
        Console.WriteLine("Each process is printed as '<role>-<n> pid=<pid>' (redis as 'redis-1'); 'otun cluster: ready' follows once");
        Console.WriteLine("every agent has a tunnel up and every gateway's ingress answers. Child output is relayed prefixed");
        Console.WriteLine("'[<role>-<n>] ' and written to <data>/logs/<role>-<n>.log. A child that exits is reported as");
        Console.WriteLine("'<role>-<n> exited (code N)'; the others keep running. Ctrl-C stops agents, gateways, silos, then redis.");
    }

    /// <summary>
    /// How long each role may take to stop before it is killed: a gateway its drain delay and grace period,
    /// an agent its grace period (as --set gives them, else the defaults), each with a margin.
    /// </summary>
    private static Func<string, TimeSpan> StopTimeouts(IEnumerable<KeyValuePair<string, string?>> sets)
    {
        var list = sets.ToList();
        TimeSpan Get(string key, TimeSpan fallback) =>
            list.LastOrDefault(kv => kv.Key.Equals(key, StringComparison.OrdinalIgnoreCase)).Value is { } text
            && TimeSpan.TryParse(text, System.Globalization.CultureInfo.InvariantCulture, out var value) ? value : fallback;
        var gatewayDefaults = new OrleansTunnel.Gateway.GatewayOptions();
        var gateway = Get("Gateway:DrainDelay", gatewayDefaults.DrainDelay) + Get("Gateway:ShutdownGracePeriod", gatewayDefaults.ShutdownGracePeriod) + TimeSpan.FromSeconds(20);
        var agent = Get("Agent:ShutdownGracePeriod", new OrleansTunnel.Agent.AgentOptions().ShutdownGracePeriod) + TimeSpan.FromSeconds(10);
        return role => role switch
        {
            "gateway" => gateway,
            "agent" => agent,
            "silo" => TimeSpan.FromSeconds(40),
            _ => TimeSpan.FromSeconds(10),
        };
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
    private static async Task Until(ShutdownSignal signal, ClusterChild? child, Func<Task<bool>> condition, string what)
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

    private static Task Until(ShutdownSignal signal, ClusterChild child, Task ready, string what) =>
        Until(signal, child, () => Task.FromResult(ready.IsCompletedSuccessfully), what);

    /// <summary>True when a redis-server on this loopback port takes the password (if any) and answers PING with +PONG (raw RESP over TCP).</summary>
    public static async Task<bool> RedisAnswersAsync(int port, string? password)
    {
        try
        {
            using var client = new TcpClient();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(1));
            await client.ConnectAsync(IPAddress.Loopback, port, timeout.Token);
            var stream = client.GetStream();
            string expected = password is null ? "+PONG\r\n" : "+OK\r\n+PONG\r\n";
            await stream.WriteAsync(Encoding.ASCII.GetBytes((password is null ? "" : $"AUTH \"{password}\"\r\n") + "PING\r\n"), timeout.Token);
            var answer = new StringBuilder();
            var buffer = new byte[64];
            while (answer.Length < expected.Length && !answer.ToString().StartsWith('-'))
            {
                int n = await stream.ReadAsync(buffer, timeout.Token);
                if (n == 0)
                {
                    return false;
                }
                answer.Append(Encoding.ASCII.GetString(buffer, 0, n));
            }
            return answer.ToString().StartsWith(expected, StringComparison.Ordinal);
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

}
