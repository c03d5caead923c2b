using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace OrleansTunnel.Grains;

/// <inheritdoc cref="IRateLimiterGrain"/>
/// <remarks>
/// Each key keeps its live grants (expiry, count); a grant lives <c>per + ttl</c> from the moment it is
/// made. Grants close in time are merged into the later expiry (never an earlier one), so a key holds at
/// most about 64 entries whatever its limit. In memory only: a re-activation (its silo died) starts empty,
/// which is the one way the cluster can admit more than the limit (see README "Rate limits").
/// </remarks>
public sealed partial class RateLimiterGrain(IOptions<RateLimiterOptions> options, ILogger<RateLimiterGrain> logger) : Grain, IRateLimiterGrain
{
    private readonly Dictionary<string, KeyWindow> _keys = new(StringComparer.Ordinal);
    private IGrainTimer? _sweep;
    private long _lastCallTicks = Environment.TickCount64;
    private long _granted, _leases, _denied, _keyBoundRefusals;
    private long _lastBoundLogTicks = long.MinValue;

    private sealed class KeyWindow
    {
        public readonly Queue<(long Expires, int Count)> Grants = new();
        public (long Expires, int Count) Last;
        public int Live;

        /// <summary>Drops expired grants; the merged last entry lives in <see cref="Last"/> until a newer one starts.</summary>
        public void Age(long now)
        {
            while (Grants.TryPeek(out var g) && g.Expires <= now)
            {
                Grants.Dequeue();
                Live -= g.Count;
            }
            if (Last.Count > 0 && Last.Expires <= now)
            {
                Live -= Last.Count;
                Last = default;
            }
        }

        public void Add(long expires, int count, long mergeWindow)
        {
            if (Last.Count > 0 && expires - Last.Expires < mergeWindow)
            {
                // Merged into the later expiry: the earlier grant is held a little longer, never shorter.
                Last = (Math.Max(expires, Last.Expires), Last.Count + count);
            }
            else
            {
                if (Last.Count > 0)
                {
                    Grants.Enqueue(Last);
                }
                Last = (expires, count);
            }
            Live += count;
        }

        public long OldestExpiry => Grants.TryPeek(out var g) ? g.Expires : Last.Expires;
    }

    public Task<TokenGrant> Lease(string key, int limit, long perMs, long ttlMs, int want)
    {
        long now = Environment.TickCount64;
        _lastCallTicks = now;
        _leases++;
        EnsureSweep();
        if (!_keys.TryGetValue(key, out var window))
        {
            if (_keys.Count >= options.Value.MaxKeysPerGrain)
            {
                Sweep(now);
            }
            if (_keys.Count >= options.Value.MaxKeysPerGrain)
            {
                _keyBoundRefusals++;
                if (now - _lastBoundLogTicks > 10_000)
                {
                    _lastBoundLogTicks = now;
                    LogKeyBound(logger, this.GetPrimaryKeyString(), options.Value.MaxKeysPerGrain);
                }
                return Task.FromResult(new TokenGrant(0, 0, Math.Max(1, perMs / 10),
                    $"the rate limiter holds its maximum of {options.Value.MaxKeysPerGrain} active keys (RateLimiter:MaxKeysPerGrain)"));
            }
            _keys[key] = window = new KeyWindow();
        }
        window.Age(now);
        int free = Math.Max(0, limit - window.Live);
        int granted = Math.Clamp(want, 0, free);
        if (granted == 0)
        {
            _denied++;
            long retry = window.Live > 0 ? Math.Max(1, window.OldestExpiry - now) : 1;
            return Task.FromResult(new TokenGrant(0, 0, retry));
        }
        window.Add(now + perMs + ttlMs, granted, Math.Max(1, perMs / 64));
        _granted += granted;
        return Task.FromResult(new TokenGrant(granted, free - granted, 0));
    }

    public Task<RateLimiterSnapshot> GetSnapshot() =>
        Task.FromResult(new RateLimiterSnapshot(_keys.Count, _granted, _leases, _denied, _keyBoundRefusals));

    private void EnsureSweep()
    {
        if (_sweep is null)
        {
            var period = TimeSpan.FromSeconds(10);
            _sweep = this.RegisterGrainTimer(OnSweep, new GrainTimerCreationOptions(period, period) { KeepAlive = true });
        }
    }

    private Task OnSweep(CancellationToken cancellationToken)
    {
        long now = Environment.TickCount64;
        Sweep(now);
        if (_keys.Count == 0 && now - _lastCallTicks >= (long)options.Value.IdleDeactivation.TotalMilliseconds)
        {
            _sweep?.Dispose();
            _sweep = null;
            DeactivateOnIdle();
        }
        return Task.CompletedTask;
    }

    /// <summary>Forgets keys without live grants (they hold no budget: forgetting them cannot over-admit).</summary>
    private void Sweep(long now)
    {
        foreach (var (key, window) in _keys)
        {
            window.Age(now);
            if (window.Live <= 0)
            {
                _keys.Remove(key);
            }
        }
    }

    [LoggerMessage(EventId = 230, EventName = "RateLimitKeyBound", Level = LogLevel.Warning,
        Message = "Rate limiter {Limiter} holds its maximum of {Max} keys with live grants and refuses new keys (429) until some age out; raise RateLimiter:MaxKeysPerGrain or RateLimits:Shards if this is legitimate traffic.")]
    private static partial void LogKeyBound(ILogger logger, string limiter, int max);
}
