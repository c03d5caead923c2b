// Benchmark load generator and gRPC backend for bench/protocols.sh (see bench/README.md).
//
//   loadgen grpc-backend --port P
//   loadgen grpc-unary   --target URL --concurrency C --duration S [--size B] [--warmup S]
//   loadgen grpc-stream  --target URL --streams C --duration S --size B [--mode bidi|server] [--warmup S]
//   loadgen ws-echo      --target ws(s)://HOST:PORT/PATH --sockets N --duration S --size B [--warmup S]
//   loadgen http-rate    --target URL --rate R --duration S [--connections C] [--warmup S] [--host H]
//   loadgen http-sink    --port P   (HTTP/1.1: GET /download?size=N zeros, POST /upload discards; bench/bulk.sh)
//
// Each client command prints one line of key=value pairs (the last one, first_error, is quoted).
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.WebSockets;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using OrleansTunnel.Bench.LoadGen.Proto;

namespace OrleansTunnel.Bench.LoadGen;

public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help")
        {
            Console.Error.WriteLine("usage: loadgen grpc-backend|grpc-unary|grpc-stream|ws-echo|http-rate|http-sink [--flag value ...]");
            return 2;
        }
        Options o;
        try { o = Options.Parse(args.AsSpan(1)); }
        catch (ArgumentException e) { Console.Error.WriteLine($"loadgen: {e.Message}"); return 2; }
        try
        {
            return args[0] switch
            {
                "grpc-backend" => await Backend.RunAsync(o),
                "grpc-unary" => await Clients.GrpcUnaryAsync(o),
                "grpc-stream" => await Clients.GrpcStreamAsync(o),
                "ws-echo" => await Clients.WsEchoAsync(o),
                "http-rate" => await OpenLoop.RunAsync(o),
                "http-sink" => await Sink.RunAsync(o),
                _ => Usage(args[0]),
            };
        }
        catch (ArgumentException e) { Console.Error.WriteLine($"loadgen: {e.Message}"); return 2; }
    }

    private static int Usage(string cmd)
    {
        Console.Error.WriteLine($"loadgen: unknown command '{cmd}'");
        return 2;
    }
}

internal sealed class Options
{
    private readonly Dictionary<string, string> _values = new(StringComparer.Ordinal);

    public static Options Parse(ReadOnlySpan<string> args)
    {
        var o = new Options();
        for (int i = 0; i < args.Length; i++)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal) || i + 1 >= args.Length)
                throw new ArgumentException($"expected --flag value, got '{args[i]}'");
            o._values[args[i][2..]] = args[++i];
        }
        return o;
    }

    public string Str(string name, string? fallback = null) =>
        _values.TryGetValue(name, out var v) ? v : fallback ?? throw new ArgumentException($"--{name} is required");

    public int Int(string name, int? fallback = null) =>
        _values.TryGetValue(name, out var v) ? int.Parse(v, CultureInfo.InvariantCulture)
            : fallback ?? throw new ArgumentException($"--{name} is required");

    public double Seconds(string name, double? fallback = null) =>
        _values.TryGetValue(name, out var v) ? double.Parse(v.TrimEnd('s'), CultureInfo.InvariantCulture)
            : fallback ?? throw new ArgumentException($"--{name} is required");
}

/// <summary>Kestrel h2c-only listener with the BenchSvc gRPC service and a plain GET /hello.</summary>
internal static class Backend
{
    public static async Task<int> RunAsync(Options o)
    {
        int port = o.Int("port");
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Listen(IPAddress.Loopback, port, lo => lo.Protocols = HttpProtocols.Http2);
        });
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
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Limits.MaxRequestBodySize = null;
            k.Listen(IPAddress.Loopback, port, lo => lo.Protocols = HttpProtocols.Http1);
        });
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

/// <summary>Per-worker counters; merged after the run.</summary>
internal sealed class Recorder
{
    public readonly List<double> LatenciesMs = new(1 << 16);
    public long Count;
    public long Bytes;
    public long Errors;
    public long StopErrors;
    public string? FirstError;
    public double FirstErrorAt = -1;
    public readonly long Start = Stopwatch.GetTimestamp();

