using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.DependencyInjection;
using OrleansTunnel.Gateway.L4;
using OrleansTunnel.Gateway.Requests;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;

namespace OrleansTunnel.Tests.L4;

/// <summary>
/// TCP connections and UDP flows hold slots of the gateway's own in-flight bounds (shared with HTTP requests),
/// and a stopping gateway stops accepting them, lets open TCP connections go on for its grace period, then resets them.
/// Each test has its own small gateway (one stops it).
/// </summary>
public sealed class L4BoundsAndDrainTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    private sealed class Rig : IAsyncDisposable
    {
        public TunnelHarness Harness { get; private set; } = null!;
        public TcpProbe Echo { get; } = TcpProbe.Echo();
        public UdpEcho UdpEcho { get; } = new();
        public int TcpPort { get; } = Ports.Free();
        public int UdpPort { get; } = Ports.Free();

        public static async Task<Rig> StartAsync(Dictionary<string, string> gateway)
        {
            var rig = new Rig();
            rig.Harness = await TunnelHarness.StartAsync(o =>
            {
                o.Gateway["Gateway:TcpServices:0:Listen"] = $"127.0.0.1:{rig.TcpPort}";
                o.Gateway["Gateway:TcpServices:0:Service"] = "echo";
                o.Gateway["Gateway:UdpServices:0:Listen"] = $"127.0.0.1:{rig.UdpPort}";
                o.Gateway["Gateway:UdpServices:0:Service"] = "udp-echo";
                o.Gateway["Gateway:Agents:0:Services:10"] = "echo";
                o.Gateway["Gateway:Agents:0:Services:11"] = "udp-echo";
                o.Agent["Agent:Services:20:Name"] = "echo";
                o.Agent["Agent:Services:20:Url"] = $"tcp://127.0.0.1:{rig.Echo.Port}";
                o.Agent["Agent:Services:21:Name"] = "udp-echo";
                o.Agent["Agent:Services:21:Url"] = $"udp://127.0.0.1:{rig.UdpEcho.Port}";
                o.Agent["Agent:ShutdownGracePeriod"] = "00:00:02";
                foreach (var (k, v) in gateway)
                {
                    o.Gateway[k] = v;
                }
            });
            var registry = rig.Harness.Gateway.Services.GetRequiredService<Gateway.Tunnel.ConnectionRegistry>();
            await Eventually.TrueAsync(() => registry.Choose("udp-echo") is not null, TimeSpan.FromSeconds(30), "the agent never offered its TCP and UDP services");
            return rig;
        }

        /// <summary>A TCP connection through the gateway that echoed one byte (so its tunnel stream is open).</summary>
        public async Task<Socket> ConnectedAsync(byte mark)
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync(IPAddress.Loopback, TcpPort).Within(Deadline);
            await EchoesAsync(socket, mark);
            return socket;
        }

        public async ValueTask DisposeAsync()
        {
            await Harness.DisposeAsync();
            await Echo.DisposeAsync();
            UdpEcho.Dispose();
        }
    }

    private static async Task EchoesAsync(Socket socket, byte mark)
    {
        await socket.SendAsync(new[] { mark });
        var one = new byte[1];
        Assert.Equal(1, await socket.ReceiveAsync(one.AsMemory()).AsTask().Within(Deadline));
        Assert.Equal(mark, one[0]);
    }

    /// <summary>Reads until the connection ends; true when it ended (end of stream or reset).</summary>
    private static async Task<bool> EndsAsync(Socket socket)
    {
        var buffer = new byte[64];
        try
        {
            while (await socket.ReceiveAsync(buffer.AsMemory()).AsTask().Within(Deadline) > 0)
            {
            }
        }
        catch (SocketException)
        {
        }
        return true;
    }

    /// <summary>One datagram to the UDP service and its echo; null when none came back within a few seconds.</summary>
    private static async Task<int?> UdpRoundTripAsync(Socket client)
    {
        var buffer = new byte[64];
        await client.SendAsync(new byte[] { 7 });
        using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        try
        {
            return await client.ReceiveAsync(buffer, SocketFlags.None, wait.Token);
        }
        catch (OperationCanceledException)
        {
            return null;
        }
    }

    [Fact]
    public async Task Tcp_connections_and_udp_flows_hold_slots_of_the_gateways_in_flight_bound_with_http_requests()
    {
        await using var rig = await Rig.StartAsync(new()
        {
            // The per-agent and per-service defaults are three quarters of the gateway's bound (1 here): give them room.
            ["Gateway:MaxInFlight"] = "2", ["Gateway:MaxInFlightPerAgent"] = "2", ["Gateway:MaxInFlightPerService"] = "2",
        });
        var bounds = rig.Harness.Gateway.Services.GetRequiredService<InFlightBounds>();
        var l4 = rig.Harness.Gateway.Services.GetRequiredService<L4Telemetry>();

        using var first = await rig.ConnectedAsync(1);
        using var second = await rig.ConnectedAsync(2);
        Assert.Equal(2, bounds.InFlight);

        // An HTTP request finds the gateway full: the open TCP connections hold its two slots.
        using var response = await rig.Harness.Client.GetAsync(rig.Harness.Url("/")).Within(Deadline);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Contains("at its limit of 2 in-flight requests", await response.Content.ReadAsStringAsync());

        // A third TCP connection is refused and counted: the visitor's socket is closed at once.
        var tcpStats = l4.Stats("tcp", "echo");
        long refusedBefore = Interlocked.Read(ref tcpStats.Refused);
        using (var third = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            try
            {
                // The reset may come before the connect completes on loopback: either way the connection ended at once.
                await third.ConnectAsync(IPAddress.Loopback, rig.TcpPort).Within(Deadline);
                Assert.True(await EndsAsync(third));
            }
            catch (SocketException ex) when (ex.SocketErrorCode == SocketError.ConnectionReset)
            {
            }
        }
        Assert.Equal(refusedBefore + 1, Interlocked.Read(ref tcpStats.Refused));

        // A UDP flow likewise: refused (its datagram dropped and counted) while the gateway is full.
        using var udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        udp.Connect(IPAddress.Loopback, rig.UdpPort);
        var udpStats = l4.Stats("udp", "udp-echo");
        await udp.SendAsync(new byte[] { 7 });
        await Eventually.TrueAsync(() => Interlocked.Read(ref udpStats.Refused) >= 1, Deadline, "the UDP flow over the bound was never refused");
        Assert.Equal(0, Interlocked.Read(ref udpStats.Connections));

        // One connection ends: its slot comes back, and the flow is served (UDP may lose a datagram: resend).
        first.Shutdown(SocketShutdown.Send);
        Assert.True(await EndsAsync(first));
        await Eventually.TrueAsync(() => bounds.InFlight == 1, Deadline, "the ended connection never gave its slot back");
        int? echoed = null;
        for (int attempt = 0; attempt < 10 && echoed is null; attempt++)
        {
            echoed = await UdpRoundTripAsync(udp);
        }
        Assert.Equal(1, echoed);
        Assert.Equal(2, bounds.InFlight);
    }

    [Fact]
    public async Task A_stopping_gateway_refuses_new_tcp_connections_lets_open_ones_finish_then_resets_them_after_its_grace_period()
    {
        await using var rig = await Rig.StartAsync(new() { ["Gateway:ShutdownGracePeriod"] = "00:00:20" });
        using var open = await rig.ConnectedAsync(1);

        var stopping = rig.Harness.Gateway.StopAsync(TimeSpan.FromSeconds(90).ToCancellationToken());

        // New connections are refused once the listener closed (no drain delay in this harness)...
        await Eventually.TrueAsync(() =>
        {
            using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                probe.Connect(IPAddress.Loopback, rig.TcpPort);
                return false;
            }
            catch (SocketException ex)
            {
                return ex.SocketErrorCode == SocketError.ConnectionRefused;
            }
        }, Deadline, "the TCP listener never closed");
        Assert.False(stopping.IsCompleted, "the stop waits for the open connection");

        // ...while the open one still relays both ways...
        await EchoesAsync(open, 2);

        // ...until the grace period is over: then the gateway resets it, and the stop completes.
        Assert.True(await EndsAsync(open));
        await stopping.Within(Deadline);
        Assert.Equal(0, rig.Harness.Gateway.Services.GetRequiredService<InFlightBounds>().InFlight);
    }
}
