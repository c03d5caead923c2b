// ws-echo: WebSocket echo clients (closed loop, or paced with --interval-ms).

namespace OrleansTunnel.Bench.LoadGen;

internal static partial class Clients
{

    public static async Task<int> WsEchoAsync(Options o)
    {
        var target = new Uri(o.Str("target"));
        int sockets = o.Int("sockets"), size = o.Int("size");
        double dur = o.Seconds("duration"), warm = o.Seconds("warmup", 2);
        long interval = IntervalTicks(o);
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
                    await PaceAsync(t0, interval, ct);
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
        Report("ws-echo", target.ToString(), $"sockets={sockets} size={size} interval_ms={IntervalMs(interval)}", recs, secs, "messages",
            string.Create(CultureInfo.InvariantCulture, $"close_timeouts={closeTimeouts} close_failures={closeFailures} slowest_close_ms={slowestClose:F0} "));
        return 0;
    }
}
