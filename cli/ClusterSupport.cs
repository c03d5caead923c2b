using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Reflection;
using System.Security.Cryptography;
using System.Text;

namespace OrleansTunnel.Cli;

/// <summary>`otun cluster`'s start-up helpers: finding executables, free ports, waiting for children to answer.</summary>
public static partial class ClusterCommand
{
    /// <summary>How to start this otun again: the apphost itself, or `dotnet otun.dll`.</summary>
    private static (string Command, string[] Prefix) OtunCommand()
    {
        string process = Environment.ProcessPath ?? throw new CliException("cannot tell which executable is running");
        if (string.Equals(Path.GetFileNameWithoutExtension(process), "dotnet", StringComparison.OrdinalIgnoreCase))
        {
            string dll = Assembly.GetEntryAssembly()?.Location is { Length: > 0 } location ? location : Path.Combine(AppContext.BaseDirectory, "otun.dll");
            return (process, [dll]);
        }
        return (process, []);
    }

    private static string Inv(int value) => value.ToString(System.Globalization.CultureInfo.InvariantCulture);

    private static string NewTokenValue() =>
        Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private static CancellationToken ToToken(this TimeSpan timeout) => new CancellationTokenSource(timeout).Token;

    private static string? FindExecutable(string name)
    {
        if (name.Contains('/'))
        {
            return File.Exists(name) ? Path.GetFullPath(name) : null;
        }
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            string candidate = Path.Combine(dir, name);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }
        return null;
    }

    private static bool PortIsFree(int port)
    {
        try
        {
            // SO_REUSEADDR as Kestrel and redis set it: a port with only TIME_WAIT connections left counts as free.
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            socket.Bind(new IPEndPoint(IPAddress.Loopback, port));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    /// <summary>Polls a condition every 100 ms until it holds; a stop signal or the child's exit abort the start.</summary>
    private static async Task Until(ShutdownSignal signal, ClusterChild? child, Func<Task<bool>> condition, string what)
    {
        var started = Stopwatch.StartNew();
        bool warned = false;
        while (true)
        {
            if (signal.Token.IsCancellationRequested)
            {
                throw new StartupAbortedException("");
            }
            if (child is not null && child.HasExited)
            {
                throw new StartupAbortedException($"{child.Name} exited (code {child.ExitCode}) while waiting for {what}; see {child.LogPath}");
            }
            if (await condition())
            {
                return;
            }
            if (!warned && started.Elapsed > TimeSpan.FromSeconds(60))
            {
                Console.Error.WriteLine($"otun cluster: still waiting for {what} after 60 s (Ctrl-C to give up)");
                warned = true;
            }
            await Task.Delay(100, signal.Token).ContinueWith(_ => { }, TaskScheduler.Default);
        }
    }

    private static Task Until(ShutdownSignal signal, ClusterChild child, Task ready, string what) =>
        Until(signal, child, () => Task.FromResult(ready.IsCompletedSuccessfully), what);

    /// <summary>True when a redis-server on this loopback port takes the password (if any) and answers PING with +PONG (raw RESP over TCP).</summary>
    public static async Task<bool> RedisAnswersAsync(int port, string? password)
    {
        try
        {
            using var client = new TcpClient();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(1));
            await client.ConnectAsync(IPAddress.Loopback, port, timeout.Token);
            var stream = client.GetStream();
            string expected = password is null ? "+PONG\r\n" : "+OK\r\n+PONG\r\n";
            await stream.WriteAsync(Encoding.ASCII.GetBytes((password is null ? "" : $"AUTH \"{password}\"\r\n") + "PING\r\n"), timeout.Token);
            var answer = new StringBuilder();
            var buffer = new byte[64];
            while (answer.Length < expected.Length && !answer.ToString().StartsWith('-'))
            {
                int n = await stream.ReadAsync(buffer, timeout.Token);
                if (n == 0)
                {
                    return false;
                }
                answer.Append(Encoding.ASCII.GetString(buffer, 0, n));
            }
            return answer.ToString().StartsWith(expected, StringComparison.Ordinal);
        }
        catch (Exception ex) when (ex is SocketException or IOException or OperationCanceledException)
        {
            return false;
        }
    }

    private static async Task<bool> AnswersAsync(HttpClient http, string url, string host)
    {
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, url);
            request.Headers.Host = host;
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            return (int)response.StatusCode < 500;
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or IOException)
        {
            return false;
        }
    }

    private sealed class StartupAbortedException(string message) : Exception(message);

}
