using System.Diagnostics;
using Microsoft.AspNetCore.Http;
using OrleansTunnel.Gateway.Cluster;
using OrleansTunnel.Gateway.Ingress;
using OrleansTunnel.Grains;
using OrleansTunnel.Mux;

namespace OrleansTunnel.Gateway.Requests;

/// <summary>
/// One request as its gateway knows it, from open to end and for a while after (the journal keeps
/// it). Written by the request's own task only; look-ups read it from other threads and may see a
/// value a moment old, never a torn one (every field is a reference or a 64-bit value).
/// </summary>
public sealed class RequestEntry
{
    internal RequestEntry(string id, long sequence, HttpContext? context, MuxStream stream, string service, string host, string path, DispatchTarget target, TimeSpan timeout, VisitorKind kind, string? method = null)
    {
        Id = id;
        Sequence = sequence;
        Context = context;
        Stream = stream;
        Service = service;
        Method = method ?? context?.Request.Method ?? "";
        Host = host;
        Path = path;
        AgentId = target.AgentId;
        SessionId = target.SessionId;
        // Only what identifies the path is kept: a finished entry must not hold a closed connection alive.
        HolderGatewayId = target.IsLocal ? null : target.HolderGatewayId;
        HolderIncarnation = target.IsLocal ? 0 : target.HolderIncarnation;
        HeadTimeout = timeout;
        Kind = kind;
        OpenedAt = DateTimeOffset.UtcNow;
        OpenedTicks = Stopwatch.GetTimestamp();
    }

    public string Id { get; }
    public long Sequence { get; }
    public string Service { get; }
    public string Method { get; }
    /// <summary>The normalised host and path routing matched.</summary>
    public string Host { get; }
    public string Path { get; }
    public string AgentId { get; }
    public string SessionId { get; }

    /// <summary>The gateway holding the agent's tunnel when the request crossed to another gateway; null when local.</summary>
    public string? HolderGatewayId { get; }
    public long HolderIncarnation { get; }
    public VisitorKind Kind { get; }
    public TimeSpan HeadTimeout { get; }
    public DateTimeOffset OpenedAt { get; }
    public long OpenedTicks { get; }

    /// <summary>The visitor's request; null once the request ended (Kestrel reuses contexts).</summary>
    public HttpContext? Context { get; private set; }

    /// <summary>The tunnel stream; null once the request ended.</summary>
    public MuxStream? Stream { get; private set; }

    // ---- progress, written by the request's task ----
    /// <summary>Stopwatch ticks between the route match and the stream's opening (agent choice, permit wait).</summary>
    public long QueuedTicks { get; set; }
    public long HeadSentTicks { get; set; }
    public long ResponseHeadTicks { get; set; }
    public long LastByteTicks { get; private set; }
    public int Status { get; set; }
    public long BytesIn { get; set; }
    public long BytesOut { get; set; }
    public bool VisitorGone { get; set; }
    public bool TimedOut { get; set; }
    public (int Status, string Reason) RequestRejected { get; set; }
    public string? Failure { get; set; }

    /// <summary>The request's header fields as forwarded (name, value, name, value, ...), redacted; null when not captured.</summary>
    public string[]? RequestHeaders { get; private set; }

    /// <summary>The response's header fields as the agent sent them, redacted; null when not captured or no head came.</summary>
    public string[]? ResponseHeaders { get; private set; }

    internal void CaptureRequestHeaders(Google.Protobuf.Collections.RepeatedField<OrleansTunnel.Protocol.V1.Header> headers, InspectorOptions inspector) =>
        RequestHeaders = Capture(headers, inspector);

    internal void CaptureResponseHeaders(Google.Protobuf.Collections.RepeatedField<OrleansTunnel.Protocol.V1.Header> headers, InspectorOptions inspector) =>
        ResponseHeaders = Capture(headers, inspector);

    private static string[]? Capture(Google.Protobuf.Collections.RepeatedField<OrleansTunnel.Protocol.V1.Header> headers, InspectorOptions inspector)
    {
        if (!inspector.CaptureHeaders)
        {
            return null;
        }
        // Names and values are the head's own strings: only the array is new. Redaction happens here,
        // before anything is kept.
        var fields = new string[headers.Count * 2];
        for (int i = 0; i < headers.Count; i++)
        {
            var h = headers[i];
            fields[2 * i] = h.Name;
            fields[2 * i + 1] = inspector.IsRedacted(h.Name) ? InspectorOptions.Redacted : h.Value;
        }
        return fields;
    }

    /// <summary>The request body's capture while it streams (routes with Capture:Bodies); null when off.</summary>
    public BodyCapture? RequestCapture { get; private set; }

    /// <summary>The response body's capture while it streams.</summary>
    public BodyCapture? ResponseCapture { get; private set; }

    /// <summary>The frozen captures, readable once the request ended.</summary>
    public CapturedBody? RequestBody { get; private set; }
    public CapturedBody? ResponseBody { get; private set; }

    /// <summary>Budget bytes this entry holds (released when the journal lets it go).</summary>
    internal long CaptureReserved { get; private set; }

    internal void StartCapture(int bytes, string? requestContentType)
    {
        RequestCapture = new BodyCapture(bytes, requestContentType);
        ResponseCapture = new BodyCapture(bytes, null);
        CaptureReserved = 2L * bytes;
    }

    /// <summary>The request target (path and query) as forwarded.</summary>
    public string? Target { get; set; }

