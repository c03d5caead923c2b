using System.Security.Cryptography;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using OrleansTunnel.Agent;
using OrleansTunnel.Cli;
using OrleansTunnel.Demo;
using OrleansTunnel.Gateway;
using OrleansTunnel.Gateway.Auth;

return await Cli.RunAsync(args);

namespace OrleansTunnel.Cli
{
    internal static class Cli
    {
        private static readonly Args.Flag[] ClusterFlags =
        [
            new("--cluster-id", "Cluster:ClusterId", "Orleans cluster id", "otun-dev"),
            new("--service-id", "Cluster:ServiceId", "Orleans service id (keys durable state)", "orleans-tunnel"),
            new("--redis", "Cluster:Redis", "Redis connection string; empty: localhost clustering, in-memory state", ""),
            new("--silo-port", "Cluster:SiloPort", "silo-to-silo port", "11111"),
            new("--gateway-port", "Cluster:GatewayPort", "Orleans client port of the silo", "30000"),
            new("--advertised-address", "Cluster:AdvertisedAddress", "address other nodes reach this silo at", "loopback"),
            new("--silo-admin", "Cluster:Admin", "admin URL of a standalone silo (/healthz, /readyz)", "http://127.0.0.1:9091"),
        ];

        private static readonly Args.Flag[] GatewayFlags =
        [
            new("--gateway-id", "Gateway:GatewayId", "this gateway's id", "gw-<random>"),
            new("--ingress", "Gateway:Ingress", "public ingress URL", "http://127.0.0.1:8080"),
            new("--tunnel", "Gateway:Tunnel", "tunnel endpoint URL (agents dial it)", "http://127.0.0.1:7070"),
            new("--admin", "Gateway:Admin", "admin URL (/healthz, /readyz)", "http://127.0.0.1:9090"),
            new("--https-ingress", "Gateway:HttpsIngress", "HTTPS ingress URL (ALPN h2 + http/1.1); dev: https://127.0.0.1:8443", "none"),
            new("--h2c-ingress", "Gateway:H2cIngress", "cleartext HTTP/2 ingress URL (prior knowledge)", "none"),
            new("--cert", "Gateway:CertificatePath", "ingress certificate (PEM with --cert-key, or PFX)", "none; dev: self-signed"),
            new("--cert-key", "Gateway:CertificateKeyPath", "PEM private key of --cert", "none"),
            new("--response-timeout", "Gateway:ResponseTimeout", "wait for a response head before 504 (hh:mm:ss)", "00:01:40"),
        ];

        private static readonly Args.Flag[] AgentFlags =
        [
            new("--agent-id", "Agent:AgentId", "this agent's id", ""),
            new("--token", "Agent:Token", "the agent's token (prefer OTUN_Agent__Token: flags show in ps)", ""),
            new("--connections", "Agent:Connections", "tunnel connections to keep, on distinct gateways where possible", "2"),
            new("--agent-admin", "Agent:Admin", "health endpoint URL (/healthz, /readyz); none by default", "none"),
        ];

        public static async Task<int> RunAsync(string[] argv)
        {
            string command = argv.Length > 0 ? argv[0] : "--help";
            string[] rest = argv.Length > 0 ? argv[1..] : [];
            try
            {
                return command switch
                {
                    "dev" => await DevAsync(rest),
                    "silo" => await SiloAsync(rest),
                    "gateway" => await GatewayAsync(rest),
                    "agent" => await AgentAsync(rest),
                    "cluster" => await ClusterCommand.RunAsync(rest),
                    "hash-token" => HashToken(rest),
                    "admin" => await AdminCli.RunAsync(rest),
                    "inspect" => await InspectCli.RunAsync(rest),
                    "new-token" => NewToken(),
                    "version" or "--version" => Version(),
                    "-h" or "--help" or "help" => Usage(),
                    _ => throw new CliException($"unknown command '{command}'; see otun --help"),
                };
            }
            catch (CliException ex)
            {
                Console.Error.WriteLine($"otun: {ex.Message}");
                return 2;
            }
            catch (OptionsValidationException ex)
            {
                Console.Error.WriteLine("otun: invalid configuration:");
                foreach (var failure in ex.Failures)
                {
                    Console.Error.WriteLine($"  - {failure}");
                }
                return 2;
            }
            catch (IOException ex) when (ex.InnerException is System.Net.Sockets.SocketException || ex.Message.Contains("address already in use", StringComparison.OrdinalIgnoreCase))
            {
                Console.Error.WriteLine($"otun: {ex.Message} (is another otun running? pick other ports with the flags)");
                return 1;
            }
        }

