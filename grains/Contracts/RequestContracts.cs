namespace OrleansTunnel.Grains;

/// <summary>Life of one tunnelled request, as its <see cref="IRequestGrain"/> records it.</summary>
[GenerateSerializer]
public enum RequestState
{
    /// <summary>Not known: never opened, or no longer retained by the gateway that owned it.</summary>
    None = 0,
    /// <summary>Sent towards an agent; no response head yet.</summary>
    Open = 1,
    /// <summary>The response head arrived and the body is still moving.</summary>
    Streaming = 2,
    Completed = 3,
    Failed = 4,
    Cancelled = 5,
    TimedOut = 6,
    /// <summary>The gateway that owned it is gone (killed, or fenced); what is shown is what the cluster knew.</summary>
    Lost = 7,
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

/// <summary>
/// Where a request is, as the gateway that owns it sees it right now: timings (null until reached)
/// and bytes so far. Only the owning gateway knows these; the grain asks it.
/// </summary>
[GenerateSerializer, Immutable, Alias("OrleansTunnel.RequestProgress")]
public sealed record RequestProgress(
    [property: Id(0)] DateTimeOffset? HeadSentAt,
    [property: Id(1)] DateTimeOffset? ResponseHeadAt,
    [property: Id(2)] DateTimeOffset? LastByteAt,
    [property: Id(3)] int Status,
    [property: Id(4)] long BytesIn,
    [property: Id(5)] long BytesOut,
    [property: Id(6)] double QueuedMs = 0);

/// <summary>The request's record as tools see it.</summary>
/// <param name="Source">Who answered: "gateway" (the owning gateway's journal, fresh), "grain" (the grain's record only) or "none".</param>
/// <param name="Note">Why the answer is partial or missing (owner gone, retention passed), for people.</param>
/// <param name="RequestHeaders">The request's header fields as forwarded (name, value, ...), redacted; null when not captured.</param>
/// <param name="ResponseHeaders">The response's header fields, redacted; null when not captured.</param>
/// <param name="Target">The request target as forwarded (path and query), for replays.</param>
/// <param name="ReplayOf">The request this one replays (POST /api/requests/{id}/replay), if any.</param>
/// <param name="RequestBody">The captured request body (routes with Capture:Bodies), once the request ended.</param>
/// <param name="ResponseBody">The captured response body, once the request ended.</param>
/// <param name="HasGrain">The request's grain holds a record of it (the owner promoted it: long-lived, streaming, or RequestGrains=always; or it ended and was looked up).</param>
[GenerateSerializer, Immutable, Alias("OrleansTunnel.RequestSnapshot")]
public sealed record RequestSnapshot(
    [property: Id(0)] string RequestId,
    [property: Id(1)] RequestState State,
    [property: Id(2)] RequestOpen? Open,
    [property: Id(3)] RequestOutcome? Outcome,
    [property: Id(4)] DateTimeOffset? ResponseStartedAt,
    [property: Id(5)] int FencedCompletions = 0,
    [property: Id(6)] RequestProgress? Progress = null,
    [property: Id(7)] string Source = "grain",
    [property: Id(8)] string? Note = null,
    [property: Id(9)] bool HasGrain = false,
    [property: Id(10)] string[]? RequestHeaders = null,
    [property: Id(11)] string[]? ResponseHeaders = null,
    [property: Id(12)] string? Target = null,
    [property: Id(13)] string? ReplayOf = null,
    [property: Id(14)] CapturedBody? RequestBody = null,
    [property: Id(15)] CapturedBody? ResponseBody = null);

/// <summary>The first bytes of a body, kept for the request inspector (per route, off by default).</summary>
/// <param name="Bytes">What was kept (redacted when the route's JSON fields are).</param>
/// <param name="Total">The body's whole length as it went through.</param>
/// <param name="Note">Why less than the whole body is shown, if it is not.</param>
[GenerateSerializer, Immutable, Alias("OrleansTunnel.CapturedBody")]
public sealed record CapturedBody(
    [property: Id(0)] byte[] Bytes,
    [property: Id(1)] long Total,
    [property: Id(2)] string? ContentType,
    [property: Id(3)] string? Note);

/// <summary>What became of a cancel.</summary>
[GenerateSerializer]
public enum CancelStatus
{
    /// <summary>The request was live and is being cancelled (visitor told, backend call cancelled).</summary>
    Cancelled = 0,
    /// <summary>It had already ended.</summary>
    AlreadyEnded = 1,
    /// <summary>No such request is known (never existed, or no longer retained).</summary>
    Unknown = 2,
    /// <summary>The gateway that owns it cannot be reached (gone or not answering).</summary>
    OwnerUnreachable = 3,
}

/// <summary>The answer to a cancel, with a message for people.</summary>
[GenerateSerializer, Immutable, Alias("OrleansTunnel.CancelResult")]
public sealed record CancelResult(
    [property: Id(0)] CancelStatus Status,
    [property: Id(1)] string Message,
    [property: Id(2)] RequestState State = RequestState.None);
