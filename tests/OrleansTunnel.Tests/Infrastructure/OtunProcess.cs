using System.Diagnostics;
using System.Runtime.InteropServices;

namespace OrleansTunnel.Tests.Infrastructure;

/// <summary>
/// One `otun &lt;role&gt; args...` process (dotnet otun.dll from the test output directory): stdout and
/// stderr collected, lines awaited by prefix, killed (SIGKILL) or terminated (SIGTERM) on demand.
/// </summary>
public sealed class OtunProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly List<string> _stdout = [];
    private readonly List<string> _all = [];
    private readonly List<(string Prefix, TaskCompletionSource<string> Seen)> _waiters = [];
    private readonly TaskCompletionSource _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>A name for messages, e.g. "silo-1".</summary>
    public string Name { get; }

    /// <summary>silo, gateway or agent.</summary>
    public string Role { get; }

    public IReadOnlyList<string> Arguments { get; }

    public IReadOnlyDictionary<string, string> Environment { get; }

    public int Pid { get; }

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    private OtunProcess(string name, string role, IReadOnlyList<string> arguments, IReadOnlyDictionary<string, string> environment)
    {
        Name = name;
        Role = role;
        Arguments = arguments;
        Environment = environment;
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "otun.dll"));
        start.ArgumentList.Add(role);
        foreach (var arg in arguments)
        {
            start.ArgumentList.Add(arg);
        }
        foreach (var (key, value) in environment)
        {
            start.Environment[key] = value;
        }
        _process = new Process { StartInfo = start, EnableRaisingEvents = true };
        _process.OutputDataReceived += (_, e) => OnLine(e.Data, stdout: true);
        _process.ErrorDataReceived += (_, e) => OnLine(e.Data, stdout: false);
        _process.Exited += (_, _) => _exited.TrySetResult();
        _process.Start();
        Pid = _process.Id;
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    /// <summary>Starts `otun <paramref name="role"/>` (does not wait for anything).</summary>
    public static OtunProcess Start(string name, string role, IEnumerable<string> arguments, IReadOnlyDictionary<string, string>? environment = null) =>
        new(name, role, [.. arguments], environment ?? new Dictionary<string, string>());

    /// <summary>The same command line and environment again, as a new process.</summary>
    public OtunProcess StartAgain() => new(Name, Role, Arguments, Environment);

    /// <summary>What the process printed on standard output so far.</summary>
    public string[] Lines
    {
        get
        {
            lock (_all)
            {
                return [.. _stdout];
            }
        }
    }

    /// <summary>The last lines of standard output and error, for failure messages.</summary>
    public string Tail(int count = 40)
    {
        lock (_all)
        {
            return string.Join("\n", _all.Skip(Math.Max(0, _all.Count - count)));
        }
    }

    private void OnLine(string? line, bool stdout)
    {
        if (line is null)
        {
            return;
        }
        List<TaskCompletionSource<string>> matched = [];
        lock (_all)
        {
            _all.Add((stdout ? "" : "! ") + line);
            if (stdout)
            {
                _stdout.Add(line);
                foreach (var waiter in _waiters.Where(w => line.StartsWith(w.Prefix, StringComparison.Ordinal)).ToList())
                {
                    _waiters.Remove(waiter);
                    matched.Add(waiter.Seen);
                }
            }
        }
        foreach (var seen in matched)
        {
            seen.TrySetResult(line);
        }
    }

    /// <summary>Waits for a standard-output line starting with <paramref name="prefix"/> (also one printed before the call).</summary>
    public async Task<string> WaitForLineAsync(string prefix, TimeSpan timeout)
    {
        var seen = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_all)
        {
            var earlier = _stdout.FirstOrDefault(l => l.StartsWith(prefix, StringComparison.Ordinal));
            if (earlier is not null)
            {
                return earlier;
            }
            _waiters.Add((prefix, seen));
        }
        var first = await Task.WhenAny(seen.Task, _exited.Task, Task.Delay(timeout));
        if (first == seen.Task)
        {
            return await seen.Task;
        }
        // An exit may race the last lines: give the reader a moment to deliver them.
        if (first == _exited.Task && await Task.WhenAny(seen.Task, Task.Delay(500)) == seen.Task)
        {
            return await seen.Task;
        }
        string why = first == _exited.Task ? $"exited (code {_process.ExitCode})" : $"did not print it within {timeout.TotalSeconds:0.#} s";
        throw new TimeoutException($"{Name} (pid {Pid}) waiting for '{prefix}': {why}. Last output:\n{Tail()}");
    }

    /// <summary>Waits for "otun &lt;role&gt;: ready".</summary>
    public Task<string> ReadyAsync(TimeSpan? timeout = null) => WaitForLineAsync($"otun {Role}: ready", timeout ?? TimeSpan.FromSeconds(60));

    /// <summary>SIGKILL: the process dies at once, as on a crash or kill -9.</summary>
    public void Kill()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill();
            }
        }
        catch (InvalidOperationException)
        {
        }
        _process.WaitForExit(10_000);
    }

    /// <summary>SIGTERM (what a service manager or Ctrl-C does); waits for the exit and returns its code.</summary>
    public async Task<int> TerminateAsync(TimeSpan? timeout = null)
    {
        if (!_process.HasExited)
        {
            _ = SendSignal(Pid, 15);
        }
        await _process.WaitForExitAsync().Within(timeout ?? TimeSpan.FromSeconds(30));
        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        Kill();
        await _exited.Task.WaitAsync(TimeSpan.FromSeconds(10)).ContinueWith(_ => { }, TaskScheduler.Default);
        _process.Dispose();
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int SendSignal(int pid, int signal);
}
