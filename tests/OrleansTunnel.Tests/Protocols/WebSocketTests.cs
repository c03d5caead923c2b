using System.Net;
using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Text;
using OrleansTunnel.Tests.EndToEnd;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;

namespace OrleansTunnel.Tests.Protocols;

/// <summary>ClientWebSocket -> gateway -> agent -> Kestrel WebSocket backend, HTTP/1.1 Upgrade and RFC 8441.</summary>
[Collection("shared harness")]
public sealed class WebSocketTests(SharedHarness fixture)
{
    private TunnelHarness H => fixture.Harness;

    private Uri Ws(string pathAndQuery, bool http2) =>
        http2 ? new Uri($"wss://127.0.0.1:{H.HttpsIngress.Port}{pathAndQuery}") : new Uri($"ws://127.0.0.1:{H.Ingress.Port}{pathAndQuery}");

    private async Task<ClientWebSocket> ConnectAsync(string pathAndQuery, bool http2, string? subProtocol = null)
    {
        var ws = new ClientWebSocket();
        ws.Options.KeepAliveInterval = TimeSpan.Zero;
        if (subProtocol is not null)
        {
            ws.Options.AddSubProtocol(subProtocol);
        }
        if (http2)
        {
            ws.Options.HttpVersion = HttpVersion.Version20;
            ws.Options.HttpVersionPolicy = HttpVersionPolicy.RequestVersionExact;
            await ws.ConnectAsync(Ws(pathAndQuery, true), new HttpMessageInvoker(TunnelHarness.TrustingHandler()), CancellationToken.None).Within(TimeSpan.FromSeconds(10));
        }
        else
        {
            await ws.ConnectAsync(Ws(pathAndQuery, false), CancellationToken.None).Within(TimeSpan.FromSeconds(10));
        }
        return ws;
    }