        private static int Usage()
        {
            Console.WriteLine("""
                otun: OrleansTunnel, a distributed reverse tunnel.

                usage: otun <command> [flags]     (otun <command> --help for its flags)

                commands:
                  dev          silo + gateway + agent + demo backend in one process (in-memory state)
                  silo         an Orleans silo of the cluster
                  gateway      a gateway (ingress + tunnel endpoint), an Orleans client of the cluster
                  agent        an agent: dials gateways, forwards to local backends
                  cluster      redis + 2 silos + 2 gateways + 2 agents as separate processes on this machine (failover demo)
                  admin        the admin API: agents, services, routes, requests, tokens (otun admin --help)
                  inspect      the cluster's requests: a live tail, one request, a replay (otun inspect --help)
                  hash-token   print the SHA-256 a gateway is configured with for a token
                  new-token    print a fresh random token
                  version      print the version, the .NET runtime and its GC settings

                Configuration: appsettings.json in the working directory, then environment variables
                OTUN_<Section>__<Key> (e.g. OTUN_Gateway__ResponseTimeout=00:00:30), then flags;
                --set Section:Key=Value sets any option (see README for all of them).
                """);
            return 0;
        }

        private static void FlagHelp(string title, string usage, params Args.Flag[][] groups)
        {
            Console.WriteLine(title);
            Console.WriteLine();
            Console.WriteLine("usage: " + usage);
            Console.WriteLine();
            foreach (var f in groups.SelectMany(g => g))
            {
                Console.WriteLine($"  {f.Name,-22} {f.Help} (default {f.Default}; config {f.Key})");
            }
            Console.WriteLine($"  {"--set KEY=VALUE",-22} set any configuration key (see README)");
            Console.WriteLine($"  {"-h, --help",-22} this help");
        }

        private static async Task<int> SiloAsync(string[] argv)
        {
            var args = Args.Parse(argv, ClusterFlags, false, false, false, false);
            if (args.Help)
            {
                FlagHelp("otun silo: run one Orleans silo of the cluster.", "otun silo [flags]", ClusterFlags);
                return 0;
            }
            using var signal = new ShutdownSignal();
            var app = Roles.BuildSilo(args.Config);
            if (!await StartOrStoppedAsync(app, signal, "silo"))
            {
                return 1;
            }
            // The cluster settings as they apply (Redis password redacted), so an operator sees TLS is on.
            var configuration = (Microsoft.Extensions.Configuration.IConfiguration)app.Services.GetService(typeof(Microsoft.Extensions.Configuration.IConfiguration))!;
            var cluster = Microsoft.Extensions.Configuration.ConfigurationBinder.Get<OrleansTunnel.Silo.ClusterSettings>(
                configuration.GetSection(OrleansTunnel.Silo.ClusterSettings.Section)) ?? new();
            Console.WriteLine($"otun silo: {cluster}");
            RuntimeDefaults.Print("silo");
            Console.WriteLine($"otun silo: ready (pid {Environment.ProcessId})");
            await signal.WaitAsync(app);
            await StopAsync("silo", app);
            return 0;
        }

        private static async Task<int> GatewayAsync(string[] argv)
        {
            var args = Args.Parse(argv, [.. GatewayFlags, .. ClusterFlags], false, true, true, false);
            if (args.Help)
            {
                FlagHelp("otun gateway: run a gateway (visitor ingress, tunnel endpoint, admin), joining the cluster as an Orleans client.",
                    "otun gateway [--route HOST[/PATH]=SERVICE]... [--agent ID:TOKEN_SHA256:SVC[,SVC]]... [flags]", GatewayFlags, ClusterFlags);
                Console.WriteLine($"  {"--route H[/P]=SVC",-22} seed a route (repeatable)");
                Console.WriteLine($"  {"--agent ID:SHA:SVCS",-22} allow an agent (repeatable; otun hash-token prints SHA)");
                return 0;
            }
            using var signal = new ShutdownSignal();
            var app = Roles.BuildGateway(args.Config, withSilo: false);
            if (!await StartOrStoppedAsync(app, signal, "gateway"))
            {
                return 1;
            }
            PrintGateway(app);
            RuntimeDefaults.Print("gateway");
            Console.WriteLine($"otun gateway: ready (pid {Environment.ProcessId})");
            await signal.WaitAsync(app);
            await StopAsync("gateway", app);
            return 0;
        }

