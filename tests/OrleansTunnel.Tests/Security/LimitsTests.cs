using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;

namespace OrleansTunnel.Tests.Security;

/// <summary>A harness with small visitor limits so each can be crossed quickly.</summary>
public sealed class SmallLimitsHarness : IAsyncLifetime
{
    public TunnelHarness Harness { get; private set; } = null!;

    public async Task InitializeAsync() => Harness = await TunnelHarness.StartAsync(o =>
    {
        o.Gateway["Gateway:MaxRequestHeaderCount"] = "20";
        o.Gateway["Gateway:MaxRequestHeadersTotalSize"] = "4096";
        o.Gateway["Gateway:MaxRequestLineSize"] = "1024";
        o.Gateway["Gateway:RequestHeadersTimeout"] = "00:00:01";
        o.Gateway["Gateway:MinRequestBodyDataRate"] = "1000";
        o.Gateway["Gateway:MinRequestBodyDataRateGracePeriod"] = "00:00:01.500";
        o.Gateway["Gateway:MaxRequestBodySize"] = "100000";
        o.Gateway["Gateway:Routes:10:Host"] = "small-body.test";
        o.Gateway["Gateway:Routes:10:Service"] = "backend";
        o.Gateway["Gateway:Routes:10:MaxRequestBodySize"] = "1000";
        o.Gateway["Gateway:Routes:11:Host"] = "big-body.test";
        o.Gateway["Gateway:Routes:11:Service"] = "backend";
        o.Gateway["Gateway:Routes:11:MaxRequestBodySize"] = "1000000";
    });

    public async Task DisposeAsync() => await Harness.DisposeAsync();
}

/// <summary>Kestrel's limits as gateway options, and the gateway's own body and WebSocket limits.</summary>
public sealed class LimitsTests(SmallLimitsHarness fixture) : IClassFixture<SmallLimitsHarness>
{
    private TunnelHarness H => fixture.Harness;

    private int Port => H.Ingress.Port;

    [Fact]
    public async Task TooManyHeaders_Is431_NothingForwarded()
    {
        long before = H.Forwarder().Forwarded;
        var headers = string.Concat(Enumerable.Range(0, 25).Select(i => $"X-H{i}: v\r\n"));
        var r = await SecurityKit.ExchangeAsync(Port, $"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n");
        Assert.Equal([431], r.Statuses);
        Assert.True(r.ServerClosed);
        Assert.Equal(before, H.Forwarder().Forwarded);
        // Under the limit it is served.
        var ok = await SecurityKit.ExchangeAsync(Port, "GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" + string.Concat(Enumerable.Range(0, 10).Select(i => $"X-H{i}: v\r\n")) + "\r\n");
        Assert.Equal([200], ok.Statuses);
    }

    [Fact]
    public async Task HeadersTooLarge_Is431()
    {
        var r = await SecurityKit.ExchangeAsync(Port, $"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {new string('a', 5000)}\r\n\r\n");
        Assert.Equal([431], r.Statuses);
        Assert.True(r.ServerClosed);
    }

    [Fact]
    public async Task RequestLineTooLong_Is414()
    {
        var r = await SecurityKit.ExchangeAsync(Port, $"GET /echo?{new string('q', 2000)} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        Assert.Equal([414], r.Statuses);
        Assert.True(r.ServerClosed);
    }

    [Fact]
    public async Task GlobalBodyLimit_DeclaredLength_Is413_BeforeForwarding()
    {
        long before = H.Forwarder().Forwarded;
        var r = await SecurityKit.ExchangeAsync(Port, "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 200000\r\n\r\nabc");
        Assert.Equal([413], r.Statuses);
        Assert.Contains("otun: the request body was rejected: Request body too large", r.Text);
        Assert.Equal(before, H.Forwarder().Forwarded);
    }

    [Fact]
    public async Task RouteBodyLimit_OverridesGlobal_Smaller()
    {
        long before = H.Forwarder().Forwarded;
        using (var tooBig = new HttpRequestMessage(HttpMethod.Post, H.Url("/echo")) { Content = new ByteArrayContent(new byte[2000]) })
        {
            tooBig.Headers.Host = "small-body.test";
            using var response = await H.Client.SendAsync(tooBig);
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
            Assert.Contains("The max request body size is 1000 bytes", await response.Content.ReadAsStringAsync());
        }
        Assert.Equal(before, H.Forwarder().Forwarded);
        using (var fits = new HttpRequestMessage(HttpMethod.Post, H.Url("/echo")) { Content = new ByteArrayContent(new byte[900]) })
        {
            fits.Headers.Host = "small-body.test";
            using var response = await H.Client.SendAsync(fits);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
    }

    [Fact]
    public async Task RouteBodyLimit_ChunkedBody_Is413_WhenItCrossesTheLimit()
    {
        // No declared length: the limit is enforced while the body streams (Kestrel's per-request limit).
        var chunk = new string('x', 1500);
        var r = await SecurityKit.ExchangeAsync(Port,
            $"POST /echo HTTP/1.1\r\nHost: small-body.test\r\nTransfer-Encoding: chunked\r\n\r\n{chunk.Length:x}\r\n{chunk}\r\n0\r\n\r\n");
        Assert.Equal([413], r.Statuses);
        Assert.Contains("Request body too large", r.Text);
    }

    [Fact]
    public async Task RouteBodyLimit_OverridesGlobal_Larger()
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, H.Url("/echo")) { Content = new ByteArrayContent(new byte[500_000]) };
        request.Headers.Host = "big-body.test";
        using var response = await H.Client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("\"bodyLength\":500000", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task SlowHeaders_AreCut_ByRequestHeadersTimeout()
    {
        // Slowloris: a head that never ends. The gateway must close within the timeout plus Kestrel's 1 s heartbeat.
        var started = DateTime.UtcNow;
        var r = await SecurityKit.ExchangeAsync(Port, Encoding.ASCII.GetBytes("GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1\r\n"), TimeSpan.FromSeconds(10));
        Assert.True(r.ServerClosed, "the gateway kept a never-ending request head open for 10 s");
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(6));
        Assert.Equal([408], r.Statuses);
    }

    [Fact]
    public async Task SlowBody_IsCut_ByMinRequestBodyDataRate()
    {
        using var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, Port);
        var stream = client.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes("POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 50000\r\n\r\n0123456789"));
        var all = new MemoryStream();
        var buffer = new byte[4096];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        bool closed = false;
        try
        {
            int n;
            while ((n = await stream.ReadAsync(buffer, cts.Token)) > 0)
            {
                all.Write(buffer, 0, n);
            }
            closed = true;
        }
        catch (IOException)
        {
            closed = true;
        }
        catch (OperationCanceledException)
        {
        }
        var text = Encoding.Latin1.GetString(all.ToArray());
        Assert.True(closed, "a 10-byte-then-silent upload was kept open for 15 s: " + text);
        Assert.StartsWith("HTTP/1.1 408", text);
    }
}

