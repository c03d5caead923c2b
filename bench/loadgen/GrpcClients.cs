// grpc-unary and grpc-stream: closed-loop gRPC clients (a stream may be paced with --interval-ms).

namespace OrleansTunnel.Bench.LoadGen;

internal static partial class Clients
{

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
        long interval = IntervalTicks(o);
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
                            await PaceAsync(t0, interval, ct);
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
        Report("grpc-stream", target, $"mode={mode} streams={streams} size={size} interval_ms={IntervalMs(interval)}", recs, secs, "messages");
        return 0;
    }
}
