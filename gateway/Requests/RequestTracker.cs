using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OrleansTunnel.Gateway.Cluster;
using OrleansTunnel.Gateway.Ingress;
using OrleansTunnel.Grains;
using OrleansTunnel.Mux;

namespace OrleansTunnel.Gateway.Requests;

/// <summary>
/// Follows each request from open to end: in this gateway's <see cref="RequestJournal"/> always, and
/// in its <see cref="IRequestGrain"/> when Gateway:RequestGrains asks for one: for every request
/// ("always"), or only for requests that outlive Gateway:RequestGrainAfter ("on-demand"; a sweep
/// promotes them). Grain calls are one-way and never on the request's latency path.
/// </summary>
public sealed partial class RequestTracker(
    RequestJournal journal,
    IGrainFactory grains,
    GatewayIdentity identity,
    IOptionsMonitor<GatewayOptions> options,
    ILogger<RequestTracker> logger) : BackgroundService
{
    /// <summary>Responses at most this large (with a known length) are not marked streaming.</summary>
    public const long StreamingThreshold = 64 * 1024;

    private long _grainFailures;
    private long _promoted;
    // A reference (written and read whole): a struct of several fields could be read torn by another thread.
    private RequestGrainKind? _requestGrainType;

    /// <summary>Requests this gateway is forwarding now.</summary>
    public long InFlight => journal.InFlight;

    /// <summary>Grain calls that failed (the request itself was unaffected).</summary>
    public long GrainFailures => Interlocked.Read(ref _grainFailures);

    /// <summary>Requests that got a grain since start.</summary>
    public long Promoted => Interlocked.Read(ref _promoted);

    /// <remarks>TCP connections and UDP flows (gateway/L4) have no HTTP context; they give their method ("TCP", "UDP").</remarks>
    public RequestEntry Open(HttpContext? context, MuxStream stream, string service, string host, string path, DispatchTarget target, TimeSpan timeout, VisitorKind kind, string? method = null)
    {
        var entry = journal.Open(context, stream, service, host, path, target, timeout, kind, method);
        if (options.CurrentValue.RequestGrainMode == RequestGrainMode.Always)
        {
            Promote(entry);
        }
        return entry;
    }

    /// <summary>Whether this request's grain is ended by the gateway holding the agent too (cross-gateway, "always" only).</summary>
    public static bool HasGrain(RequestEntry entry) => Volatile.Read(ref entry.GrainState) == 1;

    /// <summary>Starts capturing the request's bodies (the route asks for it) if the journal's budget has room.</summary>
    public void CaptureBodies(RequestEntry entry, int bytes, string? contentType) => journal.TryCapture(entry, bytes, contentType);

    /// <summary>The incarnation a peer gateway must quote when it ends this request's grain; 0: the request has no grain.</summary>
    public long OwnerIncarnationForPeer(RequestEntry entry) => HasGrain(entry) ? identity.Incarnation : 0;

    public void MarkStreaming(RequestEntry entry, long? contentLength)
    {
        if (contentLength is null || contentLength > StreamingThreshold)
        {
            entry.Streaming = true;
            if (HasGrain(entry))
            {
                _ = Guard(RequestGrain(entry.Id).MarkStreaming(DateTimeOffset.UtcNow), entry.Id, "mark streaming");
            }
        }
    }

    public void Complete(RequestEntry entry)
    {
        bool hadGrain = entry.EndGrain();
        journal.Close(entry);
        if (hadGrain)
        {
            // One-way calls are not ordered: the ending carries the open record in case it overtakes the open.
            var outcome = entry.Outcome(identity.GatewayId, identity.Incarnation);
            _ = Guard(RequestGrain(entry.Id).End(entry.Open(identity.GatewayId, identity.Incarnation), outcome), entry.Id, "complete");
        }
    }

    /// <summary>
    /// The request's grain reference. IGrainFactory.GetGrain&lt;T&gt;(key) resolves the interface's grain
    /// type on every call (reflection over its attributes: 2 % of the "always" mode's CPU in a profile);
    /// the type is resolved once here and each reference is made from the id.
    /// </summary>
    private IRequestGrain RequestGrain(string id)
    {
        if (_requestGrainType is not { } type)
        {
            var reference = (GrainReference)(object)grains.GetGrain<IRequestGrain>(id);
            _requestGrainType = type = new RequestGrainKind(reference.GrainId.Type, reference.InterfaceType);
            return (IRequestGrain)reference;
        }
        return (IRequestGrain)grains.GetGrain(GrainId.Create(type.Type, id), type.Interface);
    }

    private void Promote(RequestEntry entry)
    {
        if (Interlocked.CompareExchange(ref entry.GrainState, 1, 0) != 0)
        {
            return;
        }
        Interlocked.Increment(ref _promoted);
        var grain = RequestGrain(entry.Id);
        _ = Guard(grain.Open(entry.Open(identity.GatewayId, identity.Incarnation)), entry.Id, "open");
        if (entry.Streaming)
        {
            _ = Guard(grain.MarkStreaming(DateTimeOffset.UtcNow), entry.Id, "mark streaming");
        }
    }

    /// <summary>On-demand mode: gives a grain to every request that has run for Gateway:RequestGrainAfter.</summary>
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            var o = options.CurrentValue;
            var after = o.RequestGrainAfter;
            try
            {
                // Half the threshold between sweeps: a request is promoted within 1.5 thresholds of its start.
                await Task.Delay(after / 2, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            if (o.RequestGrainMode != RequestGrainMode.OnDemand)
            {
                continue;
            }
            foreach (var entry in journal.Live)
            {
                if (entry.GrainState == 0 && entry.IsLive && entry.Age >= after)
                {
                    Promote(entry);
                }
            }
        }
    }

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

/// <summary>The request grain's type and interface, resolved once.</summary>
internal sealed record RequestGrainKind(GrainType Type, GrainInterfaceType Interface);