    private static async Task<(WebSocketMessageType Type, byte[] Data)> ReceiveMessageAsync(WebSocket ws)
    {
        using var message = new MemoryStream();
        var buffer = new byte[64 * 1024];
        WebSocketReceiveResult result;
        do
        {
            result = await ws.ReceiveAsync(buffer, CancellationToken.None).Within(TimeSpan.FromSeconds(30));
            message.Write(buffer, 0, result.Count);
        }
        while (!result.EndOfMessage && result.MessageType != WebSocketMessageType.Close);
        return (result.MessageType, message.ToArray());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task TextAndBinaryMessages_KeepTheirTypeAndBoundaries_BothWays(bool http2)
    {
        using var ws = await ConnectAsync("/ws", http2, subProtocol: "chat");
        Assert.Equal("chat", ws.SubProtocol);
        var messages = new (WebSocketMessageType, byte[])[]
        {
            (WebSocketMessageType.Text, Encoding.UTF8.GetBytes("hello, tunnel")),
            (WebSocketMessageType.Binary, Hashing.Bytes(70_000, seed: 3)),
            (WebSocketMessageType.Text, Encoding.UTF8.GetBytes("ünïcödé €")),
            (WebSocketMessageType.Binary, []),
        };
        foreach (var (type, data) in messages)
        {
            await ws.SendAsync(data, type, endOfMessage: true, CancellationToken.None);
        }
        foreach (var (type, data) in messages)
        {
            var (gotType, gotData) = await ReceiveMessageAsync(ws);
            Assert.Equal(type, gotType);
            Assert.Equal(Hashing.Sha256(data), Hashing.Sha256(gotData));
        }
        await ws.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", CancellationToken.None).Within(TimeSpan.FromSeconds(10));
        Assert.Equal(WebSocketCloseStatus.NormalClosure, ws.CloseStatus);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A64MiBMessage_StreamsThroughWhole(bool http2)
    {
        using var ws = await ConnectAsync("/ws", http2);
        var data = Hashing.Bytes(64 << 20, seed: 64);
        // Sent in pieces of one message: the tunnel never needs the whole of it.
        for (int offset = 0; offset < data.Length; offset += 1 << 20)
        {
            await ws.SendAsync(data.AsMemory(offset, 1 << 20), WebSocketMessageType.Binary, endOfMessage: offset + (1 << 20) >= data.Length, CancellationToken.None);
        }
        var (type, echoed) = await ReceiveMessageAsync(ws);
        Assert.Equal(WebSocketMessageType.Binary, type);
        Assert.Equal(Hashing.Sha256(data), Hashing.Sha256(echoed));
        await ws.CloseAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None);
    }

    [Fact]
    public async Task CloseCodeAndReason_FromTheVisitor_ReachTheBackend()
    {
        string id = Guid.NewGuid().ToString("N");
        using var ws = await ConnectAsync($"/ws?id={id}", http2: false);
        await ws.CloseAsync((WebSocketCloseStatus)4321, "visitor says bye", CancellationToken.None).Within(TimeSpan.FromSeconds(10));
        Assert.Equal((WebSocketCloseStatus)4321, ws.CloseStatus);
        Assert.Equal("visitor says bye", ws.CloseStatusDescription);
        Assert.Equal((4321, "visitor says bye"), H.Backend.CloseSeen[id]);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ServerInitiatedClose_ReachesTheVisitor_WithCodeAndReason(bool http2)
    {
        using var ws = await ConnectAsync("/ws-close?code=4001&reason=server%20leaves", http2);
        var (type, data) = await ReceiveMessageAsync(ws);
        Assert.Equal("bye soon", Encoding.UTF8.GetString(data));
        var (closeType, _) = await ReceiveMessageAsync(ws);
        Assert.Equal(WebSocketMessageType.Close, closeType);
        Assert.Equal((WebSocketCloseStatus)4001, ws.CloseStatus);
        Assert.Equal("server leaves", ws.CloseStatusDescription);
        await ws.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None);
    }

    [Fact]
    public async Task BackendDrop_EndsTheVisitorsSocketPromptly()
    {
        using var ws = await ConnectAsync("/ws-drop", http2: false);
        await ws.SendAsync("drop me"u8.ToArray(), WebSocketMessageType.Text, true, CancellationToken.None);
        var (_, data) = await ReceiveMessageAsync(ws);
        Assert.Equal("dropping", Encoding.UTF8.GetString(data));
        await Assert.ThrowsAnyAsync<WebSocketException>(async () => await ReceiveMessageAsync(ws));
    }

    [Fact]
    public async Task VisitorDrop_EndsTheBackendsSocketPromptly()
    {
        string id = Guid.NewGuid().ToString("N");
        var ws = await ConnectAsync($"/ws?id={id}", http2: false);
        await ws.SendAsync("ping"u8.ToArray(), WebSocketMessageType.Text, true, CancellationToken.None);
        await ReceiveMessageAsync(ws);
        ws.Abort(); // the TCP connection goes away without a close handshake
        ws.Dispose();
        await H.Backend.AbortedSignal(id).Task.Within(TimeSpan.FromSeconds(10));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task RefusedHandshake_ShowsTheBackendsStatusAndBody(bool http2)
    {
        using var ws = new ClientWebSocket();
        ws.Options.CollectHttpResponseDetails = true;
        if (http2)
        {
            ws.Options.HttpVersion = HttpVersion.Version20;
            ws.Options.HttpVersionPolicy = HttpVersionPolicy.RequestVersionExact;
        }
        await Assert.ThrowsAsync<WebSocketException>(() => http2
            ? ws.ConnectAsync(Ws("/ws-refuse", true), new HttpMessageInvoker(TunnelHarness.TrustingHandler()), CancellationToken.None)
            : ws.ConnectAsync(Ws("/ws-refuse", false), CancellationToken.None));
        Assert.Equal(HttpStatusCode.Forbidden, ws.HttpStatusCode);
    }

    [Theory]
    [InlineData("wrong-accept", false, "the backend answered 101 without the Sec-WebSocket-Accept of the key sent")]
    [InlineData("no-accept", false, "the backend answered 101 without the Sec-WebSocket-Accept of the key sent")]
    [InlineData("other-protocol", false, "the backend answered 101 without 'Upgrade: websocket'")]
    [InlineData("wrong-accept", true, "the backend answered 101 without the Sec-WebSocket-Accept of the key sent")]
    public async Task A101ThatDidNotSwitchToWebSocket_Is502_NoRawPipe(string kind, bool http2, string reason)
    {
        using var ws = new ClientWebSocket();
        ws.Options.CollectHttpResponseDetails = true;
        if (http2)
        {
            ws.Options.HttpVersion = HttpVersion.Version20;
            ws.Options.HttpVersionPolicy = HttpVersionPolicy.RequestVersionExact;
        }
        await Assert.ThrowsAsync<WebSocketException>(() => http2
            ? ws.ConnectAsync(Ws($"/ws-fake-101?kind={kind}", true), new HttpMessageInvoker(TunnelHarness.TrustingHandler()), CancellationToken.None)
            : ws.ConnectAsync(Ws($"/ws-fake-101?kind={kind}", false), CancellationToken.None));
        Assert.Equal(HttpStatusCode.BadGateway, ws.HttpStatusCode);
        // The raw HTTP/1.1 answer shows the message, and nothing of the backend's pipe.
        var raw = await RawHttp.SendAsync(H.Ingress.Port,
            $"GET /ws-fake-101?kind={kind} HTTP/1.1\r\nHost: backend.test\r\nConnection: Upgrade, close\r\nUpgrade: websocket\r\n" +
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", TimeSpan.FromSeconds(30));
        Assert.Equal(502, raw.Status);
        Assert.StartsWith($"otun: the backend's answer broke the protocol: {reason}", raw.Text);
        Assert.DoesNotContain("RAW PIPE", raw.Text);
    }

    [Fact]
    public async Task OtherUpgrades_AreNotHonoured()
    {
        var response = await RawHttp.SendAsync(H.Ingress.Port,
            "GET /echo HTTP/1.1\r\nHost: backend.test\r\nConnection: Upgrade, close\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n");
        Assert.Equal(200, response.Status);
        Assert.DoesNotContain("\"Upgrade\"", response.Text);
        Assert.DoesNotContain("HTTP2-Settings", response.Text);
    }

    [Fact]
    public async Task AThousandSockets_ThroughOneAgent_AllEcho()
    {
        const int count = 1000;
        var bounds = Microsoft.Extensions.DependencyInjection.ServiceProviderServiceExtensions
            .GetRequiredService<OrleansTunnel.Gateway.Requests.InFlightBounds>(H.Gateway.Services);
        long before = bounds.InFlight;
        var sockets = new ClientWebSocket[count];
        try
        {
            using var throttle = new SemaphoreSlim(100);
            await Task.WhenAll(Enumerable.Range(0, count).Select(async i =>
            {
                await throttle.WaitAsync();
                try
                {
                    sockets[i] = await ConnectAsync("/ws", http2: false);
                }
                finally
                {
                    throttle.Release();
                }
            })).Within(TimeSpan.FromSeconds(120));
            Assert.Single(H.AgentStatus.Tunnels);
            // All open at once; each echoes its own message.
            await Task.WhenAll(sockets.Select(async (ws, i) =>
            {
                var payload = Encoding.UTF8.GetBytes($"socket {i}");
                await ws.SendAsync(payload, WebSocketMessageType.Text, true, CancellationToken.None);
                var (_, data) = await ReceiveMessageAsync(ws);
                Assert.Equal($"socket {i}", Encoding.UTF8.GetString(data));
            })).Within(TimeSpan.FromSeconds(120));
        }
        finally
        {
            await Task.WhenAll(sockets.Where(s => s is not null).Select(async ws =>
            {
                try
                {
                    await ws.CloseAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));
                }
                catch (Exception)
                {
                    ws.Abort();
                }
                ws.Dispose();
            }));
        }
        // Every closed socket gives its gateway slot back (no leak), and the next test of the shared
        // harness does not meet a gateway still full of closing sockets.
        await Eventually.TrueAsync(() => bounds.InFlight <= before, TimeSpan.FromSeconds(60),
            $"the gateway still counts {bounds.InFlight} in-flight requests (before the test: {before}) after the sockets closed");
        // And the agent's permits it leased for them go back to the cluster (a gateway keeps idle permits
        // up to its recent peak for a tick): until then the agent's other services find its limit taken.
        var permits = Microsoft.Extensions.DependencyInjection.ServiceProviderServiceExtensions
            .GetRequiredService<OrleansTunnel.Gateway.Tunnel.PermitPool>(H.Gateway.Services);
        await Eventually.TrueAsync(() => permits.InUse + permits.Available < count / 2, TimeSpan.FromSeconds(60),
            $"the gateway still holds {permits.InUse} permits in use and {permits.Available} idle after the sockets closed");
    }
}
