namespace OrleansTunnel.Cli;

/// <summary>
/// Command-line flags turned into configuration keys (highest precedence, above environment
/// variables OTUN_* and appsettings.json). Unknown flags are errors that name the flag.
/// </summary>
public sealed class Args
{
    public Dictionary<string, string?> Config { get; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>--expose URL [--host NAME] [--service NAME] groups, in order.</summary>
    public List<(string Url, List<string> Hosts, string? Service)> Exposes { get; } = [];

    /// <summary>--tcp-port N / --udp-port N after a tcp:// or udp:// --expose: the gateway port for it, by --expose index.</summary>
    public Dictionary<int, int> L4Ports { get; } = [];

    public bool Help { get; private set; }

    public List<string> Positional { get; } = [];

    /// <summary>A flag that maps to one configuration key.</summary>
    public sealed record Flag(string Name, string Key, string Help, string? Default = null);

    public static Args Parse(string[] argv, IReadOnlyList<Flag> flags, bool allowExpose, bool allowRoutes, bool allowAgents, bool allowGateways)
    {
        var args = new Args();
        int routes = 0, agents = 0, gateways = 0;
        for (int i = 0; i < argv.Length; i++)
        {
            string a = argv[i];
            string? inline = null;
            int eq = a.IndexOf('=');
            if (a.StartsWith("--", StringComparison.Ordinal) && eq > 0)
            {
                inline = a[(eq + 1)..];
                a = a[..eq];
            }
            string Value()
            {
                if (inline is not null)
                {
                    return inline;
                }
                if (i + 1 >= argv.Length)
                {
                    throw new CliException($"{a} needs a value");
                }
                return argv[++i];
            }
            switch (a)
            {
                case "-h" or "--help":
                    args.Help = true;
                    continue;
                case "--set":
                    var kv = Value();
                    int k = kv.IndexOf('=');
                    if (k <= 0)
                    {
                        throw new CliException($"--set takes Key=Value (e.g. --set Gateway:ResponseTimeout=00:00:30), not '{kv}'");
                    }
                    args.Config[kv[..k]] = kv[(k + 1)..];
                    continue;
                case "--expose" when allowExpose:
                    args.Exposes.Add((Value(), [], null));
                    continue;
                case "--host" when allowExpose:
                    if (args.Exposes.Count == 0)
                    {
                        throw new CliException("--host must follow an --expose URL");
                    }
                    args.Exposes[^1].Hosts.Add(Value());
                    continue;
                case "--service" when allowExpose:
                    if (args.Exposes.Count == 0)
                    {
                        throw new CliException("--service must follow an --expose URL");
                    }
                    var last = args.Exposes[^1];
                    args.Exposes[^1] = (last.Url, last.Hosts, Value());
                    continue;
                case "--tcp-port" or "--udp-port" when allowExpose:
                    string kind = a[2..5];
                    if (args.Exposes.Count == 0 || !args.Exposes[^1].Url.StartsWith(kind + "://", StringComparison.OrdinalIgnoreCase))
                    {
                        throw new CliException($"{a} must follow an --expose {kind}://HOST:PORT");
                    }
                    string portText = Value();
                    if (!int.TryParse(portText, System.Globalization.CultureInfo.InvariantCulture, out int port) || port is < 0 or > 65535)
                    {
                        throw new CliException($"{a} takes a port number (0-65535), not '{portText}'");
                    }
                    args.L4Ports[args.Exposes.Count - 1] = port;
                    continue;
                case "--health" when allowExpose:
                    // The health path of the preceding --expose (otun agent): Agent:Services:N:HealthPath.
                    if (args.Exposes.Count == 0)
                    {
                        throw new CliException("--health must follow an --expose URL (e.g. --expose http://127.0.0.1:3000 --service web --health /healthz)");
                    }
                    args.Config[$"Agent:Services:{args.Exposes.Count - 1}:HealthPath"] = Value();
                    continue;
                case "--route" when allowRoutes:
                    // HOST[/PREFIX]=SERVICE
                    var route = Value();
                    int r = route.IndexOf('=');
                    if (r <= 0)
                    {
                        throw new CliException($"--route takes HOST[/PATH]=SERVICE (e.g. app.example.com/api=api), not '{route}'");
                    }
                    string hostPath = route[..r];
                    int slash = hostPath.IndexOf('/');
                    args.Config[$"Gateway:Routes:{routes}:Host"] = slash < 0 ? hostPath : hostPath[..slash];
                    args.Config[$"Gateway:Routes:{routes}:PathPrefix"] = slash < 0 ? null : hostPath[slash..];
                    args.Config[$"Gateway:Routes:{routes}:Service"] = route[(r + 1)..];
                    routes++;
                    continue;
                case "--agent" when allowAgents:
                    // ID:SHA256:svc1,svc2
                    var parts = Value().Split(':');
                    if (parts.Length != 3)
                    {
                        throw new CliException("--agent takes ID:TOKEN_SHA256:SERVICE[,SERVICE...] (otun hash-token prints the hash)");
                    }
                    args.Config[$"Gateway:Agents:{agents}:Id"] = parts[0];
                    args.Config[$"Gateway:Agents:{agents}:TokenSha256"] = parts[1];
                    var services = parts[2].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                    for (int s = 0; s < services.Length; s++)
                    {
                        args.Config[$"Gateway:Agents:{agents}:Services:{s}"] = services[s];
                    }
                    agents++;
                    continue;
                case "--gateway" when allowGateways:
                    args.Config[$"Agent:Gateways:{gateways++}"] = Value();
                    continue;
            }
            var flag = flags.FirstOrDefault(f => f.Name == a);
            if (flag is not null)
            {
                args.Config[flag.Key] = Value();
                continue;
            }
            if (a.StartsWith('-'))
            {
                throw new CliException($"unknown flag {a}; see --help");
            }
            args.Positional.Add(a);
        }
        return args;
    }
}

/// <summary>A usage error: printed without a stack trace, exit code 2.</summary>
public sealed class CliException(string message) : Exception(message);
