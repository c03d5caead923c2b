using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OrleansTunnel.Grains;

namespace OrleansTunnel.Gateway.Policy;

/// <summary>The limiter's answer for one request.</summary>
/// <param name="RetryAfterMs">When refused: how long until the budget frees up.</param>
/// <param name="Refusal">When refused for another reason than the limit (key bound, limiter unreachable).</param>
public readonly record struct RateDecision(bool Admitted, int Remaining, long RetryAfterMs, string? Refusal = null, bool Unavailable = false);

/// <summary>
/// This gateway's share of every cluster-wide rate limit. Tokens of a (route, key) are leased from its
/// <see cref="IRateLimiterGrain"/> in batches (one lease call at a time per key; the batch doubles while
/// leases are used up within their ttl and halves when tokens expire unspent, up to
/// RateLimits:MaxLeaseBatch and MaxLeaseShare of the limit), spent locally until the ttl (counted from
/// when the lease was asked for) and otherwise dropped. A refusal is cached until the grain said tokens
/// free up, so a refused key costs no grain call either.
/// </summary>
public sealed partial class RateLimiter(IGrainFactory grains, IOptionsMonitor<RateLimitOptions> options, ILogger<RateLimiter> logger)
{
    private readonly ConcurrentDictionary<string, Bucket> _buckets = new(StringComparer.Ordinal);
    private int _sweeping;
    private long _admitted, _limited, _leases, _evicted, _degradedOpen, _degradedClosed, _wasted;
    private long _lastDegradedLog = long.MinValue;

    private sealed class Bucket
    {
        public readonly Lock Gate = new();
        public int Tokens;
        public long TokensExpire;
        public int Remaining;
        public long DeniedUntil;
        public string? Refusal;
        public int Want = 1;
        public int Waiting;
        public Task? Pending;
        public long LastUsed = Environment.TickCount64;
        public long DegradedUntil;
        public long LocalWindowStart;
        public int LocalCount;
    }

    /// <summary>Requests admitted by a rate limit on this gateway since start.</summary>
    public long Admitted => Interlocked.Read(ref _admitted);

    /// <summary>Requests refused (429) by a rate limit on this gateway since start.</summary>
    public long Limited => Interlocked.Read(ref _limited);

    /// <summary>Lease calls to limiter grains since start (what the batching saves: Admitted / Leases).</summary>
    public long Leases => Interlocked.Read(ref _leases);

    /// <summary>(route, key) entries dropped at RateLimits:MaxKeysPerGateway since start.</summary>
    public long Evicted => Interlocked.Read(ref _evicted);

    /// <summary>Decisions taken without the grain (it could not be reached) since start.</summary>
    public long Degraded => DegradedOpen + DegradedClosed;

    /// <summary>Decisions taken by this gateway's own count while the grain could not be reached (RateLimits:FailOpen true).</summary>
    public long DegradedOpen => Interlocked.Read(ref _degradedOpen);

    /// <summary>Requests answered 503 while the grain could not be reached (RateLimits:FailOpen false).</summary>
    public long DegradedClosed => Interlocked.Read(ref _degradedClosed);

    /// <summary>Leased tokens that expired unspent since start.</summary>
    public long Wasted => Interlocked.Read(ref _wasted);

    /// <summary>(route, key) entries held now.</summary>
    public int Keys => _buckets.Count;

    /// <summary>Takes one token of (route, key value) from the local lease, leasing more when out.</summary>
    public async ValueTask<RateDecision> AcquireAsync(Route route, RouteRateLimit limit, string keyValue, CancellationToken cancellationToken)
    {
        var o = options.CurrentValue;
        string routeId = RateLimitKeys.RouteId(route);
        var (hash, shard) = RateLimitKeys.Hash(routeId, limit.Key, keyValue, o.Shards);
        var bucket = _buckets.GetOrAdd(hash, static _ => new Bucket());
        if (_buckets.Count > o.MaxKeysPerGateway)
        {
            Sweep(o.MaxKeysPerGateway);
        }
        for (int attempt = 0; ; attempt++)
        {
            Task pending;
            long now = Environment.TickCount64;
            lock (bucket.Gate)
            {
                bucket.LastUsed = now;
                if (bucket.Tokens > 0 && now >= bucket.TokensExpire)
                {
                    Interlocked.Add(ref _wasted, bucket.Tokens);
                    bucket.Tokens = 0;
                    bucket.Want = Math.Max(1, bucket.Want / 2);
                }
                if (bucket.Tokens > 0)
                {
                    bucket.Tokens--;
                    Interlocked.Increment(ref _admitted);
                    return new RateDecision(true, bucket.Remaining + bucket.Tokens, 0);
                }
                if (now < bucket.DeniedUntil || attempt >= 64)
                {
                    Interlocked.Increment(ref _limited);
                    return new RateDecision(false, 0, Math.Max(1, bucket.DeniedUntil - now), bucket.Refusal);
                }
                if (now < bucket.DegradedUntil)
                {
                    return Local(bucket, limit, now, o);
                }
                bucket.Pending ??= LeaseAsync(bucket, routeId + "|" + shard, hash, limit, o);
                pending = bucket.Pending;
                bucket.Waiting++;
            }
            try
            {
                await pending.WaitAsync(cancellationToken);
            }
            finally
            {
                lock (bucket.Gate)
                {
                    bucket.Waiting--;
                }
            }
        }
    }