        private static async Task<int> AgentAsync(string[] argv)
        {
            var args = Args.Parse(argv, AgentFlags, true, false, false, true);
            if (args.Help)
            {
                FlagHelp("otun agent: dial gateways and forward tunnelled requests to local backends.",
                    "otun agent --agent-id ID --gateway URL [--gateway URL]... --expose URL --service NAME [--expose ...] [flags]", AgentFlags);
                Console.WriteLine($"  {"--gateway URL",-22} a gateway's tunnel endpoint (repeatable)");
                Console.WriteLine($"  {"--expose URL",-22} a local backend: http://, h2c://, https://, tcp:// or udp:// (repeatable)");
                Console.WriteLine($"  {"--service NAME",-22} the service name of the preceding --expose");
                Console.WriteLine($"  {"--health PATH",-22} probe this path of the preceding --expose (e.g. /healthz); unhealthy: no new requests");
                return 0;
            }
            for (int i = 0; i < args.Exposes.Count; i++)
            {
                var (url, hosts, service) = args.Exposes[i];
                args.Config[$"Agent:Services:{i}:Name"] = service ?? hosts.FirstOrDefault() ?? throw new CliException($"--expose {url} needs a --service NAME");
                args.Config[$"Agent:Services:{i}:Url"] = url;
            }
            using var signal = new ShutdownSignal();
            using var host = Roles.BuildAgent(args.Config);
            await host.StartAsync(signal.Token);
            var status = host.Services.GetRequiredService<AgentStatus>();
            var stopped = signal.WaitAsync(host);
            if (await Task.WhenAny(status.AnyUp, stopped) == status.AnyUp)
            {
                RuntimeDefaults.Print("agent");
                Console.WriteLine($"otun agent: ready, tunnel up (pid {Environment.ProcessId})");
            }
            await stopped;
            await StopAsync("agent", host);
            return 0;
        }