    /// <summary>The request this one replays, when the gateway's own replay sent it.</summary>
    public string? ReplayOf { get; set; }

    /// <summary>How this visitor request may be retried (null: not at all); see <see cref="OrleansTunnel.Gateway.Health.RetryPlan"/>.</summary>
    public OrleansTunnel.Gateway.Health.RetryPlan? Retry { get; set; }

    /// <summary>Set when this attempt failed on its path and the request was sent again (the note names where).</summary>
    public string? RetriedAs { get; set; }

    /// <summary>Set on the second attempt of a retried request: the first attempt's id and why it failed.</summary>
    public string? RetryOf { get; set; }

    /// <summary>Why the path failed (agent lost, backend refused or timed out): counts against the session's circuit.</summary>
    public string? PathFailure { get; set; }

    /// <summary>Set once an operator cancelled the request (DELETE /api/requests/{id}); the reason.</summary>
    public string? CancelledBy { get; private set; }

    /// <summary>How it ended; <see cref="RequestState.None"/> while it runs.</summary>
    public RequestState Final { get; private set; }
    public DateTimeOffset EndedAt { get; private set; }

    /// <summary>0: no grain; 1: its grain was opened; 2: ended (no later promotion).</summary>
    internal int GrainState;
    private bool _hadGrain;

    /// <summary>Marks the end for grain purposes; true when the request had a grain (its ending must be sent).</summary>
    internal bool EndGrain() => _hadGrain = Interlocked.Exchange(ref GrainState, 2) == 1;

    /// <summary>True once its response streams (no known length above the threshold, an upgrade).</summary>
    public bool Streaming { get; set; }

    public bool IsLive => Final == RequestState.None;

    public TimeSpan Age => Stopwatch.GetElapsedTime(OpenedTicks);

    /// <summary>The visitor asked for a cancel: tells the stream (the agent cancels the backend call).</summary>
    internal bool Cancel(string reason)
    {
        var stream = Stream;
        if (!IsLive || stream is null || CancelledBy is not null)
        {
            return false;
        }
        CancelledBy = reason;
        stream.Reset(OrleansTunnel.Protocol.V1.ResetCode.Cancelled, "cancelled by an operator: " + reason);
        return true;
    }

    internal void End(InspectorOptions inspector)
    {
        RequestBody = RequestCapture?.Freeze(inspector);
        ResponseBody = ResponseCapture?.Freeze(inspector);
        RequestCapture = null;
        ResponseCapture = null;
        LastByteTicks = Stopwatch.GetTimestamp();
        EndedAt = DateTimeOffset.UtcNow;
        Final = CancelledBy is not null ? RequestState.Cancelled
            : VisitorGone ? RequestState.Cancelled
            : TimedOut ? RequestState.TimedOut
            : Failure is not null ? RequestState.Failed
            : RequestState.Completed;
        Context = null;
        Stream = null;
    }

    public RequestOutcome Outcome(string gatewayId, long incarnation) =>
        new(Final, Status, CancelledBy is not null ? "cancelled by an operator: " + CancelledBy : Failure, BytesIn, BytesOut,
            IsLive ? DateTimeOffset.UtcNow : EndedAt, gatewayId, incarnation);

    public RequestOpen Open(string gatewayId, long incarnation) =>
        new(gatewayId, AgentId, SessionId, Service, Method, Host, Path,
            VisitorProtocol.Name(Kind), OpenedAt, OpenedAt + HeadTimeout, incarnation, HolderGatewayId, HolderIncarnation);

    public RequestSummary Summary(string gatewayId)
    {
        var final = Final;
        var state = final != RequestState.None ? final : ResponseHeadTicks != 0 ? RequestState.Streaming : RequestState.Open;
        var duration = final != RequestState.None ? EndedAt - OpenedAt : Age;
        return new RequestSummary(Id, gatewayId, AgentId, Service, Method, Host, Target ?? Path, VisitorProtocol.Name(Kind), state, Status, OpenedAt,
            duration.TotalMilliseconds, BytesIn, BytesOut, CancelledBy is not null ? "cancelled by an operator: " + CancelledBy : Failure);
    }

    public RequestSnapshot Snapshot(string gatewayId, long incarnation)
    {
        var final = Final;
        var state = final != RequestState.None ? final : ResponseHeadTicks != 0 ? RequestState.Streaming : RequestState.Open;
        var progress = new RequestProgress(At(HeadSentTicks), At(ResponseHeadTicks), final != RequestState.None ? EndedAt : null, Status, BytesIn, BytesOut,
            System.Diagnostics.Stopwatch.GetElapsedTime(0, QueuedTicks).TotalMilliseconds);
        return new RequestSnapshot(Id, state, Open(gatewayId, incarnation), final != RequestState.None ? Outcome(gatewayId, incarnation) : null,
            At(ResponseHeadTicks), 0, progress, "gateway", CancelledBy is not null && final == RequestState.None ? "being cancelled: " + CancelledBy : RetryNote,
            Volatile.Read(ref GrainState) == 1 || _hadGrain,
            RequestHeaders, ResponseHeaders, Target, ReplayOf, RequestBody, ResponseBody);
    }

    /// <summary>What the journal shows of a retry on either attempt.</summary>
    public string? RetryNote => RetriedAs is not null ? "retried: " + RetriedAs : RetryOf is not null ? "retry of " + RetryOf : null;

    private DateTimeOffset? At(long ticks) =>
        ticks == 0 ? null : OpenedAt + Stopwatch.GetElapsedTime(OpenedTicks, ticks);
}
