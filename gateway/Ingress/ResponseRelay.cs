using System.Buffers;
using System.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OrleansTunnel.Gateway.Requests;
using OrleansTunnel.Mux;
using OrleansTunnel.Protocol.V1;

namespace OrleansTunnel.Gateway.Ingress;

/// <summary>
/// The response side of one tunnelled request: waits for the agent's head (under the request's head
/// deadline), turns a reset before the head into a status that names the cause, copies the head, then
/// streams the body (returning credit as the visitor drains it), trailers, or the WebSocket's bytes.
/// </summary>
public sealed partial class ResponseRelay(RequestTracker tracker, IOptionsMonitor<GatewayOptions> options, IOptionsMonitor<InspectorOptions> inspector, ILogger<ResponseRelay> logger)
{
    private long _webSocketIdleCloses;

    /// <summary>Tunnelled WebSockets closed by Gateway:WebSocketIdleTimeout since start.</summary>
    public long WebSocketIdleCloses => Interlocked.Read(ref _webSocketIdleCloses);

    public async Task RelayAsync(HttpContext context, MuxStream stream, RequestEntry entry, GatewayOptions o)
    {
        var headTimeout = PooledTimeout.Rent(entry.HeadTimeout, context.RequestAborted);
        Frame? frame;
        try
        {
            frame = await stream.ReadAsync(headTimeout.Token);
        }
        catch (OperationCanceledException)
        {
            if (context.RequestAborted.IsCancellationRequested)
            {
                entry.VisitorGone = true;
                stream.Reset(ResetCode.Cancelled, "the visitor disconnected");
                return;
            }
            stream.Reset(ResetCode.BackendTimeout, "the gateway stopped waiting for the response");
            entry.TimedOut = true;
            entry.PathFailure = "no answer within the head deadline";
            entry.Status = StatusCodes.Status504GatewayTimeout;
            await GatewayErrors.WriteAsync(context, StatusCodes.Status504GatewayTimeout, entry.HeadTimeout < o.ResponseTimeout
                ? $"the call's deadline of {entry.HeadTimeout.TotalSeconds:0.###} s passed before the backend answered"
                : $"the backend did not answer within {o.ResponseTimeout.TotalSeconds:0.###} s");
            return;
        }
        finally
        {
            headTimeout.Return();
        }

        if (frame is null || frame.KindCase != Frame.KindOneofCase.ResponseHead)
        {
            if (entry.RequestRejected is var (status, reason) && status > 0 && entry.CancelledBy is null)
            {
                entry.Status = status;
                entry.Failure = reason;
                await GatewayErrors.WriteAsync(context, status, $"the request body was rejected: {reason}");
                return;
            }
            await FailBeforeHeadAsync(context, entry, frame?.Reset);
            return;
        }

        var head = frame.ResponseHead;
        bool webSocket = entry.Kind is VisitorKind.WebSocketHttp1 or VisitorKind.WebSocketHttp2;
        if (head.Status is < 200 or > 599 && !(head.Status == StatusCodes.Status101SwitchingProtocols && webSocket))
        {
            // An agent chooses this number: it never reaches Kestrel or a metric label unless it is an HTTP final status.
            var refusal = new Reset { Code = ResetCode.ProtocolError, Reason = $"the agent answered with status {head.Status}, not a final HTTP status (200..599, or 101 to a WebSocket handshake)" };
            stream.Reset(refusal.Code, refusal.Reason);
            await FailBeforeHeadAsync(context, entry, refusal);
            return;
        }
        var response = context.Response;
        entry.ResponseHeadTicks = Stopwatch.GetTimestamp();
        entry.Status = head.Status;
        entry.CaptureResponseHeaders(head.Headers, inspector.CurrentValue);
        if (entry.Kind is VisitorKind.WebSocketHttp1 or VisitorKind.WebSocketHttp2 && head.Status == StatusCodes.Status101SwitchingProtocols)
        {
            tracker.MarkStreaming(entry, null);
            var (bytesIn, bytesOut, visitorGone, idleClosed) = await WebSocketRelay.RunAsync(context, stream, head, entry.Kind, o.WebSocketIdleTimeout, logger);
            entry.BytesIn = bytesIn;
            entry.BytesOut = bytesOut;
            entry.VisitorGone = visitorGone && entry.CancelledBy is null;
            if (idleClosed)
            {
                Interlocked.Increment(ref _webSocketIdleCloses);
                entry.Failure = $"closed after {o.WebSocketIdleTimeout} without traffic (Gateway:WebSocketIdleTimeout)";
            }
            return;
        }
        response.StatusCode = head.Status;
        if (CopyResponseHeaders(head, response) is { } skipped)
        {
            LogHeadersSkipped(logger, entry.Id, string.Join(", ", skipped));
        }
        if (head.EndOfBody)
        {
            return;
        }
        tracker.MarkStreaming(entry, response.ContentLength);
        if (entry.ResponseCapture is { } capture)
        {
            capture.ContentType = response.ContentType;
        }
        // A gRPC head that carries grpc-status is a Trailers-Only answer: it must leave as one HEADERS
        // frame with END_STREAM, or clients (grpc-js) see headers, an empty end and no status.
        bool trailersOnly = entry.Kind == VisitorKind.Grpc && GrpcStatus.HasStatus(head.Headers);
        await RelayBodyAsync(context, stream, entry, flushHeadAlone: !trailersOnly);
    }

