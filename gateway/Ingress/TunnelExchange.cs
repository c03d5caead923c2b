using System.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;
using OrleansTunnel.Gateway.Cluster;
using OrleansTunnel.Gateway.Requests;
using OrleansTunnel.Gateway.Telemetry;
using OrleansTunnel.Mux;
using OrleansTunnel.Protocol.V1;

namespace OrleansTunnel.Gateway.Ingress;

/// <summary>
/// One request through an open tunnel stream: gives it its id and journal entry, sends its head,
/// pumps the visitor's body up under credit while <see cref="ResponseRelay"/> brings the answer down,
/// and records how it ended.
/// </summary>
public sealed class TunnelExchange(RequestTracker tracker, ResponseRelay relay, TrustedProxies trustedProxies, GatewayTelemetry telemetry,
    Microsoft.Extensions.Options.IOptionsMonitor<InspectorOptions> inspector, ReplayMarker replays, OrleansTunnel.Gateway.Health.CircuitBreakers circuits,
    Microsoft.Extensions.Options.IOptionsMonitor<OrleansTunnel.Gateway.Health.ResilienceOptions> resilience)
{
    /// <summary>Response header that carries the request id (also the request grain's key).</summary>
    public const string RequestIdHeader = "X-Tunnel-Request-Id";

    private long _forwarded;

    /// <summary>Requests whose head was sent to an agent since start (what agents could have seen).</summary>
    public long Forwarded => Interlocked.Read(ref _forwarded);

    public async Task ForwardAsync(HttpContext context, GatewayOptions o, OrleansTunnel.Grains.Route route, string host, string path, DispatchTarget target, MuxStream stream, long routedAt,
        OrleansTunnel.Gateway.Health.RetryPlan? retry = null)
    {
        string service = route.Service;
        var request = context.Request;
        var kind = VisitorProtocol.Detect(context);
        var timeout = kind == VisitorKind.Grpc && GrpcStatus.ParseTimeout(request.Headers["grpc-timeout"]) is { } deadline && deadline < o.ResponseTimeout
            ? deadline : o.ResponseTimeout;
        var entry = tracker.Open(context, stream, service, host, path, target, timeout, kind);
        // Time spent before the stream opened (choosing an agent, waiting for a permit): "queued".
        entry.QueuedTicks = Stopwatch.GetTimestamp() - routedAt;
        context.Response.Headers[RequestIdHeader] = entry.Id;
        var activity = GatewayTelemetry.CurrentRequestActivity;
        if (activity is not null)
        {
            activity.SetTag("otun.request_id", entry.Id);
            activity.SetTag("otun.agent", target.AgentId);
            if (!target.IsLocal)
            {
                activity.SetTag("otun.via_gateway", target.HolderGatewayId);
            }
        }
        if (kind != VisitorKind.Http && context.Features.Get<IHttpMinRequestBodyDataRateFeature>() is { } rate)
        {
            // Streaming calls and WebSockets legitimately go quiet; the minimum data rate is for uploads.
            rate.MinDataRate = null;
        }
        bool hasBody = kind is not (VisitorKind.WebSocketHttp1 or VisitorKind.WebSocketHttp2) && HasBody(request);
        var head = RequestHeadBuilder.Build(context, entry.Id, service, host, hasBody, timeout, kind, trustedProxies.Contains(context, o), o.KeepClientHeadersSet);
        if (activity is not null)
        {
            // The agent's span is a child of this one: the visitor's traceparent is replaced by the gateway's.
            OrleansTunnel.Mux.Telemetry.TraceContext.Inject(head.Headers, activity);
        }
        entry.CaptureRequestHeaders(head.Headers, inspector.CurrentValue);
        if (route.CaptureBodyBytes > 0 && kind is VisitorKind.Http or VisitorKind.Grpc)
        {
            // Only on routes that ask for it, never for WebSockets, and within the gateway's budget.
            tracker.CaptureBodies(entry, route.CaptureBodyBytes, request.ContentType);
        }
        entry.Target = head.PathAndQuery;
        entry.ReplayOf = replays.ReplayOf(request);
        entry.Retry = retry;
        if (retry is { Used: true })
        {
            entry.RetryOf = $"{retry.FailedRequestId} ({retry.Reason})";
        }
        // The inspector keeps what the visitor sent (a replay is rewritten again); the backend sees the rewrite.
        OrleansTunnel.Gateway.Policy.RequestRewriter.ApplyToHead(context, route, head, host, entry.Id, () => trustedProxies.VisitorAddress(context, o) is { } a
            ? (a.IsIPv4MappedToIPv6 ? a.MapToIPv4() : a).ToString() : null);
        if (!target.IsLocal)
        {
            // The gateway holding the agent's tunnel uses this session if it still can.
            head.SessionId = target.SessionId;
            // Non-zero asks that gateway to end the request's grain too (only requests that have one).
            head.OwnerIncarnation = tracker.OwnerIncarnationForPeer(entry);
        }
        try
        {
            stream.SendHead(new Frame { RequestHead = head });
            entry.HeadSentTicks = Stopwatch.GetTimestamp();
            Interlocked.Increment(ref _forwarded);
            var upload = hasBody ? PumpRequestBodyAsync(context, stream, entry) : Task.CompletedTask;
            await relay.RelayAsync(context, stream, entry, o);
            await upload;
        }
        finally
        {
            stream.Complete();
            // The path's verdict for the session's circuit: an answer arrived, or the path failed, or neither.
            if (entry.ResponseHeadTicks != 0)
            {
                circuits.Succeeded(target.SessionId, service, OrleansTunnel.Gateway.Health.RouteResilienceConfig.For(resilience.CurrentValue, route.Resilience));
            }
            else if (entry.PathFailure is { } pathFailure)
            {
                circuits.Failed(target.SessionId, service, target.AgentId, target.IsLocal ? null : target.HolderGatewayId, pathFailure,
                    OrleansTunnel.Gateway.Health.RouteResilienceConfig.For(resilience.CurrentValue, route.Resilience));
            }
            else
            {
                circuits.Abandoned(target.SessionId, service);
            }
            telemetry.RecordBytes(service, kind, entry.BytesIn, entry.BytesOut);
            tracker.Complete(entry);
        }
    }

    private static async Task PumpRequestBodyAsync(HttpContext context, MuxStream stream, RequestEntry entry)
    {
        var reader = context.Request.BodyReader;
        try
        {
            while (true)
            {
                var result = await reader.ReadAsync(stream.Aborted);
                var buffer = result.Buffer;
                entry.RequestCapture?.Append(buffer);
                // The last bytes and the end of body travel in one frame when they can.
                await stream.SendDataAsync(buffer, endOfBody: result.IsCompleted, stream.Aborted);
                entry.BytesIn += buffer.Length;
                reader.AdvanceTo(buffer.End);
                if (result.IsCompleted)
                {
                    return;
                }
            }
        }
        catch (OperationCanceledException)
        {
            // The stream was reset (the response ended early or failed): stop reading the visitor.
        }
        catch (MuxStreamAbortedException)
        {
        }
        catch (BadHttpRequestException ex)
        {
            // The visitor's body broke a rule (too large, malformed chunks): answer with Kestrel's
            // status (413, 400) if nothing was answered yet; the backend never sees a partial body as whole.
            entry.RequestRejected = (ex.StatusCode, ex.Message);
            stream.Reset(ResetCode.Refused, "the visitor's request body was rejected: " + ex.Message);
        }
        catch (IOException ex) when (ex.InnerException is OverflowException)
        {
            // Kestrel reports an out-of-range chunk size as an IOException over an OverflowException: malformed, not gone.
            entry.RequestRejected = (StatusCodes.Status400BadRequest, ex.Message);
            stream.Reset(ResetCode.Refused, "the visitor's request body was rejected: " + ex.Message);
        }
        catch (IOException ex)
        {
            // The visitor's upload broke off: the backend must not see a truncated body as complete.
            entry.VisitorGone = true;
            stream.Reset(ResetCode.Cancelled, "the visitor's request body broke off: " + ex.Message);
        }
    }

    internal static bool HasBody(HttpRequest request)
    {
        var detection = request.HttpContext.Features.Get<IHttpRequestBodyDetectionFeature>();
        return detection?.CanHaveBody ?? (request.ContentLength > 0 || request.Headers.TransferEncoding.Count > 0);
    }
}
