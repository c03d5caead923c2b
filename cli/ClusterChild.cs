using System.Diagnostics;
using System.Runtime.InteropServices;

namespace OrleansTunnel.Cli;

/// <summary>
/// One child process of `otun cluster`: output relayed with a [name] prefix and written to its log file.
/// Supervised (after the cluster is ready, with --supervise), a child that exits for any reason other
/// than the cluster stopping is started again with the same command line and environment, after a
/// backoff that grows while it keeps exiting soon after its start.
/// </summary>
internal sealed class ClusterChild : IDisposable
{
    private readonly ProcessStartInfo _start;
    private readonly StreamWriter _log;
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly string? _readyPrefix;
    private readonly Lock _gate = new();
    private Process _process;
    private DateTime _startedAt;
    private int _quickExits;
    private volatile bool _stopping;
    private bool _logClosed;

    public string Name { get; }
    public string Role { get; }
    public string LogPath { get; }
    public int Pid { get; private set; }
    public Task Ready => _ready.Task;

    /// <summary>Restarts after an exit (set once the cluster is ready, with --supervise).</summary>
    public bool Supervised { get; set; }

    /// <summary>How long a stop may take before the child is killed (its role's grace period and a margin).</summary>
    public TimeSpan StopTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Called after every (re)start with the new pid (the cluster rewrites its pid file).</summary>
    public Action? PidChanged { get; set; }

    /// <summary>Restarts so far.</summary>
    public int Restarts { get; private set; }

    public bool HasExited => _process.HasExited;
    public int ExitCode => _process.HasExited ? _process.ExitCode : -1;

    private ClusterChild(string name, string? readyPrefix, ProcessStartInfo start, string logPath)
    {
        Name = name;
        Role = name.Split('-')[0];
        _readyPrefix = readyPrefix;
        _start = start;
        LogPath = logPath;
        _log = new StreamWriter(new FileStream(logPath, FileMode.Create, FileAccess.Write, FileShare.Read)) { AutoFlush = true };
        _process = Launch();
    }

    public static ClusterChild Start(string name, string? readyPrefix, string command, IEnumerable<string> args, IDictionary<string, string>? environment, string dataDirectory)
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
        RuntimeDefaults.Apply(start.Environment, Environment.GetEnvironmentVariable);
        return new ClusterChild(name, readyPrefix, start, Path.Combine(dataDirectory, "logs", name + ".log"));
    }

    private Process Launch()
    {
        var process = new Process { StartInfo = _start, EnableRaisingEvents = true };
        process.OutputDataReceived += (_, e) => Line(e.Data, Console.Out);
        process.ErrorDataReceived += (_, e) => Line(e.Data, Console.Error);
        process.Exited += (_, _) => OnExited(process);
        if (!process.Start())
        {
            throw new CliException($"could not start {Name}");
        }
        _startedAt = DateTime.UtcNow;
        Pid = process.Id;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    private void OnExited(Process process)
    {
        if (_stopping)
        {
            return;
        }
        string code = SafeExitCode(process);
        if (!Supervised)
        {
            // Reported whenever it happens (during start-up the start is also aborted); the others keep running.
            Console.WriteLine($"{Name} exited (code {code})");
            return;
        }
        // Exits soon after a start back off (1 s, 2 s, ... 30 s) so a crash loop does not spin.
        bool quick = DateTime.UtcNow - _startedAt < TimeSpan.FromSeconds(30);
        _quickExits = quick ? _quickExits + 1 : 0;
        var delay = TimeSpan.FromSeconds(Math.Min(30, Math.Pow(2, Math.Max(0, _quickExits - 1))));
        Console.WriteLine($"{Name} exited (code {code}); supervised: restarting it with the same arguments in {delay.TotalSeconds:0} s");
        _ = RestartAfterAsync(delay);
    }

    private async Task RestartAfterAsync(TimeSpan delay)
    {
        await Task.Delay(delay);
        lock (_gate)
        {
            if (_stopping)
            {
                return;
            }
            var previous = _process;
            try
            {
                _process = Launch();
            }
            catch (Exception ex) when (ex is CliException or System.ComponentModel.Win32Exception or InvalidOperationException)
            {
                Console.Error.WriteLine($"otun cluster: could not restart {Name}: {ex.Message}");
                return;
            }
            previous.Dispose();
            Restarts++;
        }
        Console.WriteLine($"{Name} restarted pid={Pid} (restart {Restarts})");
        PidChanged?.Invoke();
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
            if (!_ready.TrySetResult() && Supervised)
            {
                Console.WriteLine($"{Name} ready again (pid {Pid})");
            }
        }
    }

    private static string SafeExitCode(Process process)
    {
        try
        {
            return process.ExitCode.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (InvalidOperationException)
        {
            return "?";
        }
    }

    /// <summary>SIGTERM, then SIGKILL if it has not exited within <see cref="StopTimeout"/>; never restarted afterwards.</summary>
    public async Task StopAsync()
    {
        Process process;
        lock (_gate)
        {
            _stopping = true;
            process = _process;
        }
        if (process.HasExited)
        {
            return;
        }
        _ = Kill(Pid, SigTerm);
        try
        {
            await process.WaitForExitAsync().WaitAsync(StopTimeout);
        }
        catch (TimeoutException)
        {
            Console.Error.WriteLine($"otun cluster: {Name} did not exit within {StopTimeout.TotalSeconds:0} s of SIGTERM; killing it");
            try
            {
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(5));
            }
            catch (Exception ex) when (ex is InvalidOperationException or TimeoutException or System.ComponentModel.Win32Exception)
            {
            }
        }
    }

    public void Dispose()
    {
        Process process;
        lock (_gate)
        {
            _stopping = true;
            process = _process;
        }
        try
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }
        catch (InvalidOperationException)
        {
        }
        process.Dispose();
        lock (_log)
        {
            _logClosed = true;
            _log.Dispose();
        }
    }

    private const int SigTerm = 15;

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    internal static extern int Kill(int pid, int signal);
}
