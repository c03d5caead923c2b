using System.Diagnostics.Metrics;
using OrleansTunnel.Gateway.Telemetry;

namespace OrleansTunnel.Gateway.Policy;

/// <summary>
/// The rate limiter's metrics on the gateway meter (so on /metrics): decisions per route and outcome,
/// and the limiter's own counters (lease calls, fail-open and fail-closed decisions, keys held and swept).
/// </summary>
public sealed class RateLimitMetrics
{
    /// <summary>Values of the "outcome" tag of otun.gateway.ratelimit.decisions.</summary>
    public static class Outcomes
    {
        public const string Admitted = "admitted";
        public const string Limited = "limited";
        public const string Unavailable = "unavailable";
    }

    private readonly Counter<long> _decisions;

    public RateLimitMetrics(IMeterFactory meterFactory, RateLimiter limiter)
    {
        var meter = meterFactory.Create(new MeterOptions(GatewayTelemetry.MeterName) { Version = typeof(RateLimitMetrics).Assembly.GetName().Version?.ToString() });
        _decisions = meter.CreateCounter<long>("otun.gateway.ratelimit.decisions",
            description: "Requests of rate-limited routes decided by this gateway, by route (host + path prefix) and outcome (admitted, limited = 429, unavailable = 503 while the limiter is unreachable and RateLimits:FailOpen is false).");
        meter.CreateObservableCounter("otun.gateway.ratelimit.leases", () => limiter.Leases,
            description: "Token lease calls this gateway made to limiter grains (admitted / leases = what batching saves).");
        meter.CreateObservableCounter("otun.gateway.ratelimit.degraded", () => new[]
            {
                new Measurement<long>(limiter.DegradedOpen, new KeyValuePair<string, object?>("mode", "open")),
                new Measurement<long>(limiter.DegradedClosed, new KeyValuePair<string, object?>("mode", "closed")),
            },
            description: "Decisions taken without the limiter grain (unreachable), by mode: open = admitted or refused by this gateway's own count (RateLimits:FailOpen true), closed = answered 503.");
        meter.CreateObservableCounter("otun.gateway.ratelimit.wasted_tokens", () => limiter.Wasted,
            description: "Leased tokens that expired unspent on this gateway.");
        meter.CreateObservableCounter("otun.gateway.ratelimit.keys_evicted", () => limiter.Evicted,
            description: "(route, key) entries dropped because this gateway held more than RateLimits:MaxKeysPerGateway.");
        meter.CreateObservableUpDownCounter("otun.gateway.ratelimit.keys", () => limiter.Keys,
            description: "(route, key) entries this gateway holds now (bounded by RateLimits:MaxKeysPerGateway).");
    }

    /// <summary>Counts one decision of <paramref name="routeId"/>.</summary>
    public void Decided(string routeId, string outcome) =>
        _decisions.Add(1, new KeyValuePair<string, object?>("route", routeId), new KeyValuePair<string, object?>("outcome", outcome));
}
