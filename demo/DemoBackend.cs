using System.Buffers;
using System.Net;
using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Logging;

namespace OrleansTunnel.Demo;

/// <summary>
/// The small backend `otun dev` exposes when the user brings none: echo, Server-Sent Events, a large
/// deterministic download and an upload that answers with the body's SHA-256.
/// </summary>
public static class DemoBackend
{
    /// <summary>Starts the demo backend on a loopback URL (port 0: any free port).</summary>
    public static async Task<WebApplication> StartAsync(string url, CancellationToken cancellationToken = default)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls(url);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Limits.MaxRequestBodySize = null;
            k.ConfigureEndpointDefaults(lo => lo.Protocols = HttpProtocols.Http1AndHttp2);
        });
        var app = builder.Build();
        app.UseWebSockets();
        Map(app);
        app.Map("/ws", WebSocketEchoAsync);
        await app.StartAsync(cancellationToken);
        return app;
    }

    /// <summary>Maps the demo endpoints onto an application.</summary>
    public static void Map(IEndpointRouteBuilder app)
    {
        app.MapGet("/", () => Results.Text(
            "OrleansTunnel demo backend\n" +
            "  GET  /hello                  a tiny answer\n" +
            "  ANY  /echo                   the request as JSON (method, target, headers, body hash)\n" +
            "  GET  /sse?count=5&interval_ms=500   Server-Sent Events\n" +
            "  GET  /download?size=1048576  deterministic bytes\n" +
            "  POST /upload                 SHA-256 of the body\n" +
            "  GET  /status/{code}          that status\n" +
            "  GET  /sleep?ms=1000          answers after a delay\n" +
            "  WS   /ws                     WebSocket echo (text and binary, any size)\n"));
        app.MapGet("/hello", () => Results.Text("hello"));
        app.Map("/echo", EchoAsync);
        app.Map("/echo/{**rest}", EchoAsync);
        app.MapGet("/sse", SseAsync);
        app.MapMethods("/download", ["GET", "HEAD"], DownloadAsync);
        app.MapPost("/upload", UploadAsync);
        app.MapPut("/upload", UploadAsync);
        app.Map("/status/{code:int}", (int code) => Results.Text($"status {code}\n", statusCode: code));
        app.MapGet("/sleep", async (int? ms, CancellationToken aborted) =>
        {
            await Task.Delay(ms ?? 1000, aborted);
            return Results.Text("slept\n");
        });
    }

    private static async Task WebSocketEchoAsync(HttpContext context)
    {
        if (!context.WebSockets.IsWebSocketRequest)
        {
            context.Response.StatusCode = StatusCodes.Status400BadRequest;
            await context.Response.WriteAsync("expected a WebSocket handshake\n");
            return;
        }
        using var ws = await context.WebSockets.AcceptWebSocketAsync(context.WebSockets.WebSocketRequestedProtocols.FirstOrDefault());
        var buffer = new byte[64 * 1024];
        try
        {
            while (true)
            {
                var result = await ws.ReceiveAsync(buffer, context.RequestAborted);
                if (result.MessageType == System.Net.WebSockets.WebSocketMessageType.Close)
                {
                    await ws.CloseAsync(result.CloseStatus ?? System.Net.WebSockets.WebSocketCloseStatus.NormalClosure, result.CloseStatusDescription, CancellationToken.None);
                    return;
                }
                // Fragment for fragment: message boundaries are kept without holding a whole message.
                await ws.SendAsync(buffer.AsMemory(0, result.Count), result.MessageType, result.EndOfMessage, context.RequestAborted);
            }
        }
        catch (Exception ex) when (ex is System.Net.WebSockets.WebSocketException or OperationCanceledException or IOException)
        {
        }
    }

    /// <summary>The byte at each offset of a /download body (so clients can check what they got).</summary>
    public static void Fill(Span<byte> buffer, long offset)
    {
        for (int i = 0; i < buffer.Length; i++)
        {
            long x = offset + i;
            buffer[i] = (byte)((x * 2654435761L) >> 13);
        }
    }

    /// <summary>SHA-256 (lower-case hex) of a /download body of the given size.</summary>
    public static string DownloadHash(long size)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[64 * 1024];
        for (long offset = 0; offset < size; offset += buffer.Length)
        {
            int n = (int)Math.Min(buffer.Length, size - offset);
            Fill(buffer.AsSpan(0, n), offset);
            sha.AppendData(buffer, 0, n);
        }
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }

    private static async Task EchoAsync(HttpContext context)
    {
        var (hash, length) = await HashBodyAsync(context.Request);
        var headers = context.Request.Headers.SelectMany(h => h.Value.Select(v => new[] { h.Key, v ?? "" })).ToArray();
        var payload = new
        {
            method = context.Request.Method,
            target = context.Features.Get<IHttpRequestFeature>()?.RawTarget,
            protocol = context.Request.Protocol,
            host = context.Request.Host.Value,
            headers,
            bodySha256 = hash,
            bodyLength = length,
        };
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(JsonSerializer.Serialize(payload));
    }

    private static async Task SseAsync(HttpContext context, int? count, int? interval_ms)
    {
        context.Response.ContentType = "text/event-stream";
        context.Response.Headers.CacheControl = "no-cache";
        int n = count ?? 5;
        for (int i = 0; i < n; i++)
        {
            await context.Response.WriteAsync($"id: {i}\ndata: event {i} at {DateTimeOffset.UtcNow:O}\n\n", context.RequestAborted);
            await context.Response.Body.FlushAsync(context.RequestAborted);
            if (i < n - 1)
            {
                await Task.Delay(interval_ms ?? 500, context.RequestAborted);
            }
        }
    }

    private static async Task DownloadAsync(HttpContext context, long? size)
    {
        long total = size ?? 1024 * 1024;
        context.Response.ContentType = "application/octet-stream";
        context.Response.ContentLength = total;
        var buffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
        try
        {
            for (long offset = 0; offset < total;)
            {
                int n = (int)Math.Min(64 * 1024, total - offset);
                Fill(buffer.AsSpan(0, n), offset);
                await context.Response.Body.WriteAsync(buffer.AsMemory(0, n), context.RequestAborted);
                offset += n;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static async Task UploadAsync(HttpContext context)
    {
        context.Features.Get<IHttpMaxRequestBodySizeFeature>()!.MaxRequestBodySize = null;
        var (hash, length) = await HashBodyAsync(context.Request);
        await context.Response.WriteAsJsonAsync(new { sha256 = hash, length });
    }

    private static async Task<(string Hash, long Length)> HashBodyAsync(HttpRequest request)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
        long length = 0;
        try
        {
            int n;
            while ((n = await request.Body.ReadAsync(buffer, request.HttpContext.RequestAborted)) > 0)
            {
                sha.AppendData(buffer, 0, n);
                length += n;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
        return (Convert.ToHexStringLower(sha.GetHashAndReset()), length);
    }

    /// <summary>The port a started application listens on.</summary>
    public static int Port(WebApplication app) =>
        new Uri(app.Urls.First().Replace("*", "localhost", StringComparison.Ordinal)).Port;

    internal static IPAddress Loopback => IPAddress.Loopback;
}
