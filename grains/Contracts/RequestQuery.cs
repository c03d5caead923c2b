namespace OrleansTunnel.Grains;

/// <summary>
/// A filter over the requests the gateways' journals hold (newest first). Paging: pass the last
/// summary's <see cref="RequestSummary.OpenedAt"/> and id as <see cref="Before"/>/<see cref="BeforeId"/>.
/// </summary>
[GenerateSerializer, Immutable, Alias("OrleansTunnel.RequestQuery")]
public sealed record RequestQuery(
    [property: Id(0)] string? Service = null,
    [property: Id(1)] string? Host = null,
    [property: Id(2)] int StatusClass = 0,
    [property: Id(3)] string? PathContains = null,
    [property: Id(4)] double MinDurationMs = 0,
    [property: Id(5)] DateTimeOffset? Before = null,
    [property: Id(6)] string? BeforeId = null,
    [property: Id(7)] int Limit = 100,
    [property: Id(8)] bool LiveOnly = false)
{
    /// <summary>Most summaries one query returns.</summary>
    public const int MaxLimit = 1000;
}

/// <summary>One request in a list.</summary>
[GenerateSerializer, Immutable, Alias("OrleansTunnel.RequestSummary")]
public sealed record RequestSummary(
    [property: Id(0)] string RequestId,
    [property: Id(1)] string GatewayId,
    [property: Id(2)] string AgentId,
    [property: Id(3)] string Service,
    [property: Id(4)] string Method,
    [property: Id(5)] string Host,
    [property: Id(6)] string Path,
    [property: Id(7)] string Protocol,
    [property: Id(8)] RequestState State,
    [property: Id(9)] int Status,
    [property: Id(10)] DateTimeOffset OpenedAt,
    [property: Id(11)] double DurationMs,
    [property: Id(12)] long BytesIn,
    [property: Id(13)] long BytesOut,
    [property: Id(14)] string? Error)
{
    /// <summary>Newest first; ties broken by id (descending), so paging by (OpenedAt, RequestId) is exact.</summary>
    public static int NewestFirst(RequestSummary a, RequestSummary b)
    {
        int byTime = b.OpenedAt.CompareTo(a.OpenedAt);
        return byTime != 0 ? byTime : string.CompareOrdinal(b.RequestId, a.RequestId);
    }

    /// <summary>Whether this summary comes after the cursor in newest-first order.</summary>
    public bool IsAfter(DateTimeOffset? before, string? beforeId) =>
        before is not { } t || OpenedAt < t || (OpenedAt == t && beforeId is not null && string.CompareOrdinal(RequestId, beforeId) < 0);
}
