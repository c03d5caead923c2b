using System.Diagnostics;

namespace OrleansTunnel.Tests.Infrastructure;

/// <summary>
/// `otun dev` started as a separate process, as a user runs it, on free loopback ports; ready once it
/// printed its line starting "otun dev: ready".
/// </summary>
public sealed class DevProcess : IAsyncDisposable
{
    private readonly List<string> _stdout = [];
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Process _process;

    public int Ingress { get; } = Ports.Free();
    public int Https { get; } = Ports.Free();
    public int Tunnel { get; } = Ports.Free();
    public int Admin { get; } = Ports.Free();
    public string DataDirectory { get; } = Path.Combine(Path.GetTempPath(), "otun-dev-" + Guid.NewGuid().ToString("N")[..8]);

    public Process Process => _process;

    /// <summary>Everything the process printed on standard output so far.</summary>
    public string[] Lines
    {
        get
        {
            lock (_stdout)
            {
                return [.. _stdout];
            }
        }
    }

    private DevProcess(string[] extraArgs)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in new[]
        {
            Path.Combine(AppContext.BaseDirectory, "otun.dll"), "dev",
            "--ingress", $"http://127.0.0.1:{Ingress}", "--https-ingress", $"https://127.0.0.1:{Https}",
            "--tunnel", $"http://127.0.0.1:{Tunnel}", "--admin", $"http://127.0.0.1:{Admin}", "--data", DataDirectory,
            "--set", $"Cluster:SiloPort={Ports.Free()}", "--set", $"Cluster:GatewayPort={Ports.Free()}",
        }.Concat(extraArgs))
        {
            start.ArgumentList.Add(arg);
        }
        _process = Process.Start(start)!;
        _process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                _ready.TrySetException(new InvalidOperationException("otun dev exited before it was ready:\n" + string.Join("\n", Lines)));
                return;
            }
            lock (_stdout)
            {
                _stdout.Add(e.Data);
            }
            if (e.Data.StartsWith("otun dev: ready", StringComparison.Ordinal))
            {
                _ready.TrySetResult();
            }
        };
        _process.ErrorDataReceived += (_, _) => { };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    /// <summary>Starts `otun dev` with the given extra flags (a dashboard port is always given, so 8090 is never needed).</summary>
    public static async Task<DevProcess> StartAsync(params string[] extraArgs)
    {
        string[] args = extraArgs.Any(a => a.StartsWith("Cluster:Dashboard=", StringComparison.Ordinal))
            ? extraArgs
            : [.. extraArgs, "--set", $"Cluster:Dashboard=http://127.0.0.1:{Ports.Free()}"];
        var dev = new DevProcess(args);
        try
        {
            await dev._ready.Task.Within(TimeSpan.FromSeconds(60));
        }
        catch
        {
            await dev.DisposeAsync();
            throw;
        }
        return dev;
    }

    /// <summary>Sends SIGTERM (what Ctrl-C or a service manager does) and waits for the exit code.</summary>
    public async Task<int> TerminateAsync()
    {
        using (var kill = Process.Start("kill", ["-TERM", _process.Id.ToString()]))
        {
            await kill.WaitForExitAsync();
        }
        await _process.WaitForExitAsync().Within(TimeSpan.FromSeconds(30));
        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        }
        _process.Dispose();
        if (Directory.Exists(DataDirectory))
        {
            Directory.Delete(DataDirectory, recursive: true);
        }
    }
}
