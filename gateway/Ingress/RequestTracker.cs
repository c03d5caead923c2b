using Microsoft.Extensions.Logging;
using OrleansTunnel.Gateway.Tunnel;
using OrleansTunnel.Grains;

namespace OrleansTunnel.Gateway.Ingress;

/// <summary>
/// Keeps each request's <see cref="IRequestGrain"/> up to date without putting it on the latency
/// path: the grain is opened while the request travels, marked streaming only for large or open-ended
/// responses, and completed after the visitor has the answer.
/// </summary>
public sealed partial class RequestTracker(IGrainFactory grains, OrleansTunnel.Gateway.Cluster.GatewayIdentity identity, Microsoft.Extensions.Options.IOptionsMonitor<GatewayOptions> options, ILogger<RequestTracker> logger)
{
    /// <summary>Responses at most this large (with a known length) are not marked streaming.</summary>
    public const long StreamingThreshold = 64 * 1024;

    private long _inFlight;
    private long _grainFailures;

    /// <param name="Recorded">Whether the request's grain is told about it (Gateway:RecordRequests).</param>
    public sealed record Record(string RequestId, IRequestGrain Grain, RequestOpen Info, bool Recorded);

    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, Record> _live = new(StringComparer.Ordinal);

    /// <summary>The requests this gateway is forwarding now.</summary>
    public IEnumerable<RequestOpen> Live => _live.Values.Select(r => r.Info);

    /// <summary>Requests this gateway is forwarding now.</summary>
    public long InFlight => Interlocked.Read(ref _inFlight);

    /// <summary>Grain calls that failed (the request itself was unaffected).</summary>
    public long GrainFailures => Interlocked.Read(ref _grainFailures);

    public Record Open(string requestId, OrleansTunnel.Gateway.Cluster.DispatchTarget target, string service, string method, string authority, string path, TimeSpan timeout, VisitorKind kind)
    {
        Interlocked.Increment(ref _inFlight);
        var now = DateTimeOffset.UtcNow;
        var info = new RequestOpen(
            identity.GatewayId, target.AgentId, target.SessionId, service, method, authority, path,
            VisitorProtocol.Name(kind), now, now + timeout, identity.Incarnation,
            target.IsLocal ? null : target.HolderGatewayId, target.IsLocal ? 0 : target.HolderIncarnation);
        var record = new Record(requestId, grains.GetGrain<IRequestGrain>(requestId), info, options.CurrentValue.RecordRequests);
        _live[requestId] = record;
        if (record.Recorded)
        {
            // One-way: the request never waits for its record.
            _ = Guard(record.Grain.Open(record.Info), requestId, "open");
        }
        return record;
    }

    public void MarkStreaming(Record record, long? contentLength)
    {
        if (record.Recorded && (contentLength is null || contentLength > StreamingThreshold))
        {
            _ = MarkStreamingAsync(record);
        }
    }

    public void Complete(Record record, RequestOutcome outcome)
    {
        Interlocked.Decrement(ref _inFlight);
        _live.TryRemove(record.RequestId, out _);
        if (record.Recorded)
        {
            _ = CompleteAsync(record, outcome);
        }
    }

    private Task MarkStreamingAsync(Record record) =>
        Guard(record.Grain.MarkStreaming(DateTimeOffset.UtcNow), record.RequestId, "mark streaming");

    // One-way calls are not ordered: the ending carries the open record in case it overtakes the open.
    private Task CompleteAsync(Record record, RequestOutcome outcome) =>
        Guard(record.Grain.End(record.Info, outcome with { ReportedBy = record.Info.GatewayId, ReporterIncarnation = record.Info.GatewayIncarnation }), record.RequestId, "complete");

    private async Task Guard(Task call, string requestId, string what)
    {
        try
        {
            await call;
        }
        catch (Exception ex)
        {
            Interlocked.Increment(ref _grainFailures);
            LogGrainCallFailed(logger, what, requestId, ex.Message);
        }
    }

    [LoggerMessage(EventId = 510, EventName = "RequestGrainCallFailed", Level = LogLevel.Warning,
        Message = "Could not {What} the record of request {RequestId} in the cluster: {Error}. The request itself went on; check the silos.")]
    private static partial void LogGrainCallFailed(ILogger logger, string what, string requestId, string error);
}
