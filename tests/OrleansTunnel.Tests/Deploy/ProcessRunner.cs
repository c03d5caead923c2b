using System.Diagnostics;

namespace OrleansTunnel.Tests.Deploy;

/// <summary>Runs a child process with a deadline; a process that overruns is killed with its children.</summary>
public static class ProcessRunner
{
    public static async Task<ProcessResult> RunAsync(
        string fileName,
        IEnumerable<string> arguments,
        string workingDirectory,
        TimeSpan timeout,
        string? standardInput = null,
        IReadOnlyDictionary<string, string?>? environment = null)
    {
        var info = new ProcessStartInfo(fileName)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = standardInput is not null,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }
        foreach (var (key, value) in environment ?? new Dictionary<string, string?>())
        {
            if (value is null)
            {
                info.Environment.Remove(key);
            }
            else
            {
                info.Environment[key] = value;
            }
        }
        string command = $"{fileName} {string.Join(' ', info.ArgumentList)}";

        using var process = Process.Start(info) ?? throw new InvalidOperationException($"could not start '{command}'");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (standardInput is not null)
        {
            await process.StandardInput.WriteAsync(standardInput);
            process.StandardInput.Close();
        }
        using var deadline = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"'{command}' did not finish within {timeout.TotalSeconds:0} s");
        }
        // A grandchild that inherited the pipes could keep them open; do not wait for it forever.
        var output = await Task.WhenAll(stdout, stderr).WaitAsync(TimeSpan.FromSeconds(30));
        return new ProcessResult(command, process.ExitCode, output[0], output[1]);
    }
}
