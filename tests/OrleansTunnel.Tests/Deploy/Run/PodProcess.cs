using System.Diagnostics;
using System.Text;

namespace OrleansTunnel.Tests.Deploy.Run;

/// <summary>A volume mount of a container: a prepared host folder or file at the container path.</summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed record PodMount(string Source, string Target, bool ReadOnly);

/// <summary>
/// One container run as a process the way its pod would run it: in the pod's network namespace and
/// in a mount namespace of its own whose root is a copy-on-write overlay of this machine's root
/// (so container paths such as /app and /etc/otun exist without touching the machine), with the
/// pod's /etc/hosts (cluster DNS), its volumes bound at their mount paths, the root file system
/// read-only, the container's user and working directory, and exactly the given environment.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class PodProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly List<string> _lines = [];
    private readonly List<(string Text, TaskCompletionSource<string> Seen)> _waiters = [];
    private readonly TaskCompletionSource _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public string Name { get; }

    /// <summary>
    /// Where every pod sees this test run's build (bound read-only): the clone may live under a path a
    /// pod's own volumes hide (an emptyDir at /tmp hides a checkout in /tmp).
    /// </summary>
    public const string BuildPath = "/opt/otun-test-build";

    /// <summary>The otun CLI as a pod runs it (the image's /app/otun).</summary>
    public static readonly string[] Otun = ["dotnet", BuildPath + "/otun.dll"];

    public PodProcess(string name, string netns, string podDirectory, string hosts, IReadOnlyList<PodMount> mounts, string workingDirectory,
        long uid, long gid, IReadOnlyDictionary<string, string> environment, IReadOnlyList<string> command)
    {
        Name = name;
        string root = Path.Combine(podDirectory, "root");
        string overlay = Path.Combine(podDirectory, "overlay");
        Directory.CreateDirectory(root);
        Directory.CreateDirectory(overlay);
        File.WriteAllText(Path.Combine(podDirectory, "hosts"), hosts);
        var script = new StringBuilder("set -eu\n");
        script.Append($"mount -t tmpfs -o size=256m tmpfs {Q(overlay)}\nmkdir {Q(overlay + "/upper")} {Q(overlay + "/work")}\n");
        script.Append($"mount -t overlay overlay -o lowerdir=/,upperdir={Q(overlay + "/upper")},workdir={Q(overlay + "/work")} {Q(root)}\n");
        script.Append($"for d in proc dev sys; do mount --rbind /$d {Q(root)}/$d; done\n");
        script.Append($"cp {Q(Path.Combine(podDirectory, "hosts"))} {Q(root + "/etc/hosts")}\n");
        script.Append($"mkdir -p {Q(root + BuildPath)}; mount --bind {Q(AppContext.BaseDirectory)} {Q(root + BuildPath)}; mount -o remount,bind,ro {Q(root + BuildPath)}\n");
        foreach (var m in mounts)
        {
            string target = root + m.Target;
            script.Append(File.Exists(m.Source)
                ? $"mkdir -p {Q(Path.GetDirectoryName(target)!)}; touch {Q(target)}\n"
                : $"mkdir -p {Q(target)}\n");
            script.Append($"mount --bind {Q(m.Source)} {Q(target)}\n");
            if (m.ReadOnly)
            {
                script.Append($"mount -o remount,bind,ro {Q(target)}\n");
            }
        }
        script.Append($"mkdir -p {Q(root + workingDirectory)}\n");
        // readOnlyRootFilesystem: only the volumes are writable.
        script.Append($"mount -o remount,ro {Q(root)}\n");
        script.Append($"exec /usr/sbin/chroot --userspec={uid}:{gid} {Q(root)} /bin/sh -c 'cd \"$0\" && exec \"$@\"' {Q(workingDirectory)} \"$@\"\n");

        var start = new ProcessStartInfo("ip") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in new[] { "netns", "exec", netns, "unshare", "-m", "--propagation", "private", "sh", "-c", script.ToString(), "sh" }.Concat(command))
        {
            start.ArgumentList.Add(arg);
        }
        start.Environment.Clear();
        foreach (var (key, value) in environment)
        {
            start.Environment[key] = value;
        }
        _process = new Process { StartInfo = start, EnableRaisingEvents = true };
        _process.OutputDataReceived += (_, e) => OnLine(e.Data);
        _process.ErrorDataReceived += (_, e) => OnLine(e.Data is null ? null : "! " + e.Data);
        _process.Exited += (_, _) => _exited.TrySetResult();
        _process.Start();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    private static string Q(string s) => "'" + s.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    public bool HasExited => _process.HasExited;

    public string[] Lines
    {
        get
        {
            lock (_lines)
            {
                return [.. _lines];
            }
        }
    }

    public string Tail(int count = 40)
    {
        lock (_lines)
        {
            return $"--- {Name} ---\n" + string.Join("\n", _lines.Skip(Math.Max(0, _lines.Count - count)));
        }
    }

    private void OnLine(string? line)
    {
        if (line is null)
        {
            return;
        }
        List<TaskCompletionSource<string>> matched = [];
        lock (_lines)
        {
            _lines.Add(line);
            foreach (var w in _waiters.Where(w => line.Contains(w.Text, StringComparison.Ordinal)).ToList())
            {
                _waiters.Remove(w);
                matched.Add(w.Seen);
            }
        }
        matched.ForEach(m => m.TrySetResult(line));
    }

    /// <summary>Waits for an output line containing <paramref name="text"/> (also one printed before).</summary>
    public async Task<string> WaitForLineAsync(string text, TimeSpan timeout)
    {
        var seen = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_lines)
        {
            if (_lines.FirstOrDefault(l => l.Contains(text, StringComparison.Ordinal)) is { } earlier)
            {
                return earlier;
            }
            _waiters.Add((text, seen));
        }
        var first = await Task.WhenAny(seen.Task, _exited.Task, Task.Delay(timeout));
        if (first == seen.Task)
        {
            return await seen.Task;
        }
        string why = first == _exited.Task ? $"exited (code {_process.ExitCode})" : $"did not print it within {timeout.TotalSeconds:0} s";
        throw new TimeoutException($"{Name} waiting for '{text}': {why}.\n{Tail()}");
    }

    /// <summary>Waits for the process to exit (within <paramref name="timeout"/>) and returns its exit code.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        if (await Task.WhenAny(_exited.Task, Task.Delay(timeout)) != _exited.Task)
        {
            throw new TimeoutException($"{Name} did not exit within {timeout.TotalSeconds:0} s.\n{Tail()}");
        }
        await _process.WaitForExitAsync();
        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            // SIGTERM first (what the kubelet sends), then SIGKILL.
            _ = Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
            if (await Task.WhenAny(_exited.Task, Task.Delay(TimeSpan.FromSeconds(20))) != _exited.Task)
            {
                _process.Kill(entireProcessTree: true);
            }
        }
        await _process.WaitForExitAsync();
        _process.Dispose();
    }
}
