using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using OrleansTunnel.Demo;

namespace OrleansTunnel.Tests.Infrastructure;

/// <summary>
/// A real Kestrel backend on a loopback port: the demo endpoints plus ones tests steer with signals
/// (gated SSE, a request that hangs until aborted, a body that breaks off).
/// </summary>
public sealed class TestBackend : IAsyncDisposable
{
    private readonly WebApplication _app;

    /// <summary>Gated SSE: the backend writes event i, then waits until the test releases i.</summary>
    public ConcurrentDictionary<string, SemaphoreSlim> Gates { get; } = new();

    /// <summary>/hang?id=X: completes when the backend started handling X.</summary>
    public ConcurrentDictionary<string, TaskCompletionSource> Started { get; } = new();

    /// <summary>/hang?id=X: completes when the backend saw X's RequestAborted fire.</summary>
    public ConcurrentDictionary<string, TaskCompletionSource> Aborted { get; } = new();

    /// <summary>Bytes written by /counted-download?id=X or read by /slow-upload?id=X so far.</summary>
    public ConcurrentDictionary<string, StrongBox<long>> Counters { get; } = new();

    public StrongBox<long> Counter(string id) => Counters.GetOrAdd(id, _ => new StrongBox<long>());

    /// <summary>/ws?id=X: the close code and reason the backend received from the visitor.</summary>
    public ConcurrentDictionary<string, (int? Code, string? Reason)> CloseSeen { get; } = new();

    public int Port { get; }

    /// <summary>The cleartext HTTP/2 (prior knowledge) port, where the gRPC service answers.</summary>
    public int H2cPort { get; }

    /// <summary>An HTTPS port with the self-signed dev certificate (for backend trust tests).</summary>
    public int TlsPort { get; private set; }

    public string Url => $"http://127.0.0.1:{Port}";

    private TestBackend(WebApplication app, int port, int h2cPort)
    {
        _app = app;
        Port = port;
        H2cPort = h2cPort;
    }

