// http-rate: open-loop HTTP/1.1 GETs at a fixed rate.

namespace OrleansTunnel.Bench.LoadGen;

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