    /// <summary>
    /// Counts a failure. One that surfaces only after the window's end was requested (the call was
    /// being cancelled) is counted apart as a stop error: it is how the cancellation was reported.
    /// </summary>
    public void Error(Exception e, CancellationToken ct)
    {
        if (ct.IsCancellationRequested) { StopErrors++; return; }
        Errors++;
        if (FirstError is null)
        {
            FirstError = $"{e.GetType().Name}: {e.Message}";
            FirstErrorAt = Stopwatch.GetElapsedTime(Start).TotalSeconds;
        }
    }
}

internal static class Clients
{
    private static HttpMessageHandler Handler() => new SocketsHttpHandler
    {
        EnableMultipleHttp2Connections = true,
        SslOptions = { RemoteCertificateValidationCallback = (_, _, _, _) => true },
        PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
    };

    private static GrpcChannel Channel(string target) => GrpcChannel.ForAddress(target, new GrpcChannelOptions
    {
        HttpHandler = Handler(),
        MaxReceiveMessageSize = 16 * 1024 * 1024,
        MaxSendMessageSize = 16 * 1024 * 1024,
    });

    /// <summary>
    /// Runs <paramref name="workers"/> loops: first for the warm-up (nothing recorded), then for the
    /// measured window. Each loop gets a cancellation token that fires at the end of its phase.
    /// </summary>
    private static async Task<(Recorder[] recs, double secs)> RunPhasesAsync(
        int workers, double warmup, double duration, Func<int, Recorder?, CancellationToken, Task> loop)
    {
        if (warmup > 0)
        {
            using var wcts = new CancellationTokenSource(TimeSpan.FromSeconds(warmup));
            await Task.WhenAll(Enumerable.Range(0, workers).Select(i => Task.Run(() => loop(i, null, wcts.Token))));
        }
        var recs = Enumerable.Range(0, workers).Select(_ => new Recorder()).ToArray();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(duration));
        var sw = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, workers).Select(i => Task.Run(() => loop(i, recs[i], cts.Token))));
        return (recs, sw.Elapsed.TotalSeconds);
    }

    private static void Report(string cmd, string target, string extra, Recorder[] recs, double secs, string unit, string extraEnd = "")
    {
        long stopErrors = recs.Sum(r => r.StopErrors);
        double firstAt = recs.Where(r => r.FirstErrorAt >= 0).Select(r => r.FirstErrorAt).DefaultIfEmpty(-1).Min();
        var all = recs.SelectMany(r => r.LatenciesMs).ToArray();
        Array.Sort(all);
        long count = recs.Sum(r => r.Count), bytes = recs.Sum(r => r.Bytes), errors = recs.Sum(r => r.Errors);
        string? first = recs.Select(r => r.FirstError).FirstOrDefault(e => e is not null);
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine(string.Create(inv,
            $"cmd={cmd} target={target} {extra} secs={secs:F2} {unit}={count} rate={count / secs:F1} " +
            $"bytes_per_s={bytes / secs:F0} p50_ms={Pct(all, 0.50):F3} p99_ms={Pct(all, 0.99):F3} max_ms={(all.Length > 0 ? all[^1] : 0):F3} " +
            $"errors={errors} stop_errors={stopErrors} first_error_at_s={firstAt:F2} {extraEnd}first_error=\"{(first ?? "").Replace('"', '\'').Replace('\n', ' ').Replace('\r', ' ')}\""));
    }

    private static double Pct(double[] sorted, double p) =>
        sorted.Length == 0 ? 0 : sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Length) - 1, 0, sorted.Length - 1)];

    private static double Ms(long ticks) => ticks * 1000.0 / Stopwatch.Frequency;

    private static bool Stopping(Exception e, CancellationToken ct) =>
        ct.IsCancellationRequested && (e is OperationCanceledException || e is RpcException { StatusCode: StatusCode.Cancelled }
            || e is WebSocketException || e.InnerException is OperationCanceledException);

    public static async Task<int> GrpcUnaryAsync(Options o)
    {
        string target = o.Str("target");
        int conc = o.Int("concurrency"), size = o.Int("size", 16);
        double dur = o.Seconds("duration"), warm = o.Seconds("warmup", 2);
        using var channel = Channel(target);
        var client = new BenchSvc.BenchSvcClient(channel);
        var req = new Payload { Data = ByteString.CopyFrom(new byte[size]) };
        var (recs, secs) = await RunPhasesAsync(conc, warm, dur, async (_, rec, ct) =>
        {
            while (!ct.IsCancellationRequested)
            {
                long t0 = Stopwatch.GetTimestamp();
                try
                {
                    var resp = await client.UnaryAsync(req, cancellationToken: ct);
                    if (rec is null) continue;
                    rec.LatenciesMs.Add(Ms(Stopwatch.GetTimestamp() - t0));
                    rec.Count++;
                    rec.Bytes += resp.Data.Length;
                }
                catch (Exception e) when (Stopping(e, ct)) { break; }
                catch (Exception e)
                {
                    rec?.Error(e, ct);
                    await Task.Delay(10, CancellationToken.None);
                }
            }
        });
        Report("grpc-unary", target, $"concurrency={conc} size={size}", recs, secs, "calls");
        return 0;
    }

    public static async Task<int> GrpcStreamAsync(Options o)
    {
        string target = o.Str("target"), mode = o.Str("mode", "bidi");
        int streams = o.Int("streams"), size = o.Int("size");
        double dur = o.Seconds("duration"), warm = o.Seconds("warmup", 2);
        if (mode is not ("bidi" or "server")) throw new ArgumentException("--mode must be bidi or server");
        using var channel = Channel(target);
        var client = new BenchSvc.BenchSvcClient(channel);
        var msg = new Payload { Data = ByteString.CopyFrom(new byte[size]) };
        var (recs, secs) = await RunPhasesAsync(streams, warm, dur, async (_, rec, ct) =>
        {
            while (!ct.IsCancellationRequested)
            {
                try
                {
                    if (mode == "bidi")
                    {
                        // Ping-pong: one message out, wait for its echo, repeat; one latency per round trip.
                        using var call = client.Bidi(cancellationToken: ct);
                        while (!ct.IsCancellationRequested)
                        {
                            long t0 = Stopwatch.GetTimestamp();
                            await call.RequestStream.WriteAsync(msg, ct);
                            if (!await call.ResponseStream.MoveNext(ct)) throw new InvalidOperationException("bidi stream ended early");
                            if (rec is null) continue;
                            rec.LatenciesMs.Add(Ms(Stopwatch.GetTimestamp() - t0));
                            rec.Count++;
                            rec.Bytes += call.ResponseStream.Current.Data.Length;
                        }
                    }
                    else
                    {
                        // Server stream: the backend writes size-byte messages until cancelled; the
                        // latency column is the gap between consecutive messages.
                        using var call = client.ServerStream(new StreamRequest { Count = 0, Size = size }, cancellationToken: ct);
                        long last = Stopwatch.GetTimestamp();
                        while (await call.ResponseStream.MoveNext(ct))
                        {
                            long now = Stopwatch.GetTimestamp();
                            if (rec is null) continue;
                            rec.LatenciesMs.Add(Ms(now - last));
                            last = now;
                            rec.Count++;
                            rec.Bytes += call.ResponseStream.Current.Data.Length;
                        }
                        if (!ct.IsCancellationRequested) throw new InvalidOperationException("server stream ended early");
                    }
                }
                catch (Exception e) when (Stopping(e, ct)) { break; }
                catch (Exception e)
                {
                    rec?.Error(e, ct);
                    await Task.Delay(10, CancellationToken.None);
                }
            }
        });
        Report("grpc-stream", target, $"mode={mode} streams={streams} size={size}", recs, secs, "messages");
        return 0;
    }

    public static async Task<int> WsEchoAsync(Options o)
    {
        var target = new Uri(o.Str("target"));
        int sockets = o.Int("sockets"), size = o.Int("size");
        double dur = o.Seconds("duration"), warm = o.Seconds("warmup", 2);
        var payload = new byte[size];
        Random.Shared.NextBytes(payload);
        // Sockets are opened once and kept across the warm-up and the measured window.
        var open = new ClientWebSocket?[sockets];
        var (recs, secs) = await RunPhasesAsync(sockets, warm, dur, async (i, rec, ct) =>
        {
            var buf = new byte[Math.Max(size, 4096)];
            while (!ct.IsCancellationRequested)
            {
                try
                {
                    if (open[i] is not { State: WebSocketState.Open })
                    {
                        open[i]?.Dispose();
                        var ws = new ClientWebSocket();
                        ws.Options.RemoteCertificateValidationCallback = (_, _, _, _) => true;
                        ws.Options.KeepAliveInterval = TimeSpan.Zero;
                        await ws.ConnectAsync(target, ct);
                        open[i] = ws;
                    }
                    var s = open[i]!;
                    long t0 = Stopwatch.GetTimestamp();
                    // Not cancellable mid-message: a cancelled WebSocket call aborts the socket.
                    await s.SendAsync(payload, WebSocketMessageType.Binary, true, CancellationToken.None);
                    int got = 0;
                    while (true)
                    {
                        var r = await s.ReceiveAsync(buf.AsMemory(0, buf.Length), CancellationToken.None);
                        if (r.MessageType == WebSocketMessageType.Close) throw new InvalidOperationException("server closed the WebSocket");
                        got += r.Count;
                        if (r.EndOfMessage) break;
                    }
                    if (got != size) throw new InvalidOperationException($"echo of {got} bytes, expected {size}");
                    if (rec is null) continue;
                    rec.LatenciesMs.Add(Ms(Stopwatch.GetTimestamp() - t0));
                    rec.Count++;
                    rec.Bytes += got;
                }
                catch (Exception e) when (Stopping(e, ct)) { break; }
                catch (Exception e)
                {
                    rec?.Error(e, ct);
                    open[i]?.Abort();
                    await Task.Delay(10, CancellationToken.None);
                }
            }
        });
        // Close all sockets in parallel (close handshake, 5 s each); the count of handshakes that
        // did not complete is reported (close_timeouts), with the slowest close.
        long closeTimeouts = 0, closeFailures = 0;
        double slowestClose = 0;
        await Task.WhenAll(open.Where(w => w is not null).Select(async ws =>
        {
            long t0 = Stopwatch.GetTimestamp();
            try
            {
                using var close = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                if (ws!.State == WebSocketState.Open) await ws.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", close.Token);
            }
            catch (OperationCanceledException) { Interlocked.Increment(ref closeTimeouts); }
            catch (Exception) { Interlocked.Increment(ref closeFailures); }
            double ms = Ms(Stopwatch.GetTimestamp() - t0);
            lock (open) slowestClose = Math.Max(slowestClose, ms);
            ws!.Dispose();
        }));
        Report("ws-echo", target.ToString(), $"sockets={sockets} size={size}", recs, secs, "messages",
            string.Create(CultureInfo.InvariantCulture, $"close_timeouts={closeTimeouts} close_failures={closeFailures} slowest_close_ms={slowestClose:F0} "));
        return 0;
    }
}

