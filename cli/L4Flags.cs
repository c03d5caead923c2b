namespace OrleansTunnel.Cli;

/// <summary>
/// `otun dev` / `otun cluster`: --expose tcp://HOST:PORT --tcp-port N (and udp:// --udp-port N) become a
/// gateway listener on 127.0.0.1:N (gateway k of a cluster: N + 100 k) for the exposed service.
/// </summary>
internal static class L4Flags
{
    public static bool IsL4(string url) =>
        url.StartsWith("tcp://", StringComparison.OrdinalIgnoreCase) || url.StartsWith("udp://", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// The TCP/UDP services of the --expose list: name, kind ("tcp"/"udp"), backend URL and gateway port
    /// (shifted by <paramref name="portOffset"/>, otun cluster's --port-offset, like every other port; 0 stays 0).
    /// </summary>
    public static List<(string Name, string Kind, string Url, int Port)> Services(Args args, int portOffset = 0)
    {
        var list = new List<(string, string, string, int)>();
        for (int i = 0; i < args.Exposes.Count; i++)
        {
            var (url, hosts, service) = args.Exposes[i];
            if (!IsL4(url))
            {
                continue;
            }
            string kind = url[..3].ToLowerInvariant();
            if (!args.L4Ports.TryGetValue(i, out int port))
            {
                throw new CliException($"--expose {url} needs --{kind}-port N: the gateway port visitors connect to");
            }
            if (hosts.Count > 0 && kind == "udp")
            {
                throw new CliException($"--expose {url}: --host is for HTTP and TLS services; a UDP service is reached on its --udp-port");
            }
            // The default name keeps the port as given, so it does not change with the offset.
            list.Add((service ?? $"{kind}-{port}", kind, url, port == 0 ? 0 : port + portOffset));
        }
        return list;
    }

    /// <summary>The gateways' TCP service ports, for otun cluster's up-front check of its TCP ports (UDP ports cannot clash with them).</summary>
    public static IEnumerable<(int Port, string What)> TcpPorts(List<(string Name, string Kind, string Url, int Port)> services, int gateways) =>
        from g in Enumerable.Range(0, gateways)
        from s in services
        where s.Port != 0 && s.Kind == "tcp"
        select (s.Port + 100 * g, $"gateway-{g + 1} {s.Kind} service {s.Name}");

    /// <summary>Gateway configuration keys for the listeners of gateway number <paramref name="gateway"/> (0-based).</summary>
    public static void AddGatewayConfig(IDictionary<string, string?> config, List<(string Name, string Kind, string Url, int Port)> services, int gateway)
    {
        int tcp = config.Keys.Count(k => k.StartsWith("Gateway:TcpServices:", StringComparison.OrdinalIgnoreCase) && k.EndsWith(":Listen", StringComparison.OrdinalIgnoreCase));
        int udp = config.Keys.Count(k => k.StartsWith("Gateway:UdpServices:", StringComparison.OrdinalIgnoreCase) && k.EndsWith(":Listen", StringComparison.OrdinalIgnoreCase));
        foreach (var (name, kind, _, port) in services)
        {
            string section = kind == "tcp" ? $"Gateway:TcpServices:{tcp++}" : $"Gateway:UdpServices:{udp++}";
            config[$"{section}:Listen"] = $"127.0.0.1:{(port == 0 ? 0 : port + 100 * gateway)}";
            config[$"{section}:Service"] = name;
        }
    }
}
