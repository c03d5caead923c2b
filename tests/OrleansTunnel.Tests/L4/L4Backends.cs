using System.Diagnostics;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Threading.Channels;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;

namespace OrleansTunnel.Tests.L4;

/// <summary>A real TCP server on a loopback port running <paramref name="handler"/> for every connection.</summary>
public sealed class TcpProbe : IAsyncDisposable
{
    private readonly Socket _listener = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
    private readonly CancellationTokenSource _stop = new();

    public TcpProbe(Func<Socket, TcpProbe, Task> handler)
    {
        _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _listener.Listen(128);
        Port = ((IPEndPoint)_listener.LocalEndPoint!).Port;
        _ = Task.Run(async () =>
        {
            while (!_stop.IsCancellationRequested)
            {
                Socket s;
                try
                {
                    s = await _listener.AcceptAsync(_stop.Token);
                }
                catch (Exception)
                {
                    return;
                }
                _ = Task.Run(async () =>
                {
                    try
                    {
                        await handler(s, this);
                    }
                    catch (Exception ex)
                    {
                        Outcomes.Writer.TryWrite("error:" + ex.GetType().Name + ":" + (ex as SocketException)?.SocketErrorCode);
                    }
                    finally
                    {
                        s.Dispose();
                    }
                });
            }
        });
    }

    public int Port { get; }

    /// <summary>How each connection ended as the backend saw it ("eof", "reset", ...).</summary>
    public Channel<string> Outcomes { get; } = Channel.CreateUnbounded<string>();

    /// <summary>
    /// Echoes until end of file, then answers "|eof" and closes (half-close both ways). Records how the
    /// connection ended as "RECEIVED:eof" or "RECEIVED:reset" (the first 64 bytes received as text).
    /// </summary>
    public static TcpProbe Echo() => new(async (s, probe) =>
    {
        var buffer = new byte[64 * 1024];
        var received = new StringBuilder();
        try
        {
            int n;
            while ((n = await s.ReceiveAsync(buffer)) > 0)
            {
                if (received.Length < 64)
                {
                    received.Append(Encoding.ASCII.GetString(buffer, 0, Math.Min(n, 64 - received.Length)));
                }
                await s.SendAsync(buffer.AsMemory(0, n));
            }
            await s.SendAsync("|eof"u8.ToArray());
            s.Shutdown(SocketShutdown.Send);
            probe.Outcomes.Writer.TryWrite(received + ":eof");
        }
        catch (SocketException ex) when (ex.SocketErrorCode == SocketError.ConnectionReset)
        {
            probe.Outcomes.Writer.TryWrite(received + ":reset");
        }
    });

    /// <summary>How the connection that sent <paramref name="received"/> ended ("eof", "reset"), waiting for it.</summary>
    public async Task<string> OutcomeOfAsync(string received, TimeSpan timeout)
    {
        using var deadline = new CancellationTokenSource(timeout);
        while (true)
        {
            string outcome = await Outcomes.Reader.ReadAsync(deadline.Token);
            if (outcome.StartsWith(received + ":", StringComparison.Ordinal))
            {
                return outcome[(received.Length + 1)..];
            }
        }
    }

    /// <summary>Reads a PROXY protocol v2 header and answers the source address it carries ("src=IP:PORT\n").</summary>
    public static TcpProbe ProxyHeader() => new(async (s, probe) =>
    {
        var buffer = new byte[256];
        int filled = 0;
        (IPEndPoint Source, IPEndPoint Destination, int Length)? header = null;
        while (header is null && filled < buffer.Length)
        {
            int n = await s.ReceiveAsync(buffer.AsMemory(filled));
            if (n == 0)
            {
                break;
            }
            filled += n;
            header = OrleansTunnel.Agent.L4.ProxyProtocolV2.Parse(buffer.AsSpan(0, filled));
        }
        await s.SendAsync(Encoding.ASCII.GetBytes(header is { } h ? $"src={h.Source}\n" : "no header\n"));
        s.Shutdown(SocketShutdown.Send);
    });

    /// <summary>Reads one byte, then closes with a TCP RST.</summary>
    public static TcpProbe ResetAfterFirstByte() => new(async (s, _) =>
    {
        var one = new byte[1];
        await s.ReceiveAsync(one);
        s.LingerState = new LingerOption(true, 0);
        s.Close();
    });

    /// <summary>A TLS server with its own certificate: after the handshake it writes "hello from NAME\n" and closes.</summary>
    public static TcpProbe Tls(X509Certificate2 certificate, string name) => new(async (s, _) =>
    {
        await using var ssl = new SslStream(new NetworkStream(s, ownsSocket: false));
        await ssl.AuthenticateAsServerAsync(new SslServerAuthenticationOptions { ServerCertificate = certificate });
        await ssl.WriteAsync(Encoding.ASCII.GetBytes($"hello from {name}\n"));
        await ssl.ShutdownAsync();
    });

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Dispose();
        await Task.CompletedTask;
    }
}

/// <summary>A real UDP server on a loopback port that answers every datagram with the same bytes.</summary>
public sealed class UdpEcho : IDisposable
{
    private readonly Socket _socket = new(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);

    public UdpEcho()
    {
        _socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        Port = ((IPEndPoint)_socket.LocalEndPoint!).Port;
        _ = Task.Run(async () =>
        {
            var buffer = new byte[65536];
            EndPoint any = new IPEndPoint(IPAddress.Any, 0);
            while (true)
            {
                try
                {
                    var r = await _socket.ReceiveFromAsync(buffer, SocketFlags.None, any);
                    await _socket.SendToAsync(buffer.AsMemory(0, r.ReceivedBytes), SocketFlags.None, r.RemoteEndPoint);
                }
                catch (ObjectDisposedException)
                {
                    return;
                }
                catch (SocketException)
                {
                }
            }
        });
    }

    public int Port { get; }

    public void Dispose() => _socket.Dispose();
}

/// <summary>A real program run to its end (redis-cli, ssh, scp, dig): exit code, standard output and error.</summary>
public static class Tool
{
    public static async Task<(int Exit, string Out, string Err)> RunAsync(string file, IEnumerable<string> args, TimeSpan timeout, string? stdinFile = null)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = stdinFile is not null, UseShellExecute = false };
        foreach (var a in args)
        {
            start.ArgumentList.Add(a);
        }
        using var p = Process.Start(start)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (stdinFile is not null)
        {
            await using (var input = File.OpenRead(stdinFile))
            {
                await input.CopyToAsync(p.StandardInput.BaseStream);
            }
            p.StandardInput.Close();
        }
        try
        {
            await p.WaitForExitAsync().Within(timeout, $"{Path.GetFileName(file)} {string.Join(' ', args)}");
        }
        catch
        {
            p.Kill(entireProcessTree: true);
            throw;
        }
        return (p.ExitCode, await stdout, await stderr);
    }

    /// <summary>Path of an installed program, or a failure that says which package test.sh installs for it.</summary>
    public static string Require(string name, string package)
    {
        foreach (var dir in new[] { "/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin" })
        {
            string path = Path.Combine(dir, name);
            if (File.Exists(path))
            {
                return path;
            }
        }
        throw new InvalidOperationException($"{name} is not installed: apt-get install -y {package} (./test.sh installs it)");
    }
}
