// What every client command shares: channels, warm-up and measured phases, counters and the report line.

namespace OrleansTunnel.Bench.LoadGen;

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

internal static partial class Clients
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

    /// <summary>--interval-ms: a paced stream or socket starts one round trip every N ms (0: closed loop).</summary>
    private static long IntervalTicks(Options o)
    {
        double ms = o.Double("interval-ms", 0);
        if (ms < 0) throw new ArgumentException("--interval-ms must be 0 (closed loop) or a positive number of milliseconds");
        return (long)(ms * Stopwatch.Frequency / 1000.0);
    }

    private static string IntervalMs(long ticks) => Ms(ticks).ToString("F0", CultureInfo.InvariantCulture);

    /// <summary>Waits until the next round trip is due (started + interval); a late one starts at once.</summary>
    private static async Task PaceAsync(long started, long interval, CancellationToken ct)
    {
        if (interval <= 0) return;
        var wait = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), started + interval);
        if (wait > TimeSpan.Zero) await Task.Delay(wait, ct);
    }
}
