namespace OrleansTunnel.Grains;

/// <summary>A live gateway of the cluster, as the directory in <see cref="IRoutingGrain"/> knows it.</summary>
/// <param name="GatewayId">The gateway's id (Gateway:GatewayId).</param>
/// <param name="Incarnation">Grows each time the gateway (re)joins; a gateway declared dead must rejoin with a new one.</param>
/// <param name="TunnelUrl">Tunnel endpoint other gateways dial (Gateway:AdvertisedTunnel); empty: not advertised.</param>
/// <param name="AgentTunnelUrl">Tunnel endpoint agents are told about (Gateway:AgentAdvertisedTunnel, else TunnelUrl); empty: none.</param>
/// <param name="PeerSecretSha256">SHA-256 (hex) of the secret this gateway presents when it dials another gateway.</param>
[GenerateSerializer, Immutable, Alias("OrleansTunnel.GatewayInfo")]
public sealed record GatewayInfo(
    [property: Id(0)] string GatewayId,
    [property: Id(1)] long Incarnation,
    [property: Id(2)] string TunnelUrl,
    [property: Id(3)] string PeerSecretSha256,
    [property: Id(4)] DateTimeOffset JoinedAt,
    [property: Id(5)] string AgentTunnelUrl = "");

/// <summary>One agent session a gateway holds, as it reports it.</summary>
/// <param name="Unhealthy">Services of <paramref name="Services"/> the agent reports unhealthy (health checks): not dispatched to.</param>
[GenerateSerializer, Immutable, Alias("OrleansTunnel.HeldSession")]
public sealed record HeldSession(
    [property: Id(0)] string AgentId,
    [property: Id(1)] string SessionId,
    [property: Id(2)] string[] Services,
    [property: Id(3)] string[]? Unhealthy = null);

/// <summary>What a gateway tells the directory: who it is and the agent sessions it holds (all of them, every time).</summary>
[GenerateSerializer, Immutable, Alias("OrleansTunnel.GatewayReport")]
public sealed record GatewayReport(
    [property: Id(0)] GatewayInfo Gateway,
    [property: Id(1)] HeldSession[] Sessions);

/// <summary>The directory's answer to a report.</summary>
/// <param name="Version">The routing snapshot's version: a gateway whose cache differs re-reads it.</param>
/// <param name="NewerIncarnationExists">Refused because the directory holds a newer incarnation of this id (a restart on a host whose clock is behind, or two processes with one id).</param>
/// <param name="NextIncarnation">An incarnation the directory would accept.</param>
/// <param name="Accepted">False when this incarnation was declared dead: the gateway must drop its sessions and rejoin with a new incarnation.</param>
[GenerateSerializer, Immutable, Alias("OrleansTunnel.GatewayReportResult")]
public sealed record GatewayReportResult(
    [property: Id(0)] bool Accepted,
    [property: Id(1)] string? Reason,
    [property: Id(2)] long Version = 0,
    [property: Id(3)] bool NewerIncarnationExists = false,
    [property: Id(4)] long NextIncarnation = 0);

/// <summary>Settings of the gateway directory kept by the routing grain (silo configuration section "Directory").</summary>
public sealed class DirectoryOptions
{
    public const string Section = "Directory";

    /// <summary>
    /// A gateway that has not reported for this long is declared dead: its agent sessions leave every
    /// gateway's routing at once and its incarnation is fenced. Keep it at three times Gateway:ClusterHeartbeatInterval.
    /// </summary>
    public TimeSpan GatewayTimeToLive { get; set; } = TimeSpan.FromSeconds(15);
}