/// <summary>
/// Open-loop (fixed-rate) HTTP/1.1 GETs, wrk2's idea: request i is due at start + i / rate whatever
/// happened to the earlier ones, and its latency is counted from when it was due, not from when it
/// could be sent, so a stall shows as the queue it builds (no coordinated omission). A scheduler
/// thread wakes about every millisecond and starts every request that is due; at most
/// --connections are open (SocketsHttpHandler queues the rest, and that wait is counted).
/// </summary>
internal static class OpenLoop
{
    public static async Task<int> RunAsync(Options o)
    {
        string target = o.Str("target");
        double rate = o.Seconds("rate"), dur = o.Seconds("duration"), warm = o.Seconds("warmup", 2);
        int conns = o.Int("connections", 64);
        string? host = o.Str("host", "");
        var handler = new SocketsHttpHandler
        {
            MaxConnectionsPerServer = conns,
            PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
            SslOptions = { RemoteCertificateValidationCallback = (_, _, _, _) => true },
        };
        using var client = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(30) };
        var uri = new Uri(target);
        if (warm > 0) await PhaseAsync(client, uri, host, rate, warm, null);
        var lat = new double[(long)(rate * dur)];
        var (errors, first, lagMax, secs) = await PhaseAsync(client, uri, host, rate, dur, lat);
        var ok = lat.Where(v => v >= 0).ToArray();
        Array.Sort(ok);
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine(string.Create(inv,
            $"cmd=http-rate target={target} target_rate={rate:F0} connections={conns} secs={secs:F2} requests={ok.Length} rate={ok.Length / secs:F1} " +
            $"p50_ms={Pct(ok, 0.50):F3} p90_ms={Pct(ok, 0.90):F3} p99_ms={Pct(ok, 0.99):F3} p999_ms={Pct(ok, 0.999):F3} max_ms={(ok.Length > 0 ? ok[^1] : 0):F3} " +
            $"sched_lag_max_ms={lagMax:F3} errors={errors} first_error=\"{(first ?? "").Replace('"', '\'').Replace('\n', ' ')}\""));
        return 0;
    }

    private static double Pct(double[] sorted, double p) =>
        sorted.Length == 0 ? 0 : sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Length) - 1, 0, sorted.Length - 1)];

    /// <summary>Sends rate x secs requests on schedule; lat[i] = ms from due time to the whole answer (-1: failed).</summary>
    private static async Task<(long errors, string? first, double lagMax, double secs)> PhaseAsync(
        HttpClient client, Uri uri, string? host, double rate, double secs, double[]? lat)
    {
        long n = (long)(rate * secs), errors = 0;
        string? first = null;
        var tasks = new List<Task>((int)Math.Min(n, 1 << 22));
        double lagMax = 0;
        long start = Stopwatch.GetTimestamp();
        double ticksPer = Stopwatch.Frequency / rate;
        async Task One(long i, long due)
        {
            try
            {
                using var req = new HttpRequestMessage(HttpMethod.Get, uri);
                if (!string.IsNullOrEmpty(host)) req.Headers.Host = host;
                using var resp = await client.SendAsync(req, HttpCompletionOption.ResponseContentRead);
                if ((int)resp.StatusCode >= 400) throw new HttpRequestException($"HTTP {(int)resp.StatusCode}");
                if (lat is not null) lat[i] = (Stopwatch.GetTimestamp() - due) * 1000.0 / Stopwatch.Frequency;
            }
            catch (Exception e)
            {
                if (lat is not null) lat[i] = -1;
                if (Interlocked.Increment(ref errors) == 1) first = $"{e.GetType().Name}: {e.Message}";
            }
        }
        // The scheduler runs on its own thread so a busy thread pool delays answers, not sends.
        var sched = new Thread(() =>
        {
            long i = 0;
            while (i < n)
            {
                long now = Stopwatch.GetTimestamp();
                while (i < n)
                {
                    long due = start + (long)(i * ticksPer);
                    if (due > now) break;
                    lagMax = Math.Max(lagMax, (now - due) * 1000.0 / Stopwatch.Frequency);
                    long idx = i, d = due;
                    tasks.Add(Task.Run(() => One(idx, d)));
                    i++;
                }
                Thread.Sleep(1);
            }
        }) { IsBackground = true, Name = "open-loop scheduler" };
        sched.Start();
        await Task.Run(sched.Join);
        await Task.WhenAll(tasks);
        return (errors, first, lagMax, secs);
    }
}
