namespace OrleansTunnel.Cli;

/// <summary>`otun cluster`'s flag table, help text and the stop timeouts --set derives.</summary>
public static partial class ClusterCommand
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
        new("--agent-admin-port", P + "agent-admin-port", "admin port (/healthz, /readyz, /metrics) of agent-1; agent-n: +n-1; 0: none", "9060"),
        new("--dashboard-port", P + "dashboard-port", "Orleans dashboard port on silo-1; 0: none", "8090"),
        new("--ingress-port", P + "ingress-port", "ingress port of gateway-1; gateway-n: +100*(n-1)", "8080"),
        new("--tunnel-port", P + "tunnel-port", "tunnel port of gateway-1; gateway-n: +100*(n-1)", "7070"),
        new("--admin-port", P + "admin-port", "admin port of gateway-1; gateway-n: +100*(n-1)", "9090"),
        new("--lb", P + "lb", "nginx load balancer in front of the gateways: HTTP/1.1 on this port, h2c (gRPC) on the next; gateways then also get an h2c ingress (ingress port + 1); 0: none", "0"),
        new("--nginx", P + "nginx", "the nginx executable (with --lb)", "nginx"),
        new("--cluster-tls", P + "cluster-tls", "on: mutual TLS on every Orleans connection with a CA made in the data directory (pki/); off: cleartext", "on"),
    ];
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
}
