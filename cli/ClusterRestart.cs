namespace OrleansTunnel.Cli;

/// <summary>
/// `otun cluster restart NAME [--data DIR] [--kill]`: for the rolling-restart drill, signals one child of a
/// running `otun cluster` (found in its pid file): SIGTERM, a graceful stop (a gateway drains first), or
/// with --kill SIGKILL, a crash. With --supervise the cluster starts it again with the same arguments.
/// </summary>
public static class ClusterRestart
{
    public static int Run(string[] argv)
    {
        string? name = null;
        string data = Path.Combine(".data", "cluster");
        bool kill = false;
        for (int i = 0; i < argv.Length; i++)
        {
            switch (argv[i])
            {
                case "-h" or "--help":
                    Console.WriteLine("usage: otun cluster restart NAME [--data DIR] [--kill]");
                    Console.WriteLine("  NAME        a child of the running otun cluster: silo-1, gateway-2, agent-1, redis-1, lb-1 (as it printed them)");
                    Console.WriteLine("  --data DIR  the cluster's data directory, holding its pid file (default .data/cluster)");
                    Console.WriteLine("  --kill      SIGKILL (a crash) instead of SIGTERM (a graceful stop: a gateway drains first)");
                    Console.WriteLine("With otun cluster --supervise the child is started again with the same arguments.");
                    return 0;
                case "--data":
                    data = i + 1 < argv.Length ? argv[++i] : throw new CliException("--data needs a directory");
                    break;
                case "--kill":
                    kill = true;
                    break;
                default:
                    if (argv[i].StartsWith('-') || name is not null)
                    {
                        throw new CliException($"unexpected argument '{argv[i]}'; see otun cluster restart --help");
                    }
                    name = argv[i];
                    break;
            }
        }
        if (name is null)
        {
            throw new CliException("otun cluster restart needs the name of a child, e.g. gateway-1 (see otun cluster restart --help)");
        }
        string pidFile = Path.Combine(Path.GetFullPath(data), ClusterCommand.PidFile);
        if (!File.Exists(pidFile))
        {
            throw new CliException($"no pid file at {pidFile}: is otun cluster running with --data {data}?");
        }
        var pids = File.ReadAllLines(pidFile)
            .Select(l => l.Split(' ', 2))
            .Where(p => p.Length == 2 && int.TryParse(p[1], out _))
            .ToDictionary(p => p[0], p => int.Parse(p[1], System.Globalization.CultureInfo.InvariantCulture), StringComparer.Ordinal);
        if (!pids.TryGetValue(name, out int pid))
        {
            throw new CliException($"the cluster has no child '{name}'; it has {string.Join(", ", pids.Keys.Order(StringComparer.Ordinal))}");
        }
        int signal = kill ? 9 : 15;
        if (ClusterChild.Kill(pid, signal) != 0)
        {
            throw new CliException($"could not signal {name} (pid {pid}): it is gone, or this user may not signal it");
        }
        Console.WriteLine($"otun cluster restart: sent {(kill ? "SIGKILL" : "SIGTERM")} to {name} (pid {pid})");
        return 0;
    }
}
