using System.Globalization;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Options;
using OrleansTunnel.Gateway.Ingress;
using OrleansTunnel.Grains;

namespace OrleansTunnel.Gateway.Policy;

/// <summary>
/// A route's rate limit at the ingress: takes a token for the visitor's key, or answers 429 with
/// Retry-After and the RateLimit-Limit, -Remaining, -Reset and -Policy headers of
/// draft-ietf-httpapi-ratelimit-headers-07 (gRPC callers get RESOURCE_EXHAUSTED with the same message).
/// Admitted requests carry the same RateLimit-* headers with this gateway's best knowledge of what is left
/// (README "Rate limits": what Remaining and Reset mean across gateways).
/// </summary>
public sealed class RateLimitGate(RateLimiter limiter, RateLimitMetrics metrics, TrustedProxies proxies,
    IOptionsMonitor<GatewayOptions> gateway, IOptionsMonitor<RateLimitOptions> options)
{
    /// <summary>True when the request may go on; otherwise the refusal was written.</summary>
    public async ValueTask<bool> AdmitAsync(HttpContext context, Route route)
    {
        if (route.RateLimit is not { } limit || limit.Requests <= 0 || limit.PerMs <= 0)
        {
            return true;
        }
        string value = RateLimitKeys.Value(context, limit.Key, () => ClientIp(context));
        RateDecision decision;
        try
        {
            decision = await limiter.AcquireAsync(route, limit, value, context.RequestAborted);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            return false;
        }
        var headers = context.Response.Headers;
        string routeId = RateLimitKeys.RouteId(route);
        string requests = limit.Requests.ToString(CultureInfo.InvariantCulture);
        string policy = $"{limit.Requests};w={Math.Max(1, limit.PerMs / 1000)}";
        if (decision.Admitted)
        {
            metrics.Decided(routeId, RateLimitMetrics.Outcomes.Admitted);
            headers["RateLimit-Limit"] = requests;
            headers["RateLimit-Remaining"] = Math.Max(0, decision.Remaining).ToString(CultureInfo.InvariantCulture);
            headers["RateLimit-Reset"] = FullBudgetSeconds(limit).ToString(CultureInfo.InvariantCulture);
            headers["RateLimit-Policy"] = policy;
            return true;
        }
        metrics.Decided(routeId, decision.Unavailable ? RateLimitMetrics.Outcomes.Unavailable : RateLimitMetrics.Outcomes.Limited);
        long seconds = Math.Max(1, (decision.RetryAfterMs + 999) / 1000);
        string retry = seconds.ToString(CultureInfo.InvariantCulture);
        headers.RetryAfter = retry;
        headers["RateLimit-Limit"] = requests;
        headers["RateLimit-Remaining"] = "0";
        headers["RateLimit-Reset"] = retry;
        headers["RateLimit-Policy"] = policy;
        string message = decision.Refusal is { } refusal
            ? $"{refusal}; retry in {seconds} s"
            : $"rate limit of {limit.Requests} requests per {PolicyConfig.FormatPer(limit.PerMs)} reached for this {RateLimitKeys.Describe(limit.Key)} on this route; retry in {seconds} s";
        int status = decision.Unavailable ? StatusCodes.Status503ServiceUnavailable : StatusCodes.Status429TooManyRequests;
        await GatewayErrors.WriteAsync(context, status, message, decision.Unavailable ? GrpcStatus.Unavailable : GrpcStatus.ResourceExhausted);
        return false;
    }

    /// <summary>
    /// RateLimit-Reset of an admitted request: the window is sliding and grants count for per + lease ttl,
    /// so the whole budget is back at the latest this many seconds after this request (an upper bound).
    /// </summary>
    private long FullBudgetSeconds(RouteRateLimit limit)
    {
        double ttl = Math.Min(options.CurrentValue.LeaseTtl.TotalMilliseconds, limit.PerMs / 4.0);
        return Math.Max(1, (long)Math.Ceiling((limit.PerMs + ttl) / 1000.0));
    }

    /// <summary>The visitor's address as the gateway sees it (through trusted proxies).</summary>
    public string? ClientIp(HttpContext context)
    {
        var address = proxies.VisitorAddress(context, gateway.CurrentValue);
        return address is null ? null : (address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address).ToString();
    }
}
