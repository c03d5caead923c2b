using System.Collections.Concurrent;
using System.Numerics;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Options;
using OrleansTunnel.Gateway.Cluster;
using OrleansTunnel.Gateway.Ingress;
using OrleansTunnel.Grains;
using OrleansTunnel.Mux;

namespace OrleansTunnel.Gateway.Requests;

/// <summary>
/// This gateway's requests in memory: the live ones, and a ring of the most recently finished ones
/// (Inspector:Capacity, at most Gateway:RequestRetention old). It answers look-ups and
/// cancels by request id for the whole cluster (through <see cref="RequestJournalObserver"/>), so a
/// short request never needs a grain activation to stay addressable.
/// </summary>
public sealed class RequestJournal
{
    private readonly ConcurrentDictionary<long, RequestEntry> _live = new();
    private readonly RequestEntry?[] _finished;
    private readonly IOptionsMonitor<GatewayOptions> _options;
    private long _sequence;
    private long _inFlight;

    private readonly IOptionsMonitor<InspectorOptions> _inspector;
    private long _captured;

    public RequestJournal(GatewayIdentity identity, IOptionsMonitor<GatewayOptions> options, IOptionsMonitor<InspectorOptions> inspector)
    {
        _options = options;
        _inspector = inspector;
        GatewayId = identity.GatewayId;
        // The process's first incarnation names its requests for its whole life (a renewed directory
        // incarnation does not lose the journal); another process of this id has another one.
        Incarnation = identity.Incarnation;
        _finished = new RequestEntry?[BitOperations.RoundUpToPowerOf2((uint)Math.Clamp(inspector.CurrentValue.Capacity, 16, 1 << 22))];
    }

    public string GatewayId { get; }

    /// <summary>The incarnation in this process's request ids.</summary>
    public long Incarnation { get; }

    /// <summary>Requests this gateway is forwarding now.</summary>
    public long InFlight => Interlocked.Read(ref _inFlight);

    /// <summary>The live requests (a moment's view).</summary>
    public IEnumerable<RequestEntry> Live => _live.Values;

    internal RequestEntry Open(HttpContext? context, MuxStream stream, string service, string host, string path, DispatchTarget target, TimeSpan timeout, VisitorKind kind, string? method = null)
    {
        long sequence = Interlocked.Increment(ref _sequence);
        var entry = new RequestEntry(RequestIds.Format(GatewayId, Incarnation, sequence), sequence, context, stream, service, host, path, target, timeout, kind, method);
        _live[sequence] = entry;
        Interlocked.Increment(ref _inFlight);
        return entry;
    }

    /// <summary>Starts capturing a request's bodies when the journal's Inspector:MaxBytes budget has room.</summary>
    internal bool TryCapture(RequestEntry entry, int bytes, string? contentType)
    {
        long want = 2L * bytes;
        if (Interlocked.Add(ref _captured, want) > _inspector.CurrentValue.MaxBytes)
        {
            Interlocked.Add(ref _captured, -want);
            return false;
        }
        entry.StartCapture(bytes, contentType);
        return true;
    }

    /// <summary>Bytes of captured bodies held now.</summary>
    public long CapturedBytes => Interlocked.Read(ref _captured);

    internal void Close(RequestEntry entry)
    {
        entry.End(_inspector.CurrentValue);
        var evicted = Interlocked.Exchange(ref _finished[entry.Sequence & (_finished.Length - 1)], entry);
        if (evicted?.CaptureReserved > 0)
        {
            Interlocked.Add(ref _captured, -evicted.CaptureReserved);
        }
        _live.TryRemove(entry.Sequence, out _);
        Interlocked.Decrement(ref _inFlight);
    }

    /// <summary>The request with this id if this gateway made it and still retains it.</summary>
    public RequestEntry? Find(string requestId)
    {
        if (!RequestIds.TryParse(requestId, out string gateway, out long incarnation, out long sequence, out _)
            || incarnation != Incarnation || !string.Equals(gateway, GatewayId, StringComparison.Ordinal))
        {
            return null;
        }
        if (_live.TryGetValue(sequence, out var live))
        {
            return live;
        }
        var finished = Volatile.Read(ref _finished[sequence & (_finished.Length - 1)]);
        return finished is not null && finished.Sequence == sequence && !finished.IsLive
            && DateTimeOffset.UtcNow - finished.EndedAt <= _options.CurrentValue.RequestRetention ? finished : null;
    }

    public RequestSnapshot? Lookup(string requestId) => Find(requestId)?.Snapshot(GatewayId, Incarnation);

    /// <summary>The live and retained requests that match the query, newest first (a scan of at most the live ones and the ring).</summary>
    public RequestSummary[] List(RequestQuery query)
    {
        var now = DateTimeOffset.UtcNow;
        var retention = _options.CurrentValue.RequestRetention;
        // MaxLimit + 1: a lister asks one more than a page to learn whether there is a next one.
        int limit = Math.Clamp(query.Limit, 1, RequestQuery.MaxLimit + 1);
        var matches = new List<RequestSummary>();
        foreach (var entry in _live.Values)
        {
            Consider(entry);
        }
        if (!query.LiveOnly)
        {
            foreach (var slot in _finished)
            {
                if (slot is { IsLive: false } entry && now - entry.EndedAt <= retention)
                {
                    Consider(entry);
                }
            }
        }
        matches.Sort(RequestSummary.NewestFirst);
        return matches.Count > limit ? [.. matches.GetRange(0, limit)] : [.. matches];

        void Consider(RequestEntry entry)
        {
            if ((query.Service is { Length: > 0 } service && !string.Equals(entry.Service, service, StringComparison.Ordinal))
                || (query.Host is { Length: > 0 } host && !string.Equals(entry.Host, host, StringComparison.OrdinalIgnoreCase))
                || (query.PathContains is { Length: > 0 } text && !(entry.Target ?? entry.Path).Contains(text, StringComparison.OrdinalIgnoreCase))
                || (query.StatusClass > 0 && entry.Status / 100 != query.StatusClass))
            {
                return;
            }
            var summary = entry.Summary(GatewayId);
            if (summary.DurationMs >= query.MinDurationMs && summary.IsAfter(query.Before, query.BeforeId))
            {
                matches.Add(summary);
            }
        }
    }

    public CancelResult Cancel(string requestId, string reason)
    {
        var entry = Find(requestId);
        if (entry is null)
        {
            return new CancelResult(CancelStatus.Unknown, $"gateway '{GatewayId}' does not know request '{requestId}': never made, or finished longer ago than it retains requests");
        }
        if (entry.Cancel(reason))
        {
            return new CancelResult(CancelStatus.Cancelled, $"request '{requestId}' is being cancelled on gateway '{GatewayId}': the visitor is told and the backend call is cancelled", RequestState.Cancelled);
        }
        var state = entry.Final;
        return state == RequestState.None
            ? new CancelResult(CancelStatus.AlreadyEnded, $"request '{requestId}' is already being cancelled: {entry.CancelledBy}", RequestState.Cancelled)
            : new CancelResult(CancelStatus.AlreadyEnded, $"request '{requestId}' already ended ({state}, status {entry.Status})", state);
    }
}
