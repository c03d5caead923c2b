namespace OrleansTunnel.Grains;

/// <summary>One live tunnel connection of an agent.</summary>
[GenerateSerializer, Immutable, Alias("OrleansTunnel.AgentSession")]
public sealed record AgentSession(
    [property: Id(0)] string SessionId,
    [property: Id(1)] string GatewayId,
    [property: Id(2)] uint Slot,
    [property: Id(3)] ulong Epoch,
    [property: Id(4)] string[] Services,
    [property: Id(5)] DateTimeOffset ConnectedAt,
    [property: Id(6)] string? RemoteAddress);

/// <summary>The answer to a session opening.</summary>
[GenerateSerializer, Immutable, Alias("OrleansTunnel.SessionAdmission")]
public sealed record SessionAdmission(
    [property: Id(0)] bool Accepted,
    [property: Id(1)] string? RefusedBecause,
    [property: Id(2)] AgentSession[] Superseded);

/// <summary>An agent as tools see it.</summary>
[GenerateSerializer, Immutable, Alias("OrleansTunnel.AgentSnapshot")]
public sealed record AgentSnapshot(
    [property: Id(0)] string AgentId,
    [property: Id(1)] AgentSession[] Sessions,
    [property: Id(2)] string[] Services,
    [property: Id(3)] DateTimeOffset? LastHeartbeat);
