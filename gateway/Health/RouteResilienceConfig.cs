using System.Runtime.CompilerServices;
using OrleansTunnel.Gateway.Policy;
using OrleansTunnel.Grains;

namespace OrleansTunnel.Gateway.Health;

/// <summary>
/// A route's own retry and circuit settings (Gateway:Routes:N:Resilience; the admin API's "resilience";
/// `otun admin route set --resilience`). Each key left out keeps the gateway's Resilience default.
/// </summary>
public sealed class RouteResilienceOptions
{
    /// <summary>false: this route's requests are never sent a second time.</summary>
    public bool? Retry { get; set; }

    /// <summary>Largest idempotent body read ahead so it can be retried (0..16777216).</summary>
    public int? RetryBufferBytes { get; set; }

    /// <summary>Consecutive path failures that open a session's circuit for this route's service (0: off).</summary>
    public int? CircuitFailures { get; set; }

    /// <summary>Failure ratio over CircuitWindow that opens the circuit (0: off; 0..1).</summary>
    public double? CircuitFailureRatio { get; set; }

    /// <summary>Window of the failure ratio: "10s", "1m" or a TimeSpan.</summary>
    public string? CircuitWindow { get; set; }

    /// <summary>Requests in the window before the ratio counts (at least 1).</summary>
    public int? CircuitMinimumRequests { get; set; }

    /// <summary>How long an open circuit skips its session: "30s", "1m" or a TimeSpan.</summary>
    public string? CircuitCooldown { get; set; }
}

/// <summary>Validation, conversion and the effective settings of a route's <see cref="RouteResilience"/>.</summary>
public static class RouteResilienceConfig
{
    private static readonly ConditionalWeakTable<RouteResilience, Effective> Cache = new();

    private sealed record Effective(ResilienceOptions Defaults, ResilienceOptions Merged);

    /// <summary>What is wrong with a route's resilience settings (keys named relative to the route), or null.</summary>
    public static string? Problem(RouteResilienceOptions? o)
    {
        if (o is null)
        {
            return null;
        }
        if (o.RetryBufferBytes is < 0 or > 16 * 1024 * 1024)
        {
            return $"Resilience:RetryBufferBytes {o.RetryBufferBytes} must be between 0 and 16777216 (e.g. 65536)";
        }
        if (o.CircuitFailures is < 0 or > 10_000)
        {
            return $"Resilience:CircuitFailures {o.CircuitFailures} must be between 0 (off) and 10000 (e.g. 5)";
        }
        if (o.CircuitFailureRatio is { } ratio && (ratio is < 0 or > 1 || double.IsNaN(ratio)))
        {
            return $"Resilience:CircuitFailureRatio {ratio} must be between 0 (off) and 1 (e.g. 0.5)";
        }
        if (o.CircuitMinimumRequests is < 1)
        {
            return $"Resilience:CircuitMinimumRequests {o.CircuitMinimumRequests} must be at least 1 (e.g. 20)";
        }
        foreach (var (key, text) in new[] { ("CircuitWindow", o.CircuitWindow), ("CircuitCooldown", o.CircuitCooldown) })
        {
            if (text is null)
            {
                continue;
            }
            if (!PolicyConfig.TryParsePer(text, out var span) || span < TimeSpan.FromMilliseconds(100) || span > TimeSpan.FromDays(1))
            {
                return $"Resilience:{key} '{text}' must be a duration between 100ms and 1d, like 30s, 1m or 00:00:30";
            }
        }
        return null;
    }

    /// <summary>The record kept with the route; null when nothing is overridden.</summary>
    public static RouteResilience? ToRecord(RouteResilienceOptions? o)
    {
        if (o is null || (o.Retry is null && o.RetryBufferBytes is null && o.CircuitFailures is null && o.CircuitFailureRatio is null
            && o.CircuitWindow is null && o.CircuitMinimumRequests is null && o.CircuitCooldown is null))
        {
            return null;
        }
        return new RouteResilience(o.Retry, o.RetryBufferBytes, o.CircuitFailures, o.CircuitFailureRatio,
            Milliseconds(o.CircuitWindow), o.CircuitMinimumRequests, Milliseconds(o.CircuitCooldown));

        static long? Milliseconds(string? text) => PolicyConfig.TryParsePer(text, out var span) ? (long)span.TotalMilliseconds : null;
    }

    /// <summary>
    /// The settings a request of this route uses: the gateway's defaults with the route's overrides. Computed
    /// once per (route version, defaults) and cached: no allocation per request.
    /// </summary>
    public static ResilienceOptions For(ResilienceOptions defaults, RouteResilience? route)
    {
        if (route is null)
        {
            return defaults;
        }
        if (Cache.TryGetValue(route, out var cached) && ReferenceEquals(cached.Defaults, defaults))
        {
            return cached.Merged;
        }
        var merged = new ResilienceOptions
        {
            Retry = route.Retry ?? defaults.Retry,
            RetryBufferBytes = route.RetryBufferBytes ?? defaults.RetryBufferBytes,
            CircuitFailures = route.CircuitFailures ?? defaults.CircuitFailures,
            CircuitFailureRatio = route.CircuitFailureRatio ?? defaults.CircuitFailureRatio,
            CircuitWindow = route.CircuitWindowMs is { } w ? TimeSpan.FromMilliseconds(w) : defaults.CircuitWindow,
            CircuitMinimumRequests = route.CircuitMinimumRequests ?? defaults.CircuitMinimumRequests,
            CircuitCooldown = route.CircuitCooldownMs is { } c ? TimeSpan.FromMilliseconds(c) : defaults.CircuitCooldown,
        };
        Cache.AddOrUpdate(route, new Effective(defaults, merged));
        return merged;
    }
}
