using System.Diagnostics;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using OrleansTunnel.Gateway.Ingress;
using OrleansTunnel.Tests.Infrastructure;

namespace OrleansTunnel.Tests.Security;

/// <summary>Helpers of the visitor-side security tests: raw exchanges, echo parsing, attack scripts.</summary>
internal static class SecurityKit
{
    public static IngressForwarder Forwarder(this TunnelHarness h) => h.Gateway.Services.GetRequiredService<IngressForwarder>();

    /// <summary>What came back on one raw connection: all bytes until the server closed (or the wait ended).</summary>
    public sealed record RawResult(string Text, bool ServerClosed)
    {
        /// <summary>Status codes of every response head on the connection, in order.</summary>
        public List<int> Statuses => [.. System.Text.RegularExpressions.Regex.Matches(Text, @"HTTP/1\.[01] (\d{3})").Select(m => int.Parse(m.Groups[1].Value))];

        public int FirstStatus => Statuses.Count > 0 ? Statuses[0] : 0;
    }

    /// <summary>
    /// Sends the bytes on a fresh connection and reads until the server closes it, at most
    /// <paramref name="wait"/>; ServerClosed says whether the server closed within that bound.
    /// </summary>
    public static async Task<RawResult> ExchangeAsync(int port, byte[] request, TimeSpan wait)
    {
        using var client = new TcpClient();
        await client.ConnectAsync(System.Net.IPAddress.Loopback, port);
        var stream = client.GetStream();
        await stream.WriteAsync(request);
        var all = new MemoryStream();
        var buffer = new byte[16 * 1024];
        using var cts = new CancellationTokenSource(wait);
        bool closed = false;
        try
        {
            while (true)
            {
                int n = await stream.ReadAsync(buffer, cts.Token);
                if (n == 0)
                {
                    closed = true;
                    break;
                }
                all.Write(buffer, 0, n);
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (IOException)
        {
            // A reset is a close too.
            closed = true;
        }
        return new RawResult(Encoding.Latin1.GetString(all.ToArray()), closed);
    }

    public static Task<RawResult> ExchangeAsync(int port, string request, TimeSpan? wait = null) =>
        ExchangeAsync(port, Encoding.Latin1.GetBytes(request), wait ?? TimeSpan.FromSeconds(10));

    /// <summary>The header values the backend's /echo saw under a name.</summary>
    public static List<string> EchoHeader(string json, string name)
    {
        using var doc = JsonDocument.Parse(json);
        return [.. doc.RootElement.GetProperty("headers").EnumerateArray()
            .Where(p => p[0].GetString()!.Equals(name, StringComparison.OrdinalIgnoreCase))
            .Select(p => p[1].GetString()!)];
    }

    /// <summary>The body of a raw response (after the head; not de-chunked).</summary>
    public static string Body(string raw)
    {
        int i = raw.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        return i < 0 ? "" : raw[(i + 4)..];
    }

    public static string AttackScript(string name, [CallerFilePath] string source = "")
    {
        var beside = Path.Combine(Path.GetDirectoryName(source)!, "h2attacks", name);
        if (File.Exists(beside))
        {
            return beside;
        }
        return Path.Combine(AppContext.BaseDirectory, "Security", "h2attacks", name);
    }

    /// <summary>Runs an attack script with the system Python (which has the Debian python3-h2).</summary>
    public static async Task<(int ExitCode, string Output)> RunAttackAsync(string script, TimeSpan timeout, params string[] args)
    {
        var psi = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(AttackScript(script));
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{script} did not finish within {timeout.TotalSeconds} s; output so far: {await stdout}{await stderr}");
        }
        return (process.ExitCode, await stdout + await stderr);
    }
}
