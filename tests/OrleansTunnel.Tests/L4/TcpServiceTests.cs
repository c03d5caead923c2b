using Microsoft.Extensions.DependencyInjection;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;

namespace OrleansTunnel.Tests.L4;

[CollectionDefinition("L4")]
public sealed class L4Collection : ICollectionFixture<L4Rig>;

/// <summary>TCP services with real clients: redis-cli to redis-server, ssh and scp to sshd, and the edges of a byte stream.</summary>
[Collection("L4")]
public sealed class TcpServiceTests(L4Rig rig)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Redis_cli_ping_a_10_MiB_value_and_monitor_through_a_tcp_service()
    {
        string cli = Tool.Require("redis-cli", "redis-tools");
        string[] at = ["-h", "127.0.0.1", "-p", rig.Port["redis"].ToString()];
        var ping = await Tool.RunAsync(cli, [.. at, "PING"], Deadline);
        Assert.Equal("PONG", ping.Out.Trim());

        // MONITOR: a long-lived stream that must see the commands other connections send meanwhile.
        var monitorStart = new System.Diagnostics.ProcessStartInfo(cli) { RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in at.Append("MONITOR"))
        {
            monitorStart.ArgumentList.Add(a);
        }
        using var monitor = System.Diagnostics.Process.Start(monitorStart)!;
        var seen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _ = Task.Run(async () =>
        {
            while (await monitor.StandardOutput.ReadLineAsync() is { } line)
            {
                if (line.Contains("\"GET\" \"l4-big\"", StringComparison.Ordinal))
                {
                    seen.TrySetResult();
                }
            }
        });
        await Tool.RunAsync(cli, [.. at, "PING"], Deadline); // MONITOR is on once it echoes a command: wait until it does

        string file = Path.GetTempFileName();
        try
        {
            var value = Convert.ToBase64String(RandomNumberGenerator.GetBytes(10 * 1024 * 1024 * 3 / 4));
            await File.WriteAllTextAsync(file, value);
            var set = await Tool.RunAsync(cli, [.. at, "-x", "SET", "l4-big"], Deadline, stdinFile: file);
            Assert.Equal("OK", set.Out.Trim());
            var get = await Tool.RunAsync(cli, [.. at, "--raw", "GET", "l4-big"], Deadline);
            Assert.Equal(Hashing.Sha256(Encoding.ASCII.GetBytes(value)), Hashing.Sha256(Encoding.ASCII.GetBytes(get.Out.TrimEnd('\n'))));
            await seen.Task.Within(Deadline);
        }
        finally
        {
            monitor.Kill();
            File.Delete(file);
        }
        var stats = rig.Telemetry.Stats("tcp", "redis");
        await Eventually.TrueAsync(() => Interlocked.Read(ref stats.BytesOut) >= 10 * 1024 * 1024, Deadline, "the redis service's bytes out were never counted");
    }

    [Fact]
    public async Task Ssh_runs_a_command_and_scp_copies_64_MiB_through_a_tcp_service()
    {
        string ssh = Tool.Require("ssh", "openssh-client");
        string scp = Tool.Require("scp", "openssh-client");
        int port = rig.Port["ssh"];
        string user = Environment.UserName;
        var run = await Tool.RunAsync(ssh, [.. rig.Ssh.ClientOptions(port, "-p"), $"{user}@127.0.0.1", "echo tunnel-$((6*7))"], Deadline);
        Assert.True(run.Exit == 0, $"ssh failed ({run.Exit}): {run.Err}");
        Assert.Equal("tunnel-42", run.Out.Trim());

        string source = Path.Combine(rig.Ssh.Directory, "payload.bin");
        string copy = Path.Combine(rig.Ssh.Directory, "copy.bin");
        await File.WriteAllBytesAsync(source, RandomNumberGenerator.GetBytes(64 * 1024 * 1024));
        try
        {
            var up = await Tool.RunAsync(scp, [.. rig.Ssh.ClientOptions(port, "-P"), source, $"{user}@127.0.0.1:{copy}"], TimeSpan.FromMinutes(3));
            Assert.True(up.Exit == 0, $"scp failed ({up.Exit}): {up.Err}");
            Assert.Equal(Hashing.Sha256(await File.ReadAllBytesAsync(source)), Hashing.Sha256(await File.ReadAllBytesAsync(copy)));
        }
        finally
        {
            File.Delete(source);
            File.Delete(copy);
        }
    }

    [Fact]
    public async Task A_visitor_that_shuts_down_its_sending_side_still_receives_the_rest()
    {
        using var client = await ConnectAsync("echo");
        await client.SendAsync("half-close"u8.ToArray());
        client.Shutdown(SocketShutdown.Send);
        // The backend saw the end of file (it answers "|eof" only then) and its own close comes back as ours.
        Assert.Equal("half-close|eof", await ReadToEndAsync(client));
        Assert.Equal("eof", await rig.Echo.OutcomeOfAsync("half-close", Deadline));
    }

    [Fact]
    public async Task A_reset_on_either_side_resets_the_other()
    {
        // Backend resets -> visitor sees a reset, not a clean end.
        using (var client = await ConnectAsync("resetting"))
        {
            await client.SendAsync("x"u8.ToArray());
            var error = await Assert.ThrowsAsync<SocketException>(() => ReadToEndAsync(client));
            Assert.Equal(SocketError.ConnectionReset, error.SocketErrorCode);
        }

        // Visitor resets -> the backend sees a reset, not an end of file.
        var visitor = await ConnectAsync("echo");
        await visitor.SendAsync("reset-me"u8.ToArray());
        Assert.Equal("reset-me", Encoding.ASCII.GetString(await ReadExactlyAsync(visitor, 8)));
        visitor.LingerState = new LingerOption(true, 0);
        visitor.Close();
        Assert.Equal("reset", await rig.Echo.OutcomeOfAsync("reset-me", Deadline));
    }

    [Fact]
    public async Task An_idle_connection_is_closed_after_the_services_idle_timeout()
    {
        using var client = await ConnectAsync("idle");
        await client.SendAsync("a"u8.ToArray());
        Assert.Equal("a", Encoding.ASCII.GetString(await ReadExactlyAsync(client, 1)));
        // Nothing more is sent: the gateway closes the connection after IdleTimeout (2 s); a hang fails the read's deadline.
        var error = await Record.ExceptionAsync(() => ReadToEndAsync(client));
        Assert.True(error is null or SocketException, $"the idle connection was not closed: {error}");
        var journal = rig.Harness.Gateway.Services.GetRequiredService<Gateway.Requests.RequestJournal>();
        await Eventually.TrueAsync(() => journal.List(new Grains.RequestQuery(Service: "idle")).Any(r => r.Error?.Contains("idle", StringComparison.Ordinal) == true),
            Deadline, "the journal never recorded the idle close");
    }

    [Fact]
    public async Task A_visitor_outside_AllowedNetworks_is_refused_and_counted()
    {
        var stats = rig.Telemetry.Stats("tcp", "denied");
        long before = Interlocked.Read(ref stats.Refused);
        // Closed without a byte (no stream was opened: nothing reached the agent or backend); the reset may
        // already arrive while the connect completes.
        var error = await Record.ExceptionAsync(async () =>
        {
            using var client = await ConnectAsync("denied");
            Assert.Equal("", await ReadToEndAsync(client));
        });
        Assert.True(error is null or SocketException, $"the refused visitor's connection did not just close: {error}");
        Assert.Equal(before + 1, Interlocked.Read(ref stats.Refused));
        Assert.Equal(0, Interlocked.Read(ref stats.Connections));
    }

    [Fact]
    public async Task The_backend_gets_a_PROXY_v2_header_with_the_visitors_address()
    {
        using var client = await ConnectAsync("proxied");
        var local = (IPEndPoint)client.LocalEndPoint!;
        Assert.Equal($"src={local}\n", await ReadToEndAsync(client));
    }

    [Fact]
    public async Task Killing_the_agent_mid_stream_closes_the_visitors_connection()
    {
        await using var agent = OtunProcess.Start("l4-agent", "agent",
            ["--agent-id", L4Rig.KillAgentId, "--gateway", rig.Harness.TunnelUrl, "--connections", "1",
             "--expose", $"tcp://127.0.0.1:{rig.Echo.Port}", "--service", "kill-echo"],
            new Dictionary<string, string> { ["OTUN_Agent__Token"] = rig.KillToken });
        await agent.ReadyAsync();
        var registry = rig.Harness.Gateway.Services.GetRequiredService<Gateway.Tunnel.ConnectionRegistry>();
        await Eventually.TrueAsync(() => registry.Choose("kill-echo") is not null, Deadline, "the killable agent never connected");

        using var client = await ConnectAsync("kill-echo");
        await client.SendAsync("alive"u8.ToArray());
        Assert.Equal("alive", Encoding.ASCII.GetString(await ReadExactlyAsync(client, 5)));
        agent.Kill();
        // The connection ends (reset, as the stream was lost) instead of hanging.
        var error = await Record.ExceptionAsync(() => ReadToEndAsync(client).Within(Deadline));
        Assert.True(error is null or SocketException, $"the visitor's connection did not close: {error}");
    }

    [Fact]
    public async Task A_run_time_listener_added_through_the_admin_API_serves_and_goes_away_when_removed()
    {
        int port = Ports.Free();
        using var admin = new HttpClient { BaseAddress = rig.Harness.Admin };
        admin.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", rig.Harness.AdminToken);
        var bad = await admin.PutAsync("api/l4/services", new StringContent("""{"protocol":"tcp","listen":"nowhere","service":"echo"}""", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Contains("Listen 'nowhere' is not address:port", await bad.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        var put = await admin.PutAsync("api/l4/services", new StringContent($$"""{"protocol":"tcp","listen":"127.0.0.1:{{port}}","service":"echo"}""", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        var runtime = rig.Harness.Gateway.Services.GetRequiredService<Gateway.L4.L4RuntimeListeners>();
        await Eventually.TrueAsync(() => runtime.Open.Any(m => m.Listen == $"127.0.0.1:{port}"), Deadline, "the gateway never opened the run-time listener");
        using (var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            await client.ConnectAsync(IPAddress.Loopback, port).Within(Deadline);
            await client.SendAsync("runtime"u8.ToArray());
            client.Shutdown(SocketShutdown.Send);
            Assert.Equal("runtime|eof", await ReadToEndAsync(client));
        }
        Assert.Contains($"127.0.0.1:{port}", await admin.GetStringAsync("api/l4/services"), StringComparison.Ordinal);

        var delete = await admin.DeleteAsync($"api/l4/services?protocol=tcp&listen=127.0.0.1:{port}");
        Assert.Equal(HttpStatusCode.OK, delete.StatusCode);
        await Eventually.TrueAsync(() => runtime.Open.Count == 0, Deadline, "the gateway never closed the run-time listener");
        using var refused = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        var error = await Assert.ThrowsAsync<SocketException>(() => refused.ConnectAsync(IPAddress.Loopback, port).Within(Deadline));
        Assert.Equal(SocketError.ConnectionRefused, error.SocketErrorCode);
    }

    [Fact]
    public async Task A_tcp_service_on_a_gateway_without_the_agent_is_served_through_the_peer_link()
    {
        int port = Ports.Free();
        await using var peer = await rig.Harness.StartPeerGatewayAsync("gw-l4-peer", new()
        {
            ["Gateway:TcpServices:0:Listen"] = $"127.0.0.1:{port}",
            ["Gateway:TcpServices:0:Service"] = "echo",
        });
        var routing = peer.Service<Gateway.Routing.RoutingCache>();
        await Eventually.TrueAsync(() => routing.Current.Snapshot.Endpoints.ContainsKey("echo"), Deadline, "the peer gateway never learnt where 'echo' is served");
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(IPAddress.Loopback, port).Within(Deadline);
        await client.SendAsync("across"u8.ToArray());
        client.Shutdown(SocketShutdown.Send);
        Assert.Equal("across|eof", await ReadToEndAsync(client));
        Assert.True(peer.Service<Gateway.Cluster.Dispatcher>().CrossGateway >= 1, "the connection did not cross to the gateway holding the agent");
    }

    private async Task<Socket> ConnectAsync(string service)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(IPAddress.Loopback, rig.Port[service]).Within(Deadline);
        return socket;
    }

    internal static async Task<string> ReadToEndAsync(Socket socket)
    {
        var all = new MemoryStream();
        var buffer = new byte[8192];
        using var deadline = new CancellationTokenSource(Deadline);
        int n;
        while ((n = await socket.ReceiveAsync(buffer, SocketFlags.None, deadline.Token)) > 0)
        {
            all.Write(buffer, 0, n);
        }
        return Encoding.ASCII.GetString(all.ToArray());
    }

    private static async Task<byte[]> ReadExactlyAsync(Socket socket, int count)
    {
        var buffer = new byte[count];
        using var deadline = new CancellationTokenSource(Deadline);
        int filled = 0;
        while (filled < count)
        {
            int n = await socket.ReceiveAsync(buffer.AsMemory(filled), SocketFlags.None, deadline.Token);
            if (n == 0)
            {
                throw new EndOfStreamException($"the connection ended after {filled} of {count} bytes");
            }
            filled += n;
        }
        return buffer;
    }
}
