using System.Diagnostics;

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
