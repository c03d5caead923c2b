using System.Diagnostics;
using System.Net;
using Microsoft.Extensions.Options;
using OrleansTunnel.Gateway.Cluster;
using OrleansTunnel.Gateway.Ingress;
using OrleansTunnel.Gateway.Requests;
using OrleansTunnel.Gateway.Tunnel;
using OrleansTunnel.Mux;
using OrleansTunnel.Protocol.V1;

namespace OrleansTunnel.Gateway.L4;

/// <summary>One TCP connection or UDP flow on its tunnel stream, from open to close.</summary>
public sealed class L4Session
{
    public required string Service { get; init; }
    public required string Protocol { get; init; }
    public required DispatchTarget Target { get; init; }
    public required PermitResult Permit { get; init; }
    public required MuxStream Stream { get; init; }
    public required InFlightBounds.Slot Slot { get; init; }
    public required RequestEntry Entry { get; init; }
    public long StartedTicks { get; } = Stopwatch.GetTimestamp();
}

/// <summary>
/// Opens the tunnel stream of a TCP connection or UDP flow the way HTTP requests get theirs: an agent
/// chosen by the <see cref="Dispatcher"/> (local, or another gateway's through the peer link), a permit
/// of the agent's backpressure budget, a journal entry (and request grain when configured) per
/// connection with its bytes and duration. Refusals are counted per service.
/// </summary>
public sealed class L4Gate(Dispatcher dispatcher, PermitPool permits, RequestTracker tracker, L4Telemetry telemetry, IOptionsMonitor<L4Options> options,
    InFlightBounds bounds, IOptionsMonitor<GatewayOptions> gatewayOptions, Telemetry.GatewayTelemetry gatewayTelemetry)
{
    /// <summary>Opens the stream and sends its head; null (refused, counted, <paramref name="refusal"/> says why) when no agent or permit is available.</summary>
    public async Task<(L4Session? Session, string? Refusal)> OpenAsync(string service, VisitorKind kind, string host, EndPoint? client, EndPoint? local, bool proxyProtocol, CancellationToken cancellationToken)
    {
        string protocol = VisitorProtocol.Name(kind);
        var target = await dispatcher.ChooseAsync(service, cancellationToken);
        if (target is null)
        {
            telemetry.Refused(protocol, service);
            return (null, $"no agent is connected for service '{service}'");
        }
        // The gateway's own bounds first (shared with HTTP requests: a connection or flow holds a slot until it closes).
        var (slot, limit, over) = bounds.Enter(target.AgentId, service, gatewayOptions.CurrentValue, kind == VisitorKind.Tcp ? "TCP connections" : "UDP flows");
        if (limit is not null)
        {
            bounds.Exit(slot);
            dispatcher.Release(target);
            telemetry.Refused(protocol, service);
            gatewayTelemetry.Rejected(limit, service);
            return (null, over);
        }
        PermitResult permit = default;
        try
        {
            permit = await permits.AcquireAsync(target.AgentId, service, cancellationToken);
            if (!permit.Ok)
            {
                bounds.Exit(slot);
                dispatcher.Release(target);
                telemetry.Refused(protocol, service);
                return (null, permit.LimitReached);
            }
            var stream = target.Mux.OpenStream();
            var timeout = options.CurrentValue.L4ConnectTimeout;
            var entry = tracker.Open(null, stream, service, host, "/", target, timeout, kind, kind == VisitorKind.Tcp ? "TCP" : "UDP");
            entry.Target = client?.ToString();
            var head = new RequestHead
            {
                RequestId = entry.Id, Service = service, Method = entry.Method, Scheme = protocol, Authority = host, PathAndQuery = "/",
                Protocol = kind == VisitorKind.Tcp ? OrleansTunnel.Protocol.V1.Protocol.Tcp : OrleansTunnel.Protocol.V1.Protocol.Udp,
                TimeoutMs = (uint)Math.Min(uint.MaxValue, timeout.TotalMilliseconds),
                ClientAddress = client?.ToString() ?? "", LocalAddress = local?.ToString() ?? "", ProxyProtocol = proxyProtocol,
            };
            if (!target.IsLocal)
            {
                head.SessionId = target.SessionId;
                head.OwnerIncarnation = tracker.OwnerIncarnationForPeer(entry);
            }
            stream.SendHead(new Frame { RequestHead = head });
            entry.HeadSentTicks = Stopwatch.GetTimestamp();
            telemetry.Opened(protocol, service);
            return (new L4Session { Service = service, Protocol = protocol, Target = target, Permit = permit, Stream = stream, Slot = slot, Entry = entry }, null);
        }
        catch (Exception ex) when (ex is MuxStreamAbortedException or OperationCanceledException)
        {
            if (permit.Ok)
            {
                permits.Release(permit.Bucket!);
            }
            bounds.Exit(slot);
            dispatcher.Release(target);
            telemetry.Refused(protocol, service);
            return (null, $"no agent is connected for service '{service}'");
        }
        catch
        {
            if (permit.Ok)
            {
                permits.Release(permit.Bucket!);
            }
            bounds.Exit(slot);
            dispatcher.Release(target);
            throw;
        }
    }

    /// <summary>Waits for the agent's answer: true once it reached the backend; false (the stream is reset, the entry says why) otherwise.</summary>
    public async Task<bool> AwaitConnectedAsync(L4Session session)
    {
        var stream = session.Stream;
        var timeout = options.CurrentValue.L4ConnectTimeout;
        using var deadline = new CancellationTokenSource(timeout);
        Frame? first;
        try
        {
            first = await stream.ReadAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            session.Entry.TimedOut = true;
            session.Entry.Failure = $"the agent did not reach the backend of service '{session.Service}' within {timeout.TotalSeconds:0.#} s";
            stream.Reset(ResetCode.BackendTimeout, session.Entry.Failure);
            return false;
        }
        if (first?.KindCase == Frame.KindOneofCase.ResponseHead)
        {
            session.Entry.ResponseHeadTicks = Stopwatch.GetTimestamp();
            session.Entry.Status = first.ResponseHead.Status;
            return true;
        }
        session.Entry.Failure = first?.KindCase == Frame.KindOneofCase.Reset ? $"{first.Reset.Code}: {first.Reset.Reason}" : "the agent ended the stream without connecting";
        stream.Reset(ResetCode.ProtocolError, session.Entry.Failure);
        return false;
    }

    /// <summary>Releases the stream, permit and dispatch slot, ends the journal entry and records the metrics.</summary>
    public void Close(L4Session session, string outcome)
    {
        session.Stream.Complete();
        if (session.Permit.Ok)
        {
            permits.Release(session.Permit.Bucket!);
        }
        bounds.Exit(session.Slot);
        dispatcher.Release(session.Target);
        var entry = session.Entry;
        telemetry.Closed(session.Protocol, session.Service, outcome, session.StartedTicks, entry.BytesIn, entry.BytesOut);
        tracker.Complete(entry);
    }
}
