namespace OrleansTunnel.Grains;

/// <summary>Limits one agent's budget is held to (configuration section "Backpressure", read by the silo).</summary>
public sealed class BackpressureOptions
{
    public const string Section = "Backpressure";

    /// <summary>Most concurrent requests one agent serves, over all gateways and services.</summary>
    public int MaxConcurrentPerAgent { get; set; } = 1000;

    /// <summary>Most concurrent requests one agent serves for one service.</summary>
    public int MaxConcurrentPerService { get; set; } = 1000;

    /// <summary>A gateway that has not renewed its leases for this long loses them (it is presumed dead).</summary>
    public TimeSpan LeaseTimeout { get; set; } = TimeSpan.FromSeconds(30);
}

/// <summary>The answer to a lease request.</summary>
[GenerateSerializer, Immutable, Alias("OrleansTunnel.PermitGrant")]
public sealed record PermitGrant(
    [property: Id(0)] int Granted,
    [property: Id(1)] string? LimitReached,
    [property: Id(2)] int AgentLimit,
    [property: Id(3)] int ServiceLimit);

/// <summary>What the grain has handed out, for tools and tests.</summary>
[GenerateSerializer, Immutable, Alias("OrleansTunnel.BackpressureSnapshot")]
public sealed record BackpressureSnapshot(
    [property: Id(0)] string AgentId,
    [property: Id(1)] int Leased,
    [property: Id(2)] Dictionary<string, int> LeasedByService,
    [property: Id(3)] Dictionary<string, int> LeasedByGateway,
    [property: Id(4)] int AgentLimit,
    [property: Id(5)] int ServiceLimit,
    [property: Id(6)] long Rejections);

/// <summary>
/// The concurrency budget of one agent (keyed by agent id). Gateways lease permits in batches and
/// give back what they do not use, so steady traffic does not call this grain per request; a gateway
/// that stops renewing loses its leases after the lease timeout.
/// </summary>
[Alias("OrleansTunnel.IBackpressureGrain")]
public interface IBackpressureGrain : IGrainWithStringKey
{
    /// <summary>Leases up to <paramref name="want"/> permits (at least <paramref name="need"/> or none).</summary>
    [Alias("Lease")]
    Task<PermitGrant> Lease(string gatewayId, string service, int need, int want);

    /// <summary>Gives permits back.</summary>
    [Alias("Return")]
    Task Return(string gatewayId, string service, int count);

    /// <summary>Keeps this gateway's leases alive; the held counts are the gateway's own truth.</summary>
    [Alias("Renew")]
    Task Renew(string gatewayId, Dictionary<string, int> heldByService);

    [Alias("GetSnapshot")]
    Task<BackpressureSnapshot> GetSnapshot();
}
