namespace OrleansTunnel.Grains;

/// <summary>Bounds of the rate limiter grains (configuration section "RateLimiter", read by the silo).</summary>
public sealed class RateLimiterOptions
{
    public const string Section = "RateLimiter";

    /// <summary>
    /// Most keys one limiter grain holds grants for. A key whose grants all aged out is forgotten; when
    /// every held key still has live grants, a new key is refused (429 naming the bound) and counted. Default 10000.
    /// </summary>
    public int MaxKeysPerGrain { get; set; } = 10_000;

    /// <summary>A limiter grain without live grants deactivates after this long without calls. Default 00:02:00.</summary>
    public TimeSpan IdleDeactivation { get; set; } = TimeSpan.FromMinutes(2);
}

/// <summary>The answer to a token lease.</summary>
/// <param name="Granted">Tokens granted (0..want).</param>
/// <param name="Remaining">Tokens still free in the window after this grant.</param>
/// <param name="RetryAfterMs">When nothing was granted: how long until tokens free up (the oldest live grant ages out).</param>
/// <param name="Refusal">Set when the key was refused for another reason than the limit (the grain's key bound).</param>
[GenerateSerializer, Immutable, Alias("OrleansTunnel.TokenGrant")]
public sealed record TokenGrant(
    [property: Id(0)] int Granted,
    [property: Id(1)] int Remaining,
    [property: Id(2)] long RetryAfterMs,
    [property: Id(3)] string? Refusal = null);

/// <summary>What one limiter grain holds, for tools and tests.</summary>
[GenerateSerializer, Immutable, Alias("OrleansTunnel.RateLimiterSnapshot")]
public sealed record RateLimiterSnapshot(
    [property: Id(0)] int Keys,
    [property: Id(1)] long Granted,
    [property: Id(2)] long Leases,
    [property: Id(3)] long Denied,
    [property: Id(4)] long KeyBoundRefusals);

/// <summary>
/// One shard of a route's cluster-wide rate limit (key: "route|shard"). Gateways lease tokens in batches
/// for a (route, key); a grant counts against the key's sliding window for <c>per + ttl</c>, where
/// <c>ttl</c> is how long the gateway may spend the tokens, so no interval of length <c>per</c> sees more
/// than the limit spent however many gateways lease (see ARCHITECTURE.md "Rate limits").
/// </summary>
[Alias("OrleansTunnel.IRateLimiterGrain")]
public interface IRateLimiterGrain : IGrainWithStringKey
{
    /// <summary>Leases up to <paramref name="want"/> tokens of <paramref name="key"/> (a hash of the visitor's key).</summary>
    [Alias("Lease")]
    Task<TokenGrant> Lease(string key, int limit, long perMs, long ttlMs, int want);

    [Alias("GetSnapshot")]
    Task<RateLimiterSnapshot> GetSnapshot();
}
