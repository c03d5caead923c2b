namespace OrleansTunnel.Grains;

/// <summary>
/// A routing rule: a host (exact, or a wildcard <c>*.example.com</c> matching any subdomain) and an
/// optional path prefix (matched on segment boundaries) send visitors to a service.
/// </summary>
/// <remarks>
/// Optional visitor-side settings: <see cref="MaxRequestBodySize"/> overrides the gateway's limit;
/// <see cref="Access"/> ("basic" or "bearer") with <see cref="CredentialSha256"/> (SHA-256 hex of
/// "user:password" or of the token) demands a credential; <see cref="AllowedNetworks"/> (CIDRs) limits
/// the visitor addresses. <see cref="CaptureBodyBytes"/> &gt; 0 keeps the first that many bytes of each
/// request and response body for the request inspector (never of WebSockets). <see cref="PathMode"/>:
/// null or "canonical" refuses request targets a backend could read differently from the gateway
/// (empty or dot segments, encoded slashes, ';'); "raw" forwards them byte for byte. <see cref="Access"/> "oidc" or
/// "jwt" takes its settings from <see cref="Identity"/>.
/// <see cref="Rewrite"/> edits the forwarded target, Host and headers; <see cref="RateLimit"/> limits
/// requests cluster-wide (gateway/Policy); <see cref="Resilience"/> overrides the gateway's retry and
/// circuit settings for this route (gateway/Health).
/// </remarks>
[GenerateSerializer, Immutable, Alias("OrleansTunnel.Route")]
public sealed record Route(
    [property: Id(0)] string Host,
    [property: Id(1)] string? PathPrefix,
    [property: Id(2)] string Service,
    [property: Id(3)] long? MaxRequestBodySize = null,
    [property: Id(4)] string? Access = null,
    [property: Id(5)] string? CredentialSha256 = null,
    [property: Id(6)] string[]? AllowedNetworks = null,
    [property: Id(7)] int CaptureBodyBytes = 0,
    [property: Id(8)] string? PathMode = null,
    [property: Id(9)] RouteRewrite? Rewrite = null,
    [property: Id(10)] RouteRateLimit? RateLimit = null,
    [property: Id(11)] RouteIdentity? Identity = null,
    [property: Id(12)] RouteResilience? Resilience = null);

/// <summary>One place a service is served from: an agent's session on a gateway.</summary>
[GenerateSerializer, Immutable, Alias("OrleansTunnel.ServiceEndpoint")]
public sealed record ServiceEndpoint(
    [property: Id(0)] string AgentId,
    [property: Id(1)] string SessionId,
    [property: Id(2)] string GatewayId);

/// <summary>
/// A circuit (agent session, service) some gateway opened, shared with every gateway through the routing
/// snapshot: until <see cref="OpenUntil"/> no gateway sends the session requests of the service; then the
/// one gateway that claimed the probe (<see cref="ProbeBy"/>, until <see cref="ProbeUntil"/>) tries it and
/// reports close or reopen. Dropped at <see cref="ExpiresAt"/> when no verdict came, or when the session leaves.
/// </summary>
[GenerateSerializer, Immutable, Alias("OrleansTunnel.SharedCircuit")]
public sealed record SharedCircuit(
    [property: Id(0)] string SessionId,
    [property: Id(1)] string Service,
    [property: Id(2)] string AgentId,
    [property: Id(3)] string OpenedBy,
    [property: Id(4)] DateTimeOffset OpenedAt,
    [property: Id(5)] DateTimeOffset OpenUntil,
    [property: Id(6)] DateTimeOffset ExpiresAt,
    [property: Id(7)] string Reason,
    [property: Id(8)] string? ProbeBy = null,
    [property: Id(9)] DateTimeOffset? ProbeUntil = null)
{
    /// <summary>
    /// How early the open time counts as over. A gateway times its own copy of the circuit with the coarse
    /// Environment.TickCount64 (a few ms per tick) and publishes this record a moment after opening it, so its
    /// local circuit can be due a few ms before <see cref="OpenUntil"/>; without the slack, the probe that
    /// request should make was refused (503) by this record, on the gateway and at the grain alike.
    /// </summary>
    public static readonly TimeSpan ClockSlack = TimeSpan.FromMilliseconds(100);

    /// <summary>Whether the circuit is still open at <paramref name="now"/> (within <see cref="ClockSlack"/>).</summary>
    public bool IsOpenAt(DateTimeOffset now) => now + ClockSlack < OpenUntil;
}

/// <summary>An agent credential managed at runtime: only the SHA-256 of the token is kept.</summary>
[GenerateSerializer, Immutable, Alias("OrleansTunnel.AgentCredential")]
public sealed record AgentCredential(
    [property: Id(0)] string AgentId,
    [property: Id(1)] string TokenSha256,
    [property: Id(2)] string[] Services);

/// <summary>
/// Everything a gateway caches to route locally; replaced whole, newer versions win.
/// <see cref="GatewaysIncomplete"/>: the routing grain was just re-activated (its silo died) and has not
/// heard from every gateway yet, so a gateway missing from <see cref="Gateways"/> may well be alive:
/// caches keep what they knew of it until the directory is complete again.
/// </summary>
[GenerateSerializer, Immutable, Alias("OrleansTunnel.RoutingSnapshot")]
public sealed record RoutingSnapshot(
    [property: Id(0)] long Version,
    [property: Id(1)] Route[] Routes,
    [property: Id(2)] Dictionary<string, ServiceEndpoint[]> Endpoints,
    [property: Id(3)] AgentCredential[] Credentials,
    [property: Id(4)] GatewayInfo[] Gateways,
    [property: Id(5)] bool GatewaysIncomplete = false,
    [property: Id(6)] string[]? RevokedTokens = null,
    [property: Id(7)] L4Mapping[]? L4Services = null,
    [property: Id(8)] Dictionary<string, ServiceEndpoint[]>? UnhealthyEndpoints = null,
    [property: Id(9)] SharedCircuit[]? Circuits = null)
{
    public static RoutingSnapshot Empty { get; } = new(0, [], new Dictionary<string, ServiceEndpoint[]>(), [], []);
}

/// <summary>
/// A change to durable control state (routes, runtime credentials) that was not saved because the
/// grain storage (Redis with Cluster:Redis) did not accept the write; nothing changed.
/// </summary>
[GenerateSerializer]
[Alias("OrleansTunnel.DurableStateUnavailableException")]
public sealed class DurableStateUnavailableException : Exception
{
    public DurableStateUnavailableException()
    {
    }

    public DurableStateUnavailableException(string message) : base(message)
    {
    }

    public DurableStateUnavailableException(string message, Exception inner) : base(message, inner)
    {
    }
}
