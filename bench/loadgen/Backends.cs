// The load generator's backends: the h2c gRPC backend (grpc-backend) and the cheap HTTP sink (http-sink).

namespace OrleansTunnel.Bench.LoadGen;

/// <summary>Kestrel h2c-only listener with the BenchSvc gRPC service and a plain GET /hello.</summary>
internal static class Backend
{
    public static async Task<int> RunAsync(Options o)
    {
        int port = o.Int("port");
        var builder = LoopbackServer.Builder(port, HttpProtocols.Http2);
        builder.Services.AddGrpc(g =>
        {
            g.MaxReceiveMessageSize = 16 * 1024 * 1024;
            g.MaxSendMessageSize = 16 * 1024 * 1024;
        });
        var app = builder.Build();
        app.MapGrpcService<BenchService>();
        app.MapGet("/hello", () => Results.Text("hello"));
        await app.StartAsync();
        Console.WriteLine($"grpc-backend: listening on http://127.0.0.1:{port} (h2c only; gRPC BenchSvc service, GET /hello)");
        await app.WaitForShutdownAsync();
        return 0;
    }
}

/// <summary>
/// A backend that costs little per byte (bench/bulk.sh), so a tunnel's own CPU per MiB can be told
/// apart: GET /download?size=N writes N zero bytes from one static buffer, POST /upload reads the
/// body and drops it, answering {"length":N}.
/// </summary>
internal static class Sink
{
    private static readonly byte[] Zeros = new byte[256 * 1024];

    public static async Task<int> RunAsync(Options o)
    {
        int port = o.Int("port");
        var builder = LoopbackServer.Builder(port, HttpProtocols.Http1, k => k.Limits.MaxRequestBodySize = null);
        var app = builder.Build();
        app.MapGet("/download", async (HttpContext context, long? size) =>
        {
            long total = size ?? 1024 * 1024;
            context.Response.ContentType = "application/octet-stream";
            context.Response.ContentLength = total;
            for (long sent = 0; sent < total;)
            {
                int n = (int)Math.Min(Zeros.Length, total - sent);
                await context.Response.Body.WriteAsync(Zeros.AsMemory(0, n), context.RequestAborted);
                sent += n;
            }
        });
        app.MapPost("/upload", async (HttpContext context) =>
        {
            var reader = context.Request.BodyReader;
            long length = 0;
            while (true)
            {
                var result = await reader.ReadAsync(context.RequestAborted);
                length += result.Buffer.Length;
                reader.AdvanceTo(result.Buffer.End);
                if (result.IsCompleted)
                {
                    break;
                }
            }
            return Results.Text($"{{\"length\":{length}}}", "application/json");
        });
        await app.StartAsync();
        Console.WriteLine($"http-sink: listening on http://127.0.0.1:{port} (HTTP/1.1; GET /download?size=N, POST /upload)");
        await app.WaitForShutdownAsync();
        return 0;
    }
}

internal sealed class BenchService : BenchSvc.BenchSvcBase
{
    public override Task<Payload> Unary(Payload request, ServerCallContext context) => Task.FromResult(request);

    public override async Task ServerStream(StreamRequest request, IServerStreamWriter<Payload> responseStream, ServerCallContext context)
    {
        var msg = new Payload { Data = ByteString.CopyFrom(new byte[Math.Max(0, request.Size)]) };
        var ct = context.CancellationToken;
        try
        {
            for (long i = 0; request.Count <= 0 || i < request.Count; i++)
            {
                ct.ThrowIfCancellationRequested();
                await responseStream.WriteAsync(msg, ct);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested) { }
    }

    public override async Task Bidi(IAsyncStreamReader<Payload> requestStream, IServerStreamWriter<Payload> responseStream, ServerCallContext context)
    {
        try
        {
            while (await requestStream.MoveNext(context.CancellationToken))
                await responseStream.WriteAsync(requestStream.Current, context.CancellationToken);
        }
        catch (OperationCanceledException) when (context.CancellationToken.IsCancellationRequested) { }
    }
}

/// <summary>A quiet Kestrel on one loopback port speaking one protocol: what both backends start from.</summary>
internal static class LoopbackServer
{
    public static WebApplicationBuilder Builder(int port, HttpProtocols protocols, Action<KestrelServerOptions>? configure = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            configure?.Invoke(k);
            k.Listen(IPAddress.Loopback, port, lo => lo.Protocols = protocols);
        });
        return builder;
    }
}
