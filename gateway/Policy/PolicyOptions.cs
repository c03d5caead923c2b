namespace OrleansTunnel.Gateway.Policy;

/// <summary>A route's rewrites (Gateway:Routes:N:Rewrite; the admin API's "rewrite"). See README "Rewrites".</summary>
public sealed class RouteRewriteOptions
{
    /// <summary>True: the route's matched PathPrefix is removed from the forwarded path ("/api/users" -> "/users").</summary>
    public bool StripPrefix { get; set; }

    /// <summary>A canonical path put before the forwarded path ("/v1": "/users" -> "/v1/users"); after StripPrefix.</summary>
    public string? AddPrefix { get; set; }

    /// <summary>The Host the backend sees (host or host:port); default: the visitor's. X-Forwarded-Host keeps the visitor's.</summary>
    public string? HostRewrite { get; set; }

    /// <summary>Edits of the request headers the backend sees (after the gateway's own forwarding headers).</summary>
    public HeaderRulesOptions? RequestHeaders { get; set; }

    /// <summary>Edits of the response headers the visitor sees.</summary>
    public HeaderRulesOptions? ResponseHeaders { get; set; }
}

/// <summary>Header edits, applied in this order: Remove, Set (replaces every value), Append (adds one).</summary>
public sealed class HeaderRulesOptions
{
    /// <summary>Header name -> value (placeholders allowed); replaces whatever was there.</summary>
    public Dictionary<string, string> Set { get; set; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>Header name -> value (placeholders allowed); added after any existing values.</summary>
    public Dictionary<string, string> Append { get; set; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>Header names removed.</summary>
    public List<string> Remove { get; set; } = [];
}

/// <summary>A route's cluster-wide rate limit (Gateway:Routes:N:RateLimit; the admin API's "rateLimit"). See README "Rate limits".</summary>
public sealed class RouteRateLimitOptions
{
    /// <summary>Most requests in any interval of <see cref="Per"/>, per key (1..1000000).</summary>
    public int Requests { get; set; }

    /// <summary>The interval: "500ms", "10s", "1m", "1h", "1d" or a TimeSpan ("00:01:00"); 1 s to 1 day.</summary>
    public string? Per { get; set; }

    /// <summary>"ip" (default), "header:NAME", "claim:NAME" or "route" (one budget for everybody).</summary>
    public string? Key { get; set; }
}

/// <summary>Gateway-side settings of the cluster-wide rate limiter (configuration section "RateLimits").</summary>
public sealed class RateLimitOptions
{
    public const string Section = "RateLimits";

    /// <summary>Largest batch of tokens a gateway leases at once for one (route, key). Default 50.</summary>
    public int MaxLeaseBatch { get; set; } = 50;

    /// <summary>A lease never takes more than this share of the limit (so gateways share a small limit fairly). Default 0.1.</summary>
    public double MaxLeaseShare { get; set; } = 0.1;

    /// <summary>
    /// How long leased tokens may be spent (from the moment the lease was asked for); unspent ones are lost.
    /// The grain holds each grant for Per + this, which is what makes the limit exact. Capped at Per / 4. Default 00:00:01.
    /// </summary>
    public TimeSpan LeaseTtl { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How long a lease call may take before the gateway uses its degraded allowance. Default 00:00:02.</summary>
    public TimeSpan LeaseTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// While the limiter grain cannot be reached: true (default) admits up to the limit per key on this
    /// gateway alone (the cluster may then admit up to gateways x limit); false answers 503.
    /// </summary>
    public bool FailOpen { get; set; } = true;

    /// <summary>
    /// Most (route, key) entries one gateway keeps; beyond, idle entries and then the least recently used
    /// are dropped (their unspent tokens are lost: never over-admits) and counted. Default 100000.
    /// </summary>
    public int MaxKeysPerGateway { get; set; } = 100_000;

    /// <summary>Limiter grains per route (keys are spread over them by hash). Must be equal on every gateway. Default 16.</summary>
    public int Shards { get; set; } = 16;
}