    private async Task RelayBodyAsync(HttpContext context, MuxStream stream, RequestEntry entry, bool flushHeadAlone)
    {
        var aborted = context.RequestAborted;
        var body = context.Response.BodyWriter;
        // Frames already here are written to Kestrel's pipe without a flush each; the last of a burst
        // (none waiting, or this many bytes unflushed) is written with a flush (one socket write).
        // Credit goes back only once Kestrel took the bytes (the flush completed), as before.
        int flushEvery = Math.Max(stream.Connection.Settings.MaxStreamQueuedBytes, stream.Connection.Settings.MaxDataFrame);
        int unflushed = 0;
        try
        {
            // Small answers arrive with their head; only flush the head alone when the body is not here yet.
            if (!stream.TryRead(out var frame))
            {
                if (flushHeadAlone)
                {
                    await context.Response.StartAsync(aborted);
                }
                frame = await stream.ReadAsync(aborted);
            }
            while (frame is not null)
            {
                switch (frame.KindCase)
                {
                    case Frame.KindOneofCase.Data:
                        var payload = frame.Data.Payload;
                        if (!payload.IsEmpty)
                        {
                            entry.ResponseCapture?.Append(payload.Span);
                            entry.BytesOut += payload.Length;
                            unflushed += payload.Length;
                            if (!frame.Data.EndOfBody && unflushed < flushEvery && stream.TryRead(out var next))
                            {
                                body.Write(payload.Span);
                                frame.Data.ReleasePayload();
                                frame = next;
                                continue;
                            }
                            var flush = await body.WriteAsync(payload.Memory, aborted);
                            // Kestrel copied the bytes: the payload's pooled buffer can go back.
                            frame.Data.ReleasePayload();
                            stream.ReturnCredit(unflushed);
                            unflushed = 0;
                            if (flush.IsCanceled)
                            {
                                throw new OperationCanceledException();
                            }
                        }
                        else if (unflushed > 0 && !frame.Data.EndOfBody)
                        {
                            await body.FlushAsync(aborted);
                            stream.ReturnCredit(unflushed);
                            unflushed = 0;
                        }
                        if (frame.Data.EndOfBody)
                        {
                            return;
                        }
                        break;
                    case Frame.KindOneofCase.Trailers:
                        WriteTrailers(context, frame.Trailers);
                        return;
                    case Frame.KindOneofCase.Reset:
                        // The answer broke off (agent lost, backend reset, an operator's cancel): abort,
                        // never end it as if whole.
                        if (entry.CancelledBy is { } by)
                        {
                            entry.Failure = "cancelled by an operator: " + by;
                            if (entry.Kind == VisitorKind.Grpc && GrpcStatus.TryWriteTrailers(context, GrpcStatus.Cancelled, $"the call was cancelled by an operator: {by}"))
                            {
                                return;
                            }
                            context.Abort();
                            return;
                        }
                        if (!context.Response.HasStarted && entry.Retry is { } retry
                            && await retry.TryPlanAsync(entry.SessionId, entry.AgentId, entry.Id, frame.Reset, headSent: true, answerHead: true))
                        {
                            // The head had come but nothing was written to the visitor yet: the forwarder sends
                            // the (idempotent) request again, so the half answer is dropped, never relayed.
                            context.Response.Clear();
                            NoteRetried(entry, retry, $"response aborted after its head ({frame.Reset.Reason})");
                            return;
                        }
                        entry.Failure = $"response aborted mid-body: {frame.Reset.Reason}";
                        LogResponseAborted(logger, entry.Id, frame.Reset.Code.ToString(), frame.Reset.Reason);
                        if (entry.Kind == VisitorKind.Grpc && GrpcStatus.TryWriteTrailers(context, GrpcStatus.Unavailable, $"the tunnel lost the call mid-response: {frame.Reset.Reason}"))
                        {
                            return;
                        }
                        context.Abort();
                        return;
                }
                // (every other kind ends the body or the loop: unflushed is 0 here)
                frame = await stream.ReadAsync(aborted);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException)
        {
            entry.VisitorGone = true;
            stream.Reset(ResetCode.Cancelled, "the visitor disconnected");
        }
    }

    private async Task FailBeforeHeadAsync(HttpContext context, RequestEntry entry, Reset? reset)
    {
        int? grpcCode = null;
        // Reasons that name backend addresses or agent internals go to the request's record (the inspector,
        // GET /api/requests/ID) only; the visitor gets the kind of failure.
        var (status, message) = reset?.Code switch
        {
            _ when entry.CancelledBy is { } by => (StatusCodes.Status503ServiceUnavailable, $"the request was cancelled by an operator: {by}"),
            ResetCode.BackendUnavailable => (StatusCodes.Status502BadGateway, "the backend refused or reset the connection"),
            ResetCode.BackendTimeout => (StatusCodes.Status504GatewayTimeout, "the backend timed out"),
            ResetCode.Refused => (StatusCodes.Status503ServiceUnavailable, $"the agent refused the request: {reset.Reason}"),
            ResetCode.UnknownService => (StatusCodes.Status502BadGateway, $"the agent does not serve this service: {reset.Reason}"),
            ResetCode.BadRequest => (StatusCodes.Status400BadRequest, $"the agent refused the request: {reset.Reason}"),
            ResetCode.ProtocolError => (StatusCodes.Status502BadGateway, $"the backend's answer broke the protocol: {reset.Reason}"),
            ResetCode.Cancelled when context.RequestAborted.IsCancellationRequested => (0, ""),
            _ => (StatusCodes.Status502BadGateway, $"the agent was lost before it answered: {reset?.Reason ?? "the stream ended"}"),
        };
        if (status == 0)
        {
            entry.VisitorGone = true;
            return;
        }
        if (entry.CancelledBy is null && reset?.Code is null or ResetCode.BackendUnavailable or ResetCode.BackendTimeout or ResetCode.Internal or ResetCode.Unspecified)
        {
            entry.PathFailure = $"{message}: {reset?.Reason ?? "the stream ended"}";
        }
        if (entry.CancelledBy is null && entry.Retry is { } retry && await retry.TryPlanAsync(entry.SessionId, entry.AgentId, entry.Id, reset, headSent: true))
        {
            // Nothing reached the visitor: the forwarder sends the request again on the planned session.
            NoteRetried(entry, retry, $"{message} ({reset?.Reason ?? "the stream ended"})");
            return;
        }
        entry.Status = status;
        if (entry.CancelledBy is not null)
        {
            grpcCode = GrpcStatus.Cancelled;
        }
        else
        {
            entry.Failure = reset?.Code is ResetCode.BackendUnavailable or ResetCode.BackendTimeout
                ? $"{message}: {reset.Reason}"
                : message;
        }
        if (status == StatusCodes.Status503ServiceUnavailable && entry.CancelledBy is null)
        {
            context.Response.Headers.RetryAfter = ((int)Math.Ceiling(options.CurrentValue.RetryAfter.TotalSeconds)).ToString();
        }
        await GatewayErrors.WriteAsync(context, status, message, grpcCode);
    }

    /// <summary>Records on the failed attempt's entry why it failed and where its retry went.</summary>
    private static void NoteRetried(RequestEntry entry, OrleansTunnel.Gateway.Health.RetryPlan retry, string failure)
    {
        var next = retry.Next!;
        entry.Failure = $"{failure}; retried on agent '{next.AgentId}' session {next.SessionId}";
        entry.RetriedAs = $"on agent '{next.AgentId}' session {next.SessionId} ({retry.Reason})";
    }

    /// <returns>The names of fields that could not be forwarded, if any.</returns>
    private static string[]? CopyResponseHeaders(ResponseHead head, HttpResponse response)
    {
        string[]? skipped = null;
        var headers = response.Headers;
        HashSet<string>? connectionNamed = null;
        foreach (var h in head.Headers)
        {
            if (h.Name.Equals("Connection", StringComparison.OrdinalIgnoreCase))
            {
                connectionNamed = HopByHop.NamedBy([h.Value]);
            }
        }
        foreach (var h in head.Headers)
        {
            // The request id is the gateway's own header: an agent cannot add a second one.
            if (HopByHop.ShouldDrop(h.Name, h.Value, connectionNamed) || h.Name.StartsWith(':')
                || h.Name.Equals(TunnelExchange.RequestIdHeader, StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }
            if (h.Name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
            {
                if (long.TryParse(h.Value, out long length))
                {
                    response.ContentLength = length;
                }
                continue;
            }
            try
            {
                headers.Append(h.Name, h.Value);
            }
            catch (InvalidOperationException)
            {
                // Kestrel refuses values it cannot encode (raw non-ASCII, control characters): drop that field only.
                skipped = (skipped ?? []).Append(h.Name).ToArray();
            }
        }
        return skipped;
    }

    private static void WriteTrailers(HttpContext context, Trailers trailers)
    {
        var feature = context.Features.Get<IHttpResponseTrailersFeature>();
        if (feature?.Trailers is not { IsReadOnly: false } target)
        {
            return;
        }
        foreach (var t in trailers.Headers)
        {
            target.Append(t.Name, t.Value);
        }
    }

    [LoggerMessage(EventId = 501, EventName = "ResponseHeadersSkipped", Level = LogLevel.Warning,
        Message = "Request {RequestId}: the backend sent response fields that HTTP cannot carry as they are ({Names}); they were dropped. Encode them (RFC 8187) in the backend.")]
    private static partial void LogHeadersSkipped(ILogger logger, string requestId, string names);

    [LoggerMessage(EventId = 500, EventName = "ResponseAborted", Level = LogLevel.Information,
        Message = "Request {RequestId}: the response broke off mid-body ({Code}: {Reason}); the visitor's connection was aborted so it cannot mistake it for a whole answer.")]
    private static partial void LogResponseAborted(ILogger logger, string requestId, string code, string reason);
}