    public TaskCompletionSource StartedSignal(string id) => Started.GetOrAdd(id, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));

    public TaskCompletionSource AbortedSignal(string id) => Aborted.GetOrAdd(id, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));

    public SemaphoreSlim Gate(string id) => Gates.GetOrAdd(id, _ => new SemaphoreSlim(0));

    /// <summary>Starts the backend on <paramref name="address"/> (default: loopback), on free ports.</summary>
    public static async Task<TestBackend> StartAsync(System.Net.IPAddress? address = null)
    {
        address ??= System.Net.IPAddress.Loopback;
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        TestBackend? self = null;
        builder.Services.AddGrpc();
        builder.Services.AddSingleton(_ => self!);
        ListenOptions? h2c = null, main = null, tls = null;
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Listen(address, 0, lo =>
            {
                lo.Protocols = HttpProtocols.Http1AndHttp2;
                main = lo;
            });
            k.Listen(address, 0, lo =>
            {
                lo.Protocols = HttpProtocols.Http2;
                h2c = lo;
            });
            k.Listen(address, 0, lo =>
            {
                lo.Protocols = HttpProtocols.Http1AndHttp2;
                lo.UseHttps(TunnelHarness.ServerCertificate);
                tls = lo;
            });
            k.Limits.MaxRequestBodySize = null;
            k.AddServerHeader = false;
        });
        var app = builder.Build();
        app.UseWebSockets(new WebSocketOptions { KeepAliveInterval = TimeSpan.Zero });
        app.MapGrpcService<EchoService>();
        DemoBackend.Map(app);
        WebSocketEndpoints.Map(app, () => self!);
        app.MapGet("/headers-out", (HttpContext c) =>
        {
            c.Response.Headers.Append("Set-Cookie", "a=1; Path=/");
            c.Response.Headers.Append("Set-Cookie", "b=2; Path=/");
            c.Response.Headers.Append("X-Multi", "first");
            c.Response.Headers.Append("X-Multi", "second");
            c.Response.Headers.Append("Keep-Alive", "timeout=5");
            c.Response.Headers.Append("Proxy-Authenticate", "Basic");
            c.Response.Headers.Append("Connection", "X-Hop");
            c.Response.Headers.Append("X-Hop", "secret");
            // The gateway's own header: an agent or backend must not be able to add a second one.
            c.Response.Headers.Append("X-Tunnel-Request-Id", "forged-by-backend");
            return Results.Text("ok");
        });
        app.MapPost("/raw.Probe/TrailersOnly", (HttpContext c) =>
        {
            // A gRPC Trailers-Only answer as grpc-js sends it: one HEADERS frame, no Content-Length,
            // sent as soon as the call is known to fail (the request body may still be arriving).
            c.Response.ContentType = "application/grpc+proto";
            c.Response.Headers["grpc-status"] = "9";
            c.Response.Headers["grpc-message"] = "asked%20to%20fail";
        });
        app.MapGet("/nocontent", () => Results.NoContent());
        app.MapGet("/notmodified", (HttpContext c) =>
        {
            c.Response.Headers.ETag = "\"v1\"";
            return Results.StatusCode(304);
        });
        app.MapGet("/sse-gated", async (HttpContext c, string id, int count) =>
        {
            c.Response.ContentType = "text/event-stream";
            var gate = self!.Gate(id);
            for (int i = 0; i < count; i++)
            {
                await c.Response.WriteAsync($"data: event {i}\n\n", c.RequestAborted);
                await c.Response.Body.FlushAsync(c.RequestAborted);
                if (i < count - 1)
                {
                    await gate.WaitAsync(c.RequestAborted);
                }
            }
        });
        app.MapMethods("/hang", ["GET", "POST"], async (HttpContext c, string id) =>
        {
            var aborted = self!.AbortedSignal(id);
            using var reg = c.RequestAborted.Register(() => aborted.TrySetResult());
            self.StartedSignal(id).TrySetResult();
            try
            {
                await Task.Delay(Timeout.Infinite, c.RequestAborted);
            }
            catch (OperationCanceledException)
            {
            }
        });
        app.MapGet("/break-mid-body", async (HttpContext c) =>
        {
            c.Response.ContentLength = 10 * 1024 * 1024;
            await c.Response.Body.WriteAsync(new byte[1024 * 1024]);
            await c.Response.Body.FlushAsync();
            c.Abort();
        });
        app.MapGet("/slow-download", async (HttpContext c, string id, int chunks) =>
        {
            // Writes one 64 KiB chunk per release of the gate: the test decides when bytes move.
            c.Response.ContentLength = chunks * 65536L;
            var gate = self!.Gate(id);
            var chunk = new byte[65536];
            for (int i = 0; i < chunks; i++)
            {
                await gate.WaitAsync(c.RequestAborted);
                await c.Response.Body.WriteAsync(chunk, c.RequestAborted);
                await c.Response.Body.FlushAsync(c.RequestAborted);
            }
        });
        app.MapGet("/counted-download", async (HttpContext c, string id, long size) =>
        {
            // As fast as the connection takes it, counting what was handed to the socket.
            c.Response.ContentLength = size;
            var counter = self!.Counter(id);
            var chunk = new byte[65536];
            for (long sent = 0; sent < size;)
            {
                int n = (int)Math.Min(chunk.Length, size - sent);
                await c.Response.Body.WriteAsync(chunk.AsMemory(0, n), c.RequestAborted);
                sent += n;
                Interlocked.Add(ref counter.Value, n);
            }
        });
        app.MapPost("/slow-upload", async (HttpContext c, string id, int bytesPerSecond) =>
        {
            // Reads the body at a fixed pace, counting what it took from the connection.
            var counter = self!.Counter(id);
            var buffer = new byte[Math.Max(1024, bytesPerSecond / 10)];
            int n;
            while ((n = await c.Request.Body.ReadAsync(buffer, c.RequestAborted)) > 0)
            {
                Interlocked.Add(ref counter.Value, n);
                await Task.Delay(100, c.RequestAborted);
            }
            return Results.Text("done");
        });
        await app.StartAsync();
        self = new TestBackend(app, main!.IPEndPoint!.Port, h2c!.IPEndPoint!.Port) { TlsPort = tls!.IPEndPoint!.Port };
        return self;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync(TimeSpan.FromSeconds(5).ToCancellationToken());
        await _app.DisposeAsync();
    }
}

internal static class TimeSpanExtensions
{
    public static CancellationToken ToCancellationToken(this TimeSpan timeout) => new CancellationTokenSource(timeout).Token;
}