    private async Task LeaseAsync(Bucket bucket, string grainKey, string hash, RouteRateLimit limit, RateLimitOptions o)
    {
        await Task.Yield();
        long sentAt = Environment.TickCount64;
        long ttl = (long)Math.Min(o.LeaseTtl.TotalMilliseconds, limit.PerMs / 4.0);
        int cap = Math.Max(1, Math.Min(o.MaxLeaseBatch, (int)(limit.Requests * o.MaxLeaseShare)));
        int want;
        lock (bucket.Gate)
        {
            // At least as many as are waiting for this lease (a burst), at most the cap.
            want = Math.Clamp(Math.Max(bucket.Want, bucket.Waiting), 1, cap);
        }
        TokenGrant? grant = null;
        try
        {
            Interlocked.Increment(ref _leases);
            grant = await grains.GetGrain<IRateLimiterGrain>(grainKey).Lease(hash, limit.Requests, limit.PerMs, ttl, want).WaitAsync(o.LeaseTimeout);
        }
        catch (Exception ex)
        {
            long now = Environment.TickCount64;
            if (now - Interlocked.Read(ref _lastDegradedLog) > 10_000)
            {
                Interlocked.Exchange(ref _lastDegradedLog, now);
                LogDegraded(logger, grainKey, o.FailOpen ? "admits up to the limit per key on its own" : "answers 503", ex.GetType().Name + ": " + ex.Message);
            }
        }
        lock (bucket.Gate)
        {
            bucket.Pending = null;
            if (grant is null)
            {
                bucket.DegradedUntil = Environment.TickCount64 + (long)o.LeaseTimeout.TotalMilliseconds;
                return;
            }
            bucket.Refusal = grant.Refusal;
            bucket.Remaining = grant.Remaining;
            if (grant.Granted > 0)
            {
                // Used up within the ttl: a bigger batch next time (bounded by cap).
                bucket.Want = Math.Min(cap, want * 2);
                bucket.Tokens += grant.Granted;
                bucket.TokensExpire = sentAt + ttl;
                bucket.DeniedUntil = 0;
            }
            else
            {
                bucket.Want = 1;
                bucket.DeniedUntil = sentAt + Math.Max(1, grant.RetryAfterMs);
            }
        }
    }

    /// <summary>Without the grain: fail open (a fixed window of the limit on this gateway alone) or refuse.</summary>
    private RateDecision Local(Bucket bucket, RouteRateLimit limit, long now, RateLimitOptions o)
    {
        if (!o.FailOpen)
        {
            Interlocked.Increment(ref _degradedClosed);
            Interlocked.Increment(ref _limited);
            return new RateDecision(false, 0, bucket.DegradedUntil - now, "the cluster's rate limiter cannot be reached (RateLimits:FailOpen is false)", Unavailable: true);
        }
        Interlocked.Increment(ref _degradedOpen);
        if (now - bucket.LocalWindowStart >= limit.PerMs)
        {
            bucket.LocalWindowStart = now;
            bucket.LocalCount = 0;
        }
        if (bucket.LocalCount < limit.Requests)
        {
            bucket.LocalCount++;
            Interlocked.Increment(ref _admitted);
            return new RateDecision(true, limit.Requests - bucket.LocalCount, 0);
        }
        Interlocked.Increment(ref _limited);
        return new RateDecision(false, 0, bucket.LocalWindowStart + limit.PerMs - now);
    }

    /// <summary>
    /// Over RateLimits:MaxKeysPerGateway: drops idle entries (no live tokens, no refusal in force), then
    /// the least recently used, down to 90% of the bound. Dropping only loses unspent tokens: never over-admits.
    /// </summary>
    private void Sweep(int max)
    {
        if (Interlocked.Exchange(ref _sweeping, 1) == 1)
        {
            return;
        }
        try
        {
            long now = Environment.TickCount64;
            int target = Math.Max(1, max * 9 / 10);
            foreach (var (key, b) in _buckets)
            {
                if (b.Pending is null && (b.Tokens == 0 || now >= b.TokensExpire) && now >= b.DeniedUntil && now >= b.DegradedUntil && _buckets.TryRemove(key, out _))
                {
                    Interlocked.Increment(ref _evicted);
                }
            }
            if (_buckets.Count > target)
            {
                foreach (var (key, _) in _buckets.OrderBy(kv => kv.Value.LastUsed).Take(_buckets.Count - target).ToList())
                {
                    if (_buckets.TryRemove(key, out _))
                    {
                        Interlocked.Increment(ref _evicted);
                    }
                }
            }
            LogSwept(logger, max, _buckets.Count);
        }
        finally
        {
            Volatile.Write(ref _sweeping, 0);
        }
    }

    [LoggerMessage(EventId = 231, EventName = "RateLimiterUnreachable", Level = LogLevel.Warning,
        Message = "The rate limiter grain {Limiter} did not answer ({Error}); this gateway {Behaviour} until it does (RateLimits:FailOpen). Check the silos.")]
    private static partial void LogDegraded(ILogger logger, string limiter, string behaviour, string error);

    [LoggerMessage(EventId = 232, EventName = "RateLimitKeysSwept", Level = LogLevel.Warning,
        Message = "This gateway held more than RateLimits:MaxKeysPerGateway = {Max} rate-limit keys and dropped the idle and least recently used ones ({Kept} kept); many distinct visitors or keys, or a visitor minting keys.")]
    private static partial void LogSwept(ILogger logger, int max, int kept);
}
