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
public static partial class ClusterCommand
{
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
        int agentAdminPort = Port("agent-admin-port", 9060);
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
        for (int a = 0; agentAdminPort > 0 && a < agents; a++)
        {
            ports.Add((agentAdminPort + a, $"agent-{a + 1} admin"));
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
                if (agentAdminPort > 0)
                {
                    agentArgs.AddRange(["--set", $"Agent:Admin=http://127.0.0.1:{agentAdminPort + a}"]);
                }
                agentArgs.AddRange(SetsFor("Agent"));
                // The token travels in the environment, never on the command line (ps shows that).
                var agent = ClusterChild.Start($"agent-{a + 1}", "otun agent: ready", command, agentArgs,
                    new Dictionary<string, string> { ["OTUN_Agent__Token"] = tokens[a] }, dataDirectory);
                children.Add(agent);
                WritePids();
                agentStarts.Add(agent);
                Console.WriteLine($"agent-{a + 1} pid={agent.Pid}");
                if (agentAdminPort > 0)
                {
                    Console.WriteLine($"  admin     http://127.0.0.1:{agentAdminPort + a}  (/healthz, /readyz, /metrics)");
                }
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
}