/// <summary>Gateway:WebSocketIdleTimeout with a tiny value, in its own harness.</summary>
public sealed class WebSocketIdleTests
{
    [Fact]
    public async Task IdleWebSocket_IsClosedOnBothSides_ActiveOneIsNot()
    {
        await using var h = await TunnelHarness.StartAsync(o => o.Gateway["Gateway:WebSocketIdleTimeout"] = "00:00:01.500");
        string id = Guid.NewGuid().ToString("N");
        long idleBefore = h.Forwarder().WebSocketIdleCloses;
        using var ws = new ClientWebSocket();
        ws.Options.KeepAliveInterval = TimeSpan.Zero;
        await ws.ConnectAsync(new Uri($"ws://127.0.0.1:{h.Ingress.Port}/ws?id={id}"), CancellationToken.None).Within(TimeSpan.FromSeconds(10));
        var buffer = new byte[1024];
        // Active for three idle timeouts: each message re-arms the idle timer.
        for (int i = 0; i < 15; i++)
        {
            await ws.SendAsync(Encoding.UTF8.GetBytes("m" + i), WebSocketMessageType.Text, true, CancellationToken.None);
            var got = await ws.ReceiveAsync(buffer, CancellationToken.None).Within(TimeSpan.FromSeconds(5));
            Assert.Equal("m" + i, Encoding.UTF8.GetString(buffer, 0, got.Count));
            await Task.Delay(200);
        }
        Assert.Equal(idleBefore, h.Forwarder().WebSocketIdleCloses);
        // Now silent: the gateway closes the visitor's side and the backend's.
        var ended = await Record.ExceptionAsync(async () =>
        {
            var result = await ws.ReceiveAsync(buffer, CancellationToken.None).Within(TimeSpan.FromSeconds(10));
            Assert.Equal(WebSocketMessageType.Close, result.MessageType);
        });
        Assert.True(ended is null or WebSocketException, "the visitor's WebSocket was not closed: " + ended);
        await h.Backend.AbortedSignal(id).Task.Within(TimeSpan.FromSeconds(10));
        await Eventually.TrueAsync(() => h.Forwarder().WebSocketIdleCloses == idleBefore + 1, TimeSpan.FromSeconds(10), "the idle close was never counted");
    }
}

/// <summary>Connection-count limits need their own harness (a tiny limit).</summary>
public sealed class ConnectionLimitTests
{
    [Fact]
    public async Task IngressConnectionsOverTheLimit_AreClosed_TunnelUnaffected()
    {
        await using var h = await TunnelHarness.StartAsync(o => o.Gateway["Gateway:MaxIngressConnections"] = "3");
        var limit = h.Gateway.Services.GetService(typeof(OrleansTunnel.Gateway.Ingress.IngressConnectionLimit)) as OrleansTunnel.Gateway.Ingress.IngressConnectionLimit;
        Assert.NotNull(limit);
        var held = new List<TcpClient>();
        try
        {
            for (int i = 0; i < 3; i++)
            {
                var c = new TcpClient();
                await c.ConnectAsync(IPAddress.Loopback, h.Ingress.Port);
                held.Add(c);
            }
            await Eventually.TrueAsync(() => limit.Open == 3, TimeSpan.FromSeconds(10), "three held connections never counted");
            // The fourth is closed without an answer.
            var r = await SecurityKit.ExchangeAsync(h.Ingress.Port, "GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
            Assert.True(r.ServerClosed);
            Assert.Empty(r.Statuses);
            Assert.True(limit.Refused >= 1);
            // The agent's tunnel connection is not counted: it is still routable.
            Assert.NotNull(h.Gateway.Services.GetService(typeof(OrleansTunnel.Gateway.Tunnel.ConnectionRegistry)) is OrleansTunnel.Gateway.Tunnel.ConnectionRegistry reg ? reg.Choose("backend") : null);
        }
        finally
        {
            foreach (var c in held)
            {
                c.Dispose();
            }
        }
        // Once they are gone, visitors are served again.
        await Eventually.TrueAsync(() => limit.Open == 0, TimeSpan.FromSeconds(10), "held connections never released");
        var ok = await SecurityKit.ExchangeAsync(h.Ingress.Port, "GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        Assert.Equal([200], ok.Statuses);
    }
}