        private static async Task<int> DevAsync(string[] argv)
        {
            Args.Flag[] devFlags = [.. GatewayFlags, new("--data", "Dev:DataDirectory", "where dev mode keeps its self-signed certificate", ".data")];
            var args = Args.Parse(argv, devFlags, true, true, false, false);
            if (args.Help)
            {
                FlagHelp("otun dev: a silo (localhost clustering, in-memory state), a gateway, an agent and a demo backend in one process.",
                    "otun dev [--expose URL --host NAME [--host NAME]...]... [flags]", devFlags);
                Console.WriteLine($"  {"--expose URL",-22} expose your own backend instead of the demo (repeatable): http://, h2c:// or https://");
                Console.WriteLine($"  {"--host NAME",-22} a host name routed to the preceding --expose (repeatable)");
                Console.WriteLine($"  {"--expose tcp://H:P",-22} a TCP backend; with --tcp-port N the gateway listens on 127.0.0.1:N for it");
                Console.WriteLine($"  {"--expose udp://H:P",-22} a UDP backend; with --udp-port N the gateway listens on 127.0.0.1:N for it");
                Console.WriteLine($"  {"--service NAME",-22} the service name of the preceding tcp:// / udp:// --expose (default tcp-N / udp-N)");
                return 0;
            }

            using var signal = new ShutdownSignal();
            var stop = signal;

            var (demo, services) = await ExposedServicesAsync(args);
            var l4Services = L4Flags.Services(args);

            // HTTPS in dev: a self-signed certificate for localhost and the dev hosts, kept in the data directory.
            string? devCertificate = null;
            args.Config.TryAdd("Gateway:HttpsIngress", "https://127.0.0.1:8443");
            // The Orleans dashboard on its own listener (--set Cluster:Dashboard= turns it off).
            args.Config.TryAdd("Cluster:Dashboard", "http://127.0.0.1:8090");
            if (!string.IsNullOrWhiteSpace(args.Config["Gateway:HttpsIngress"]) && !args.Config.ContainsKey("Gateway:CertificatePath"))
            {
                string dataDirectory = Path.GetFullPath(args.Config.GetValueOrDefault("Dev:DataDirectory") ?? ".data");
                var (certPath, keyPath, created) = OrleansTunnel.Gateway.Ingress.IngressCertificate.EnsureDevCertificate(dataDirectory, services.SelectMany(s => s.Hosts));
                args.Config["Gateway:CertificatePath"] = certPath;
                args.Config["Gateway:CertificateKeyPath"] = keyPath;
                devCertificate = created ? $"{certPath} (created)" : certPath;
            }

            // No load balancer in front of dev mode: stop at once on Ctrl-C (no drain delay).
            args.Config.TryAdd("Gateway:DrainDelay", "00:00:00");
            // The inspector page opens without the token for loopback visitors (the admin listener is on 127.0.0.1).
            args.Config.TryAdd("Inspector:OpenOnLoopback", "true");
            // The admin API's token lives in the data directory (owner-only), where `otun admin` finds it.
            string adminTokenFile = AdminCli.EnsureDevAdminToken(Path.GetFullPath(args.Config.GetValueOrDefault("Dev:DataDirectory") ?? ".data"));
            args.Config.TryAdd("Gateway:AdminTokenSha256", AgentCredentialStore.Hash(File.ReadAllText(adminTokenFile).Trim()));

            // A fresh token per run: the in-process agent presents it, the gateway holds its hash.
            string token = NewTokenValue();
            var gatewayConfig = new Dictionary<string, string?>(args.Config, StringComparer.OrdinalIgnoreCase)
            {
                ["Gateway:Agents:0:Id"] = "dev-agent",
                ["Gateway:Agents:0:TokenSha256"] = AgentCredentialStore.Hash(token),
                ["Gateway:Agents:0:Services:0"] = "*",
            };
            int route = args.Config.Keys.Count(k => k.EndsWith(":Service", StringComparison.OrdinalIgnoreCase) && k.StartsWith("Gateway:Routes:", StringComparison.OrdinalIgnoreCase));
            foreach (var (name, _, hosts) in services)
            {
                foreach (var host in hosts)
                {
                    gatewayConfig[$"Gateway:Routes:{route}:Host"] = host;
                    gatewayConfig[$"Gateway:Routes:{route}:Service"] = name;
                    route++;
                }
            }
            L4Flags.AddGatewayConfig(gatewayConfig, l4Services, 0);
            var gateway = Roles.BuildGateway(gatewayConfig, withSilo: true);
            await gateway.StartAsync(stop.Token);
            var endpoints = gateway.Services.GetRequiredService<GatewayEndpoints>();

            var agentConfig = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase)
            {
                ["Agent:AgentId"] = "dev-agent",
                ["Agent:Token"] = token,
                // The in-process agent dials the tunnel as configured; over TLS it trusts the dev certificate.
                ["Agent:Gateways:0"] = $"{(TunnelIsTls(gatewayConfig) ? "https" : "http")}://127.0.0.1:{endpoints.TunnelPort}",
                ["Agent:GatewayCaFile"] = TunnelIsTls(gatewayConfig) ? gatewayConfig.GetValueOrDefault("Gateway:CertificatePath") : null,
            };
            for (int i = 0; i < services.Count; i++)
            {
                agentConfig[$"Agent:Services:{i}:Name"] = services[i].Name;
                agentConfig[$"Agent:Services:{i}:Url"] = services[i].Url;
            }
            for (int i = 0; i < l4Services.Count; i++)
            {
                agentConfig[$"Agent:Services:{services.Count + i}:Name"] = l4Services[i].Name;
                agentConfig[$"Agent:Services:{services.Count + i}:Url"] = l4Services[i].Url;
            }
            foreach (var (key, value) in args.Config.Where(kv => kv.Key.StartsWith("Agent:", StringComparison.OrdinalIgnoreCase)))
            {
                agentConfig[key] = value;
            }
            using var agent = Roles.BuildAgent(agentConfig);
            await agent.StartAsync(stop.Token);
            var status = agent.Services.GetRequiredService<AgentStatus>();

            Console.WriteLine("otun dev: silo (localhost clustering, in-memory state), gateway, agent and backend in one process");
            PrintGateway(gateway);
            if (gateway.Services.GetService<OrleansTunnel.Silo.Dashboard.DashboardEndpoint>()?.Url is { } dashboardUrl)
            {
                Console.WriteLine($"  dashboard {dashboardUrl}");
            }
            foreach (var (name, url, hosts) in services)
            {
                Console.WriteLine($"  service   {name} -> {url}  (hosts: {string.Join(", ", hosts)})");
            }
            foreach (var ((kind, name), bound) in gateway.Services.GetRequiredService<OrleansTunnel.Gateway.L4.L4Endpoints>().Bound)
            {
                Console.WriteLine($"  {kind,-9} {bound} -> service {name} -> {l4Services.FirstOrDefault(s => s.Name == name).Url}");
            }
            Console.WriteLine($"  admin key {adminTokenFile}  (otun admin reads it: ./otun admin routes)");
            if (devCertificate is not null)
            {
                Console.WriteLine($"  dev cert  {devCertificate}  (self-signed; trust it or use curl -k)");
            }
            // Ready means a visitor's request can succeed: the tunnel is up and the routes are loaded.
            var routingReady = gateway.Services.GetRequiredService<OrleansTunnel.Gateway.Routing.RoutingSubscriber>().Ready;
            await Task.WhenAny(Task.WhenAll(status.AnyUp, routingReady), Task.Delay(Timeout.Infinite, stop.Token));
            if (status.AnyUp.IsCompleted && routingReady.IsCompleted)
            {
                string ingress = $"http://127.0.0.1:{endpoints.IngressPort}";
                string exampleHost = services[0].Hosts[0];
                Console.WriteLine("try:");
                if (demo is not null)
                {
                    Console.WriteLine($"  curl {ingress}/hello");
                    Console.WriteLine($"  curl -N {ingress}/sse");
                    Console.WriteLine($"  curl -s {ingress}/download?size=104857600 | sha256sum");
                    if (endpoints.HttpsIngressPort > 0)
                    {
                        Console.WriteLine($"  curl -k --http2 https://127.0.0.1:{endpoints.HttpsIngressPort}/hello");
                    }
                }
                else
                {
                    Console.WriteLine($"  curl -H 'Host: {exampleHost}' {ingress}/");
                }
                RuntimeDefaults.Print("dev");
                Console.WriteLine($"otun dev: ready (pid {Environment.ProcessId})");
            }

            await signal.WaitAsync(gateway, agent);
            Console.WriteLine("otun dev: stopping");
            await StopAsync("agent", agent);
            await StopAsync("gateway", gateway);
            if (demo is not null)
            {
                await StopAsync("demo backend", demo);
            }
            return 0;
        }

        /// <summary>
        /// The services `otun dev` and `otun cluster` expose: the demo backend (started here, hosts
        /// demo.localhost, localhost, 127.0.0.1), or each --expose URL with its --host names.
        /// </summary>
        internal static async Task<(WebApplication? Demo, List<(string Name, string Url, List<string> Hosts)> Services)> ExposedServicesAsync(Args args)
        {
            var services = new List<(string Name, string Url, List<string> Hosts)>();
            // tcp:// and udp:// exposes are L4Flags' (no hosts); with only those, the demo backend serves HTTP.
            if (args.Exposes.All(e => L4Flags.IsL4(e.Url)))
            {
                var demo = await DemoBackend.StartAsync("http://127.0.0.1:0");
                services.Add(("demo", $"http://127.0.0.1:{DemoBackend.Port(demo)}", ["demo.localhost", "localhost", "127.0.0.1"]));
                return (demo, services);
            }
            int firstHttp = args.Exposes.FindIndex(e => !L4Flags.IsL4(e.Url));
            for (int i = 0; i < args.Exposes.Count; i++)
            {
                var (url, hosts, service) = args.Exposes[i];
                if (L4Flags.IsL4(url))
                {
                    continue;
                }
                if (hosts.Count == 0)
                {
                    hosts = i == firstHttp ? ["localhost", "127.0.0.1"] : throw new CliException($"--expose {url} needs a --host NAME");
                }
                services.Add((service ?? hosts[0], url, hosts));
            }
            return (null, services);
        }

        /// <summary>Starts the host; false when a stop signal came first (Ctrl-C or SIGTERM while joining the cluster).</summary>
        private static async Task<bool> StartOrStoppedAsync(IHost host, ShutdownSignal signal, string role)
        {
            try
            {
                await host.StartAsync(signal.Token);
                return true;
            }
            catch (OperationCanceledException) when (signal.Token.IsCancellationRequested)
            {
                Console.Error.WriteLine($"otun {role}: stopped before it was ready");
                return false;
            }
        }

        /// <summary>
        /// Stops a host within its own shutdown timeout (for a gateway Gateway:DrainDelay +
        /// Gateway:ShutdownGracePeriod, for an agent Agent:ShutdownGracePeriod) plus a margin for the
        /// services that stop after the web server; no fixed cap cuts a configured grace period short.
        /// </summary>
        private static async Task StopAsync(string what, IHost host)
        {
            var shutdown = host.Services.GetService<IOptions<HostOptions>>()?.Value.ShutdownTimeout ?? TimeSpan.FromSeconds(30);
            var limit = shutdown == Timeout.InfiniteTimeSpan ? Timeout.InfiniteTimeSpan : shutdown + StopMargin;
            using var deadline = new CancellationTokenSource(limit);
            try
            {
                await host.StopAsync(deadline.Token);
            }
            catch (OperationCanceledException)
            {
                Console.Error.WriteLine($"otun: the {what} did not stop within {limit.TotalSeconds:0} s; exiting anyway");
            }
        }

        /// <summary>What a host may take beyond its shutdown timeout (services stopping after the web server).</summary>
        private static readonly TimeSpan StopMargin = TimeSpan.FromSeconds(15);

        private static bool TunnelIsTls(IDictionary<string, string?> config) =>
            config.TryGetValue("Gateway:Tunnel", out var tunnel) && tunnel is not null && tunnel.StartsWith("https://", StringComparison.OrdinalIgnoreCase);

        private static void PrintGateway(WebApplication app)
        {
            var e = app.Services.GetRequiredService<GatewayEndpoints>();
            var o = app.Services.GetRequiredService<IOptions<GatewayOptions>>().Value;
            Console.WriteLine($"  gateway   {o.GatewayId}");
            Console.WriteLine($"  ingress   http://{e.Ingress?.IPEndPoint}");
            if (e.HttpsIngress is not null)
            {
                Console.WriteLine($"  ingress   https://{e.HttpsIngress.IPEndPoint}  (HTTP/2 and HTTP/1.1)");
            }
            if (e.H2cIngress is not null)
            {
                Console.WriteLine($"  ingress   http://{e.H2cIngress.IPEndPoint}  (cleartext HTTP/2, prior knowledge)");
            }
            string tunnelScheme = app.Services.GetRequiredService<IOptions<GatewayOptions>>().Value.Tunnel.StartsWith("https://", StringComparison.OrdinalIgnoreCase) ? "https" : "http";
            Console.WriteLine($"  tunnel    {tunnelScheme}://{e.Tunnel?.IPEndPoint}");
            Console.WriteLine($"  admin     http://{e.Admin?.IPEndPoint}  (health and readiness probes, /tunnels)");
            Console.WriteLine($"  inspect   http://{e.Admin?.IPEndPoint}/inspect/  (every request of the cluster; replay)");
        }

        private static int HashToken(string[] argv)
        {
            string? token = argv.FirstOrDefault(a => !a.StartsWith('-'));
            if (token is null || token == "-")
            {
                token = Console.In.ReadLine();
            }
            if (string.IsNullOrEmpty(token))
            {
                throw new CliException("hash-token needs a token (argument, or on standard input with '-')");
            }
            Console.WriteLine(AgentCredentialStore.Hash(token));
            return 0;
        }

        private static int Version()
        {
            var assembly = typeof(Program).Assembly;
            string version = (System.Reflection.CustomAttributeExtensions.GetCustomAttribute<System.Reflection.AssemblyInformationalVersionAttribute>(assembly)?.InformationalVersion
                ?? assembly.GetName().Version?.ToString() ?? "unknown");
            Console.WriteLine($"otun {version}");
            RuntimeDefaults.Print("runtime");
            return 0;
        }

        private static int NewToken()
        {
            Console.WriteLine(NewTokenValue());
            return 0;
        }

        private static string NewTokenValue() =>
            Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
    }
}
