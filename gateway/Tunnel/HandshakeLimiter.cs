using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.Options;

namespace OrleansTunnel.Gateway.Tunnel;

/// <summary>
/// Per-source token bucket for tunnel handshakes, so a hello flood or a reconnect storm from one
/// address costs the gateway little: over the rate, the handshake is refused before any grain call.
/// </summary>
public sealed class HandshakeLimiter(IOptionsMonitor<GatewayOptions> options)
{
    private readonly ConcurrentDictionary<string, Bucket> _buckets = new(StringComparer.Ordinal);
    private long _lastSweep = Stopwatch.GetTimestamp();

    private sealed class Bucket
    {
        public double Tokens;
        public long Stamp;
    }

    public bool TryAcquire(string source)
    {
        double rate = options.CurrentValue.HandshakesPerSecondPerSource;
        if (rate <= 0)
        {
            return true;
        }
        double burst = Math.Max(1, rate * 2);
        long now = Stopwatch.GetTimestamp();
        var bucket = _buckets.GetOrAdd(source, _ => new Bucket { Tokens = burst, Stamp = now });
        bool allowed;
        lock (bucket)
        {
            bucket.Tokens = Math.Min(burst, bucket.Tokens + Stopwatch.GetElapsedTime(bucket.Stamp, now).TotalSeconds * rate);
            bucket.Stamp = now;
            allowed = bucket.Tokens >= 1;
            if (allowed)
            {
                bucket.Tokens -= 1;
            }
        }
        Sweep(now, burst, rate);
        return allowed;
    }

    private void Sweep(long now, double burst, double rate)
    {
        // Forget full buckets now and then, so many sources cost bounded memory.
        long last = Interlocked.Read(ref _lastSweep);
        if (Stopwatch.GetElapsedTime(last, now) < TimeSpan.FromMinutes(1) || Interlocked.CompareExchange(ref _lastSweep, now, last) != last)
        {
            return;
        }
        foreach (var (key, bucket) in _buckets)
        {
            if (bucket.Tokens + Stopwatch.GetElapsedTime(bucket.Stamp, now).TotalSeconds * rate >= burst)
            {
                _buckets.TryRemove(key, out _);
            }
        }
    }
}
