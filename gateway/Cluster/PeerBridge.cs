using Microsoft.Extensions.Logging;
using OrleansTunnel.Gateway.Tunnel;
using OrleansTunnel.Grains;
using OrleansTunnel.Mux;
using OrleansTunnel.Protocol.V1;

namespace OrleansTunnel.Gateway.Cluster;

/// <summary>
/// The receiving side of cross-gateway dispatch: each stream another gateway opens on its peer link is
/// bridged to a stream on a local agent connection. Frames are relayed both ways under credit (a data
/// frame is passed on, then its credit is returned), so buffering per request stays within the two
/// windows; a reset on either side resets the other. When the agent's answer ended, this gateway
/// completes the request's grain (the gateway that opened it may refine the outcome).
/// </summary>
public sealed partial class PeerBridge(ConnectionRegistry registry, GatewayIdentity identity, IGrainFactory grains,
    Microsoft.Extensions.Options.IOptionsMonitor<GatewayOptions> options, ILogger<PeerBridge> logger)
{
    private long _bridged;
    private long _refused;
    private long _active;

    /// <summary>Streams bridged for other gateways since start.</summary>
    public long Bridged => Interlocked.Read(ref _bridged);

    /// <summary>Streams refused because no local agent connection served the service any more.</summary>
    public long Refused => Interlocked.Read(ref _refused);

    /// <summary>Bridged streams in flight now.</summary>
    public long Active => Interlocked.Read(ref _active);

    /// <summary>
    /// Called on the peer link's read loop: the bridge runs inline up to its first wait (choosing the
    /// agent connection, opening the stream and queueing the head never block), with no thread-pool hop.
    /// </summary>
    public void Accept(MuxStream inbound, RequestHead head, string peerGatewayId) =>
        _ = BridgeAsync(inbound, head, peerGatewayId);

    private async Task BridgeAsync(MuxStream inbound, RequestHead head, string peerGatewayId)
    {
        if (Interlocked.Read(ref _active) >= options.CurrentValue.MaxInFlight)
        {
            // Bridged streams count against this gateway's own bound too.
            Interlocked.Increment(ref _refused);
            inbound.Reset(ResetCode.Refused, $"gateway '{identity.GatewayId}' is at its limit of {options.CurrentValue.MaxInFlight} in-flight requests");
            return;
        }
        var connection = registry.Find(head.SessionId) is { Accepting: true } chosen && chosen.Serves(head.Service) && chosen.Health.IsHealthy(head.Service)
            ? chosen
            : registry.Choose(head.Service);
        if (connection is null)
        {
            Interlocked.Increment(ref _refused);
            inbound.Reset(ResetCode.Refused, $"gateway '{identity.GatewayId}' holds no agent connection for service '{head.Service}' any more");
            return;
        }
        MuxStream outbound;
        try
        {
            outbound = connection.Mux.OpenStream();
        }
        catch (MuxStreamAbortedException ex)
        {
            Interlocked.Increment(ref _refused);
            inbound.Reset(ResetCode.Refused, $"gateway '{identity.GatewayId}' could not open a stream to agent '{connection.AgentId}': {ex.Reason.Reason}");
            return;
        }
        Interlocked.Increment(ref _bridged);
        Interlocked.Increment(ref _active);
        var outcome = new BridgeOutcome();
        long ownerIncarnation = head.OwnerIncarnation;
        // A reset of either side reaches the other at once, even while a relay waits for credit.
        var inboundAborted = inbound.Aborted.Register(() => Propagate(inbound, outbound));
        var outboundAborted = outbound.Aborted.Register(() => Propagate(outbound, inbound));
        try
        {
            // The head is this bridge's own (parsed from the peer's frame, read by nothing else): it is
            // forwarded as it is, without the fields that only the hop from the owner carries.
            head.SessionId = "";
            head.OwnerIncarnation = 0;
            outbound.SendHead(new Frame { RequestHead = head });
            // UDP flows: a datagram is one frame on both hops (never split by a partial credit).
            bool datagrams = head.Protocol == OrleansTunnel.Protocol.V1.Protocol.Udp;
            var up = head.EndOfBody ? Task.CompletedTask : RelayAsync(inbound, outbound, null, datagrams);
            var down = RelayAsync(outbound, inbound, outcome, datagrams);
            await Task.WhenAll(up, down);
        }
        finally
        {
            inboundAborted.Dispose();
            outboundAborted.Dispose();
            outbound.Complete();
            inbound.Complete();
            Interlocked.Decrement(ref _active);
            if (ownerIncarnation != 0)
            {
                _ = CompleteGrainAsync(head, ownerIncarnation, peerGatewayId, connection, outcome);
            }
        }
    }

    private static void Propagate(MuxStream aborted, MuxStream other)
    {
        var reason = aborted.AbortReason;
        other.Reset(reason?.Code ?? ResetCode.Cancelled, reason?.Reason ?? "the other side of the bridge ended");
    }

    /// <summary>Relays one direction until its end of body, trailers or a reset.</summary>
    private static async Task RelayAsync(MuxStream from, MuxStream to, BridgeOutcome? outcome, bool datagrams = false)
    {
        try
        {
            Frame? pending = null;
            // No token on the read (a registration per frame): a reset of the other side resets this
            // one through the abort registrations, and its reset frame ends the read.
            while ((pending ?? await from.ReadAsync(CancellationToken.None)) is { } frame)
            {
                pending = null;
                switch (frame.KindCase)
                {
                    case Frame.KindOneofCase.ResponseHead:
                        if (outcome is not null)
                        {
                            outcome.Status = frame.ResponseHead.Status;
                        }
                        bool ends = frame.ResponseHead.EndOfBody;
                        if (!ends && from.TryRead(out var next) && next is not null)
                        {
                            // A small answer's head and whole body arrive together (the sender queued them
                            // as one unit): they leave together, in one writer pass, as they came.
                            if (next.KindCase == Frame.KindOneofCase.Data && next.Data.EndOfBody && !datagrams
                                && to.TrySendHeadWithBody(frame, next.Data.Payload.Span))
                            {
                                int sent = next.Data.Payload.Length;
                                next.Data.ReleasePayload();
                                from.ReturnCredit(sent);
                                if (outcome is not null)
                                {
                                    outcome.Bytes += sent;
                                    outcome.Ended();
                                }
                                return;
                            }
                            to.SendHead(frame);
                            pending = next;
                            break;
                        }
                        to.SendHead(frame);
                        if (ends)
                        {
                            outcome?.Ended();
                            return;
                        }
                        break;
                    case Frame.KindOneofCase.Data:
                        var payload = frame.Data.Payload;
                        int length = payload.Length;
                        if (datagrams && !frame.Data.EndOfBody)
                        {
                            // No credit for the whole datagram on the next hop: dropped, as UDP may.
                            await to.TrySendDatagramAsync(payload.Memory, to.Aborted);
                        }
                        else if (frame.Data.TakeLease() is { } lease)
                        {
                            // The pooled buffer the bytes arrived in leaves with them: no copy on this hop.
                            await to.SendLeasedDataAsync(lease, length, frame.Data.EndOfBody, to.Aborted);
                        }
                        else
                        {
                            await to.SendDataAsync(payload.Memory, frame.Data.EndOfBody, to.Aborted);
                        }
                        from.ReturnCredit(length);
                        if (outcome is not null)
                        {
                            outcome.Bytes += length;
                        }
                        if (frame.Data.EndOfBody)
                        {
                            outcome?.Ended();
                            return;
                        }
                        break;
                    case Frame.KindOneofCase.Trailers:
                        await to.SendTrailersAsync(frame.Trailers.Headers);
                        outcome?.Ended();
                        return;
                    case Frame.KindOneofCase.Reset:
                        // The abort registration in BridgeAsync already reset the other side.
                        if (outcome is not null)
                        {
                            outcome.Failure = $"{frame.Reset.Code}: {frame.Reset.Reason}";
                        }
                        return;
                }
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or MuxStreamAbortedException)
        {
            // The receiving side was reset; its abort registration already reset the sending side.
            if (outcome is not null)
            {
                var reason = to.AbortReason;
                outcome.Failure ??= reason is null ? "cancelled" : $"{reason.Code}: {reason.Reason}";
            }
        }
    }

    private async Task CompleteGrainAsync(RequestHead head, long ownerIncarnation, string ownerGatewayId, AgentConnection connection, BridgeOutcome outcome)
    {
        string requestId = head.RequestId;
        if (string.IsNullOrEmpty(requestId))
        {
            return;
        }
        var state = outcome.Failure is null && outcome.Complete ? RequestState.Completed
            : outcome.Failure?.StartsWith(nameof(ResetCode.Cancelled), StringComparison.Ordinal) == true ? RequestState.Cancelled
            : RequestState.Failed;
        try
        {
            // What this gateway knows of the request, in case this ending overtakes the owner's open (one-way calls).
            var now = DateTimeOffset.UtcNow;
            var open = new RequestOpen(ownerGatewayId, connection.AgentId, connection.Session.SessionId, head.Service, head.Method,
                head.Authority, head.PathAndQuery, head.Protocol.ToString(), now, now + TimeSpan.FromMilliseconds(head.TimeoutMs),
                ownerIncarnation, identity.GatewayId, identity.Incarnation);
            await grains.GetGrain<IRequestGrain>(requestId).End(open, new RequestOutcome(
                state, outcome.Status, outcome.Failure, 0, outcome.Bytes, now, identity.GatewayId, identity.Incarnation));
        }
        catch (Exception ex)
        {
            LogCompleteFailed(logger, requestId, ex.Message);
        }
    }

    private sealed class BridgeOutcome
    {
        public int Status { get; set; }
        public long Bytes { get; set; }
        public string? Failure { get; set; }
        public bool Complete { get; private set; }

        public void Ended() => Complete = true;
    }

    [LoggerMessage(EventId = 610, EventName = "BridgeCompleteFailed", Level = LogLevel.Debug,
        Message = "Could not complete the record of bridged request {RequestId} in the cluster: {Error}; the gateway that opened it completes it too.")]
    private static partial void LogCompleteFailed(ILogger logger, string requestId, string error);
}
