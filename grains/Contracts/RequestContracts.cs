namespace OrleansTunnel.Grains;

/// <summary>Life of one tunnelled request, as its <see cref="IRequestGrain"/> records it.</summary>
[GenerateSerializer]
public enum RequestState
{
    /// <summary>Never opened (a grain activated by a look-up only).</summary>
    None = 0,
    /// <summary>Sent towards an agent; no response head yet.</summary>
    Open = 1,
    /// <summary>The response head arrived and the body is still moving.</summary>
    Streaming = 2,
    Completed = 3,
    Failed = 4,
    Cancelled = 5,
    TimedOut = 6,
}

/// <summary>What the gateway knows when it opens a request.</summary>
[GenerateSerializer, Immutable, Alias("OrleansTunnel.RequestOpen")]
public sealed record RequestOpen(
    [property: Id(0)] string GatewayId,
    [property: Id(1)] string AgentId,
    [property: Id(2)] string SessionId,
    [property: Id(3)] string Service,
    [property: Id(4)] string Method,
    [property: Id(5)] string Authority,
    [property: Id(6)] string Path,
    [property: Id(7)] string Protocol,
    [property: Id(8)] DateTimeOffset OpenedAt,
    [property: Id(9)] DateTimeOffset Deadline,
    [property: Id(10)] long GatewayIncarnation = 0,
    [property: Id(11)] string? ViaGatewayId = null,
    [property: Id(12)] long ViaIncarnation = 0);

/// <summary>How a request ended.</summary>
[GenerateSerializer, Immutable, Alias("OrleansTunnel.RequestOutcome")]
public sealed record RequestOutcome(
    [property: Id(0)] RequestState State,
    [property: Id(1)] int Status,
    [property: Id(2)] string? Error,
    [property: Id(3)] long BytesIn,
    [property: Id(4)] long BytesOut,
    [property: Id(5)] DateTimeOffset EndedAt,
    [property: Id(6)] string? ReportedBy = null,
    [property: Id(7)] long ReporterIncarnation = 0);

/// <summary>The request's record as tools see it.</summary>
[GenerateSerializer, Immutable, Alias("OrleansTunnel.RequestSnapshot")]
public sealed record RequestSnapshot(
    [property: Id(0)] string RequestId,
    [property: Id(1)] RequestState State,
    [property: Id(2)] RequestOpen? Open,
    [property: Id(3)] RequestOutcome? Outcome,
    [property: Id(4)] DateTimeOffset? ResponseStartedAt,
    [property: Id(5)] int FencedCompletions = 0);
