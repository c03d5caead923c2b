namespace OrleansTunnel.Grains;

/// <summary>
/// What a route changes in a request before forwarding it and in the response before the visitor sees it
/// (see README "Rewrites"). Header values may hold the placeholders {client_ip}, {host}, {request_id} and
/// {identity}.
/// </summary>
[GenerateSerializer, Immutable, Alias("OrleansTunnel.RouteRewrite")]
public sealed record RouteRewrite(
    [property: Id(0)] bool StripPrefix = false,
    [property: Id(1)] string? AddPrefix = null,
    [property: Id(2)] string? HostRewrite = null,
    [property: Id(3)] HeaderRules? RequestHeaders = null,
    [property: Id(4)] HeaderRules? ResponseHeaders = null);

/// <summary>Header edits applied in this order: <see cref="Remove"/>, <see cref="Set"/> (replaces), <see cref="Append"/> (adds a value).</summary>
[GenerateSerializer, Immutable, Alias("OrleansTunnel.HeaderRules")]
public sealed record HeaderRules(
    [property: Id(0)] Dictionary<string, string>? Set = null,
    [property: Id(1)] Dictionary<string, string>? Append = null,
    [property: Id(2)] string[]? Remove = null);

/// <summary>
/// A cluster-wide rate limit of a route: at most <see cref="Requests"/> requests in any interval of
/// <see cref="PerMs"/> milliseconds, per key: "ip", "header:NAME", "claim:NAME" or "route" (see README "Rate limits").
/// </summary>
[GenerateSerializer, Immutable, Alias("OrleansTunnel.RouteRateLimit")]
public sealed record RouteRateLimit(
    [property: Id(0)] int Requests,
    [property: Id(1)] long PerMs,
    [property: Id(2)] string Key = "ip");

/// <summary>
/// A route's own retry and circuit settings (README "Health checks, retries and circuit breaking"); each
/// null field keeps the gateway's Resilience default.
/// </summary>
[GenerateSerializer, Immutable, Alias("OrleansTunnel.RouteResilience")]
public sealed record RouteResilience(
    [property: Id(0)] bool? Retry = null,
    [property: Id(1)] int? RetryBufferBytes = null,
    [property: Id(2)] int? CircuitFailures = null,
    [property: Id(3)] double? CircuitFailureRatio = null,
    [property: Id(4)] long? CircuitWindowMs = null,
    [property: Id(5)] int? CircuitMinimumRequests = null,
    [property: Id(6)] long? CircuitCooldownMs = null);
