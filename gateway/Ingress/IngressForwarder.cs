using System.Buffers;
using System.Diagnostics;
using System.IO.Pipelines;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Primitives;
using OrleansTunnel.Gateway.Routing;
using OrleansTunnel.Gateway.Telemetry;
using OrleansTunnel.Gateway.Tunnel;
using OrleansTunnel.Grains;
using OrleansTunnel.Protocol;
using OrleansTunnel.Protocol.V1;

namespace OrleansTunnel.Gateway.Ingress;

/// <summary>
/// The visitor side of the gateway: matches a route, picks an agent connection, opens the request's
/// grain and streams the request and its response through the tunnel. Errors a visitor can act on get
/// a status and a one-line body naming the cause.
/// </summary>
public sealed partial class IngressForwarder(
    RoutingCache routing,
    OrleansTunnel.Gateway.Cluster.Dispatcher dispatcher,
    RequestTracker tracker,
    PermitPool permits,
    GatewayTelemetry telemetry,
    IOptionsMonitor<GatewayOptions> options,
    ILogger<IngressForwarder> logger)
{
    /// <summary>Response header that carries the request id (also the request grain's key).</summary>
    public const string RequestIdHeader = "X-Tunnel-Request-Id";

    private long _inFlight;
    private long _rejections;
    private long _forwarded;
    private long _refusedBeforeForwarding;
    private long _webSocketIdleCloses;
    private System.Net.IPNetwork[]? _trustedProxies;
    private List<string>? _trustedProxiesSource;

    /// <summary>Requests this gateway is forwarding now.</summary>
    public long InFlight => Interlocked.Read(ref _inFlight);

    /// <summary>Requests refused by a limit (gateway-wide or an agent's budget) since start.</summary>
    public long Rejections => Interlocked.Read(ref _rejections);

    /// <summary>Requests whose head was sent to an agent since start (what agents could have seen).</summary>
    public long Forwarded => Interlocked.Read(ref _forwarded);

    /// <summary>
    /// Requests the gateway answered itself with a 4xx before any agent saw them (malformed or
    /// ambiguous framing, Host problems, access denied, body too large) since start.
    /// </summary>
    public long RefusedBeforeForwarding => Interlocked.Read(ref _refusedBeforeForwarding);

    /// <summary>Tunnelled WebSockets closed by Gateway:WebSocketIdleTimeout since start.</summary>
    public long WebSocketIdleCloses => Interlocked.Read(ref _webSocketIdleCloses);

    public async Task InvokeAsync(HttpContext context)
    {
        var request = context.Request;
        var o = options.CurrentValue;
        if (FramingProblem(request) is { } framing)
        {
            // Ambiguous framing is how requests get smuggled past a proxy: refuse and close the connection.
            await RefuseAsync(context, StatusCodes.Status400BadRequest, framing, closeConnection: true);
            return;
        }
        if (request.Headers.Host.Count > 1)
        {
            await RefuseAsync(context, StatusCodes.Status400BadRequest, "the request has more than one Host", closeConnection: true);
            return;
        }
        string? host = NormalizeHost(request.Host);
        if (host is null)
        {
            await RefuseAsync(context, StatusCodes.Status400BadRequest, "the request has no Host", closeConnection: false);
            return;
        }
        string path = request.Path.HasValue ? request.Path.Value! : "/";
        var route = routing.Current.Routes.Match(host, path);
        if (route is null)
        {
            await WriteErrorAsync(context, StatusCodes.Status404NotFound, $"no route for host '{host}'");
            return;
        }
        // Access is decided on the route that routing matched (same normalised host and path).
        var access = VisitorAccess.Check(context, route);
        if (!access.Allowed)
        {
            if (access.Challenge is not null)
            {
                context.Response.Headers.WWWAuthenticate = access.Challenge;
            }
            await RefuseAsync(context, access.Status, access.Message!, closeConnection: false);
            return;
        }
        if (route.MaxRequestBodySize is long routeMax)
        {
            if (request.ContentLength > routeMax)
            {
                await RefuseAsync(context, StatusCodes.Status413PayloadTooLarge,
                    $"the request body was rejected: Request body too large. The max request body size is {routeMax} bytes.", closeConnection: true);
                return;
            }
            if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } bodySize)
            {
                bodySize.MaxRequestBodySize = routeMax;
            }
        }
        else if (request.ContentLength > o.MaxRequestBodySize)
        {
            await RefuseAsync(context, StatusCodes.Status413PayloadTooLarge,
                $"the request body was rejected: Request body too large. The max request body size is {o.MaxRequestBodySize} bytes.", closeConnection: true);
            return;
        }
        long started = Stopwatch.GetTimestamp();
        var activity = telemetry.StartRequest(context, route.Service);
        try
        {
            await InvokeRoutedAsync(context, o, host, path, route);
        }
        finally
        {
            telemetry.EndRequest(context, route.Service, started, activity);
        }
    }

    private async Task InvokeRoutedAsync(HttpContext context, GatewayOptions o, string host, string path, Route route)
    {
        OrleansTunnel.Gateway.Cluster.DispatchTarget? target;
        try
        {
            target = await dispatcher.ChooseAsync(route.Service, context.RequestAborted);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            return;
        }
        if (target is null)
        {
            await RejectAsync(context, o, $"no agent is connected for service '{route.Service}'", GatewayTelemetry.Limits.NoAgent, route.Service);
            return;
        }

        // Gateway-wide bounds first (no grain call), then the agent's budget (a local permit, leased in batches).
        long inFlight = Interlocked.Increment(ref _inFlight);
        PermitResult permit = default;
        MuxStream? stream = null;
        try
        {
            if (inFlight > o.MaxInFlight)
            {
                await RejectAsync(context, o, $"the gateway is at its limit of {o.MaxInFlight} in-flight requests", GatewayTelemetry.Limits.GatewayInFlight, route.Service);
                return;
            }
            if (inFlight * o.ReceiveWindow > o.MaxTunnelBufferBytes)
            {
                await RejectAsync(context, o, $"the gateway is at its tunnel buffer limit of {o.MaxTunnelBufferBytes} bytes", GatewayTelemetry.Limits.GatewayBuffer, route.Service);
                return;
            }
            permit = await permits.AcquireAsync(target.AgentId, route.Service, context.RequestAborted);
            if (!permit.Ok)
            {
                await RejectAsync(context, o, permit.LimitReached!, GatewayTelemetry.PermitLimit(permit.LimitReached), route.Service);
                return;
            }
            try
            {
                stream = target.Mux.OpenStream();
            }
            catch (MuxStreamAbortedException)
            {
                await RejectAsync(context, o, $"no agent is connected for service '{route.Service}'", GatewayTelemetry.Limits.NoAgent, route.Service);
                return;
            }
            await ForwardAsync(context, o, route.Service, host, path, target, stream);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // The visitor left while waiting for a permit.
        }
        finally
        {
            if (permit.Ok)
            {
                permits.Release(permit.Bucket!);
            }
            dispatcher.Release(target);
            Interlocked.Decrement(ref _inFlight);
        }
    }

    /// <summary>
    /// Framing a proxy must not guess at: Content-Length together with Transfer-Encoding (Kestrel follows
    /// the chunked coding, a backend might follow the length), or several Content-Length values.
    /// </summary>
    public static string? FramingProblem(HttpRequest request)
    {
        if (!HttpProtocol.IsHttp11(request.Protocol) && !HttpProtocol.IsHttp10(request.Protocol))
        {
            return null;
        }
        var headers = request.Headers;
        // Kestrel itself accepts both, follows the chunked coding, renames Content-Length to X-Content-Length
        // and closes the connection afterwards; the gateway refuses such a request outright.
        if (headers.TransferEncoding.Count > 0 && (headers.ContentLength is not null || headers.ContainsKey("X-Content-Length")))
        {
            return "the request has both Content-Length and Transfer-Encoding";
        }
        return null;
    }

    private async Task RefuseAsync(HttpContext context, int status, string message, bool closeConnection)
    {
        Interlocked.Increment(ref _refusedBeforeForwarding);
        if (closeConnection && (HttpProtocol.IsHttp11(context.Request.Protocol) || HttpProtocol.IsHttp10(context.Request.Protocol)))
        {
            // Whatever follows on this connection cannot be trusted to start where we think it does.
            context.Response.Headers.Connection = "close";
        }
        await WriteErrorAsync(context, status, message);
    }

    private async Task RejectAsync(HttpContext context, GatewayOptions o, string message, string reason, string service)
    {
        telemetry.Rejected(reason, service);
        bool limit = reason != GatewayTelemetry.Limits.NoAgent;
        if (limit)
        {
            Interlocked.Increment(ref _rejections);
        }
        context.Response.Headers.RetryAfter = ((int)Math.Ceiling(o.RetryAfter.TotalSeconds)).ToString();
        await WriteErrorAsync(context, StatusCodes.Status503ServiceUnavailable, message, limit ? GrpcStatus.ResourceExhausted : GrpcStatus.Unavailable);
    }

    private async Task ForwardAsync(HttpContext context, GatewayOptions o, string service, string host, string path, OrleansTunnel.Gateway.Cluster.DispatchTarget target, MuxStream stream)
    {
        var request = context.Request;
        string requestId = Guid.CreateVersion7().ToString("N");
        context.Response.Headers[RequestIdHeader] = requestId;
        var activity = GatewayTelemetry.CurrentRequestActivity;
        activity?.SetTag("otun.request_id", requestId);
        activity?.SetTag("otun.agent", target.AgentId);
        if (!target.IsLocal)
        {
            activity?.SetTag("otun.via_gateway", target.HolderGatewayId);
        }
        var kind = VisitorProtocol.Detect(context);
        if (kind != VisitorKind.Http && context.Features.Get<IHttpMinRequestBodyDataRateFeature>() is { } rate)
        {
            // Streaming calls and WebSockets legitimately go quiet; the minimum data rate is for uploads.
            rate.MinDataRate = null;
        }
        bool hasBody = kind is not (VisitorKind.WebSocketHttp1 or VisitorKind.WebSocketHttp2) && HasBody(request);
        var timeout = kind == VisitorKind.Grpc && GrpcStatus.ParseTimeout(request.Headers["grpc-timeout"]) is { } deadline && deadline < o.ResponseTimeout
            ? deadline : o.ResponseTimeout;
        var head = BuildHead(context, requestId, service, host, hasBody, timeout, kind, IsTrustedProxy(context, o));
        if (activity is not null)
        {
            // The agent's span is a child of this one: the visitor's traceparent is replaced by the gateway's.
            OrleansTunnel.Protocol.Telemetry.TraceContext.Inject(head.Headers, activity);
        }
        var record = tracker.Open(requestId, target, service, request.Method, host, path, timeout, kind);
        if (!target.IsLocal)
        {
            // The gateway holding the agent's tunnel uses this session if it still can.
            head.SessionId = target.SessionId;
            // Zero tells that gateway this request has no record to complete (Gateway:RecordRequests off).
            head.OwnerIncarnation = record.Recorded ? record.Info.GatewayIncarnation : 0;
        }
        var exchange = new Exchange(context, stream, record) { Kind = kind, HeadTimeout = timeout };
        try
        {
            stream.SendHead(new Frame { RequestHead = head });
            Interlocked.Increment(ref _forwarded);
            var upload = hasBody ? PumpRequestBodyAsync(exchange) : Task.CompletedTask;
            await RelayResponseAsync(exchange, o);
            await upload;
        }
        finally
        {
            stream.Complete();
            tracker.Complete(record, exchange.Outcome());
            telemetry.RecordBytes(service, kind, exchange.BytesIn, exchange.BytesOut);
        }
    }

    private async Task PumpRequestBodyAsync(Exchange exchange)
    {
        var reader = exchange.Context.Request.BodyReader;
        var stream = exchange.Stream;
        try
        {
            while (true)
            {
                var result = await reader.ReadAsync(stream.Aborted);
                var buffer = result.Buffer;
                // The last bytes and the end of body travel in one frame when they can.
                await stream.SendDataAsync(buffer, endOfBody: result.IsCompleted, stream.Aborted);
                exchange.BytesIn += buffer.Length;
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
            exchange.RequestRejected = (ex.StatusCode, ex.Message);
            stream.Reset(ResetCode.Refused, "the visitor's request body was rejected: " + ex.Message);
        }
        catch (IOException ex) when (ex.InnerException is OverflowException)
        {
            // Kestrel reports an out-of-range chunk size as an IOException over an OverflowException: malformed, not gone.
            exchange.RequestRejected = (StatusCodes.Status400BadRequest, ex.Message);
            stream.Reset(ResetCode.Refused, "the visitor's request body was rejected: " + ex.Message);
        }
        catch (IOException ex)
        {
            // The visitor's upload broke off: the backend must not see a truncated body as complete.
            exchange.VisitorGone = true;
            stream.Reset(ResetCode.Cancelled, "the visitor's request body broke off: " + ex.Message);
        }
    }

    private async Task RelayResponseAsync(Exchange exchange, GatewayOptions o)
    {
        var context = exchange.Context;
        var stream = exchange.Stream;
        using var headTimeout = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        headTimeout.CancelAfter(exchange.HeadTimeout);
        Frame? frame;
        try
        {
            frame = await stream.ReadAsync(headTimeout.Token);
        }
        catch (OperationCanceledException)
        {
            if (context.RequestAborted.IsCancellationRequested)
            {
                exchange.VisitorGone = true;
                stream.Reset(ResetCode.Cancelled, "the visitor disconnected");
                return;
            }
            stream.Reset(ResetCode.BackendTimeout, "the gateway stopped waiting for the response");
            exchange.Timeout = true;
            await WriteErrorAsync(context, StatusCodes.Status504GatewayTimeout, exchange.HeadTimeout < o.ResponseTimeout
                ? $"the call's deadline of {exchange.HeadTimeout.TotalSeconds:0.###} s passed before the backend answered"
                : $"the backend did not answer within {o.ResponseTimeout.TotalSeconds:0.###} s");
            exchange.Status = StatusCodes.Status504GatewayTimeout;
            return;
        }

        if (frame is null || frame.KindCase != Frame.KindOneofCase.ResponseHead)
        {
            if (exchange.RequestRejected is var (status, reason) && status > 0)
            {
                exchange.Status = status;
                exchange.Failure = reason;
                await WriteErrorAsync(context, status, $"the request body was rejected: {reason}");
                return;
            }
            await FailBeforeHeadAsync(exchange, frame?.Reset);
            return;
        }

        var head = frame.ResponseHead;
        var response = context.Response;
        exchange.Status = head.Status;
        if (exchange.Kind is VisitorKind.WebSocketHttp1 or VisitorKind.WebSocketHttp2 && head.Status == StatusCodes.Status101SwitchingProtocols)
        {
            tracker.MarkStreaming(exchange.Record, null);
            var (bytesIn, bytesOut, visitorGone, idleClosed) = await WebSocketRelay.RunAsync(context, stream, head, exchange.Kind, o.WebSocketIdleTimeout, logger);
            exchange.BytesIn = bytesIn;
            exchange.BytesOut = bytesOut;
            exchange.VisitorGone = visitorGone;
            if (idleClosed)
            {
                Interlocked.Increment(ref _webSocketIdleCloses);
                exchange.Failure = $"closed after {o.WebSocketIdleTimeout} without traffic (Gateway:WebSocketIdleTimeout)";
            }
            return;
        }
        response.StatusCode = head.Status;
        if (CopyResponseHeaders(head, response) is { } skipped)
        {
            LogHeadersSkipped(logger, exchange.Record.RequestId, string.Join(", ", skipped));
        }
        if (head.EndOfBody)
        {
            return;
        }
        tracker.MarkStreaming(exchange.Record, response.ContentLength);

        var aborted = context.RequestAborted;
        var body = response.BodyWriter;
        try
        {
            // Small answers arrive with their head; only flush the head alone when the body is not here yet.
            // A gRPC head that carries grpc-status is a Trailers-Only answer: it must leave as one HEADERS
            // frame with END_STREAM, or clients (grpc-js) see headers, an empty end and no status.
            if (!stream.TryRead(out frame))
            {
                if (exchange.Kind != VisitorKind.Grpc || !GrpcStatus.HasStatus(head.Headers))
                {
                    await response.StartAsync(aborted);
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
                            var flush = await body.WriteAsync(payload.Memory, aborted);
                            exchange.BytesOut += payload.Length;
                            stream.ReturnCredit(payload.Length);
                            if (flush.IsCanceled)
                            {
                                throw new OperationCanceledException();
                            }
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
                        // The answer broke off (agent lost, backend reset): abort, never end it as if whole.
                        exchange.Failure = $"response aborted mid-body: {frame.Reset.Reason}";
                        LogResponseAborted(logger, exchange.Record.RequestId, frame.Reset.Code.ToString(), frame.Reset.Reason);
                        if (exchange.Kind == VisitorKind.Grpc && GrpcStatus.TryWriteTrailers(context, GrpcStatus.Unavailable, $"the tunnel lost the call mid-response: {frame.Reset.Reason}"))
                        {
                            return;
                        }
                        context.Abort();
                        return;
                }
                frame = await stream.ReadAsync(aborted);
            }
        }
        catch (OperationCanceledException)
        {
            exchange.VisitorGone = true;
            stream.Reset(ResetCode.Cancelled, "the visitor disconnected");
        }
        catch (Exception ex) when (ex is IOException)
        {
            exchange.VisitorGone = true;
            stream.Reset(ResetCode.Cancelled, "the visitor disconnected");
        }
    }

    private async Task FailBeforeHeadAsync(Exchange exchange, Reset? reset)
    {
        var (status, message) = reset?.Code switch
        {
            ResetCode.BackendUnavailable => (StatusCodes.Status502BadGateway, $"the backend refused or reset the connection: {reset.Reason}"),
            ResetCode.BackendTimeout => (StatusCodes.Status504GatewayTimeout, $"the backend timed out: {reset.Reason}"),
            ResetCode.Refused => (StatusCodes.Status503ServiceUnavailable, $"the agent refused the request: {reset.Reason}"),
            ResetCode.UnknownService => (StatusCodes.Status502BadGateway, $"the agent does not serve this service: {reset.Reason}"),
            ResetCode.Cancelled when exchange.Context.RequestAborted.IsCancellationRequested => (0, ""),
            _ => (StatusCodes.Status502BadGateway, $"the agent was lost before it answered: {reset?.Reason ?? "the stream ended"}"),
        };
        if (status == 0)
        {
            exchange.VisitorGone = true;
            return;
        }
        exchange.Status = status;
        exchange.Failure = message;
        if (status == StatusCodes.Status503ServiceUnavailable)
        {
            exchange.Context.Response.Headers.RetryAfter = ((int)Math.Ceiling(options.CurrentValue.RetryAfter.TotalSeconds)).ToString();
        }
        await WriteErrorAsync(exchange.Context, status, message);
    }

    private bool IsTrustedProxy(HttpContext context, GatewayOptions o)
    {
        if (o.TrustedProxies.Count == 0)
        {
            return false;
        }
        if (!ReferenceEquals(_trustedProxiesSource, o.TrustedProxies))
        {
            _trustedProxies = VisitorAccess.ParseNetworks(o.TrustedProxies);
            _trustedProxiesSource = o.TrustedProxies;
        }
        return VisitorAccess.Contains(_trustedProxies!, context.Connection.RemoteIpAddress);
    }

    private static RequestHead BuildHead(HttpContext context, string requestId, string service, string host, bool hasBody, TimeSpan timeout, VisitorKind kind, bool trustedPeer)
    {
        var request = context.Request;
        var rawTarget = context.Features.Get<IHttpRequestFeature>()?.RawTarget;
        var head = new RequestHead
        {
            RequestId = requestId,
            Service = service,
            Method = request.Method,
            Scheme = request.Scheme,
            Authority = request.Host.Value ?? host,
            // Origin-form targets travel as sent; an absolute-form target (already checked against Host by
            // Kestrel) travels as its path and query.
            PathAndQuery = string.IsNullOrEmpty(rawTarget) || !rawTarget.StartsWith('/') ? request.Path.Value + request.QueryString.Value : rawTarget,
            Protocol = kind switch
            {
                VisitorKind.Grpc => OrleansTunnel.Protocol.V1.Protocol.Grpc,
                VisitorKind.WebSocketHttp1 or VisitorKind.WebSocketHttp2 => OrleansTunnel.Protocol.V1.Protocol.Websocket,
                _ when request.Protocol == "HTTP/2" => OrleansTunnel.Protocol.V1.Protocol.Http2,
                _ => OrleansTunnel.Protocol.V1.Protocol.Http1,
            },
            // A WebSocket's "body" is its byte stream after the handshake.
            EndOfBody = !hasBody && kind is not (VisitorKind.WebSocketHttp1 or VisitorKind.WebSocketHttp2),
            TimeoutMs = (uint)Math.Min(timeout.TotalMilliseconds, uint.MaxValue),
            HttpVersion = request.Protocol switch { "HTTP/2" => "2", "HTTP/1.0" => "1.0", _ => "1.1" },
        };
        if (kind == VisitorKind.WebSocketHttp2)
        {
            // RFC 8441 extended CONNECT becomes an ordinary WebSocket handshake (GET + Upgrade) at the agent.
            head.Method = "GET";
        }
        var headers = request.Headers;
        var connectionNamed = HopByHop.NamedBy(headers.Connection);
        foreach (var (name, values) in headers)
        {
            if (name.StartsWith(':') || (IsForwardingHeader(name) && !trustedPeer) || name.Equals("Host", StringComparison.OrdinalIgnoreCase)
                || (trustedPeer && name.Equals("X-Forwarded-For", StringComparison.OrdinalIgnoreCase)))
            {
                continue;
            }
            foreach (var value in values)
            {
                if (value is not null && !HopByHop.ShouldDrop(name, value, connectionNamed))
                {
                    head.Headers.Add(name, value);
                }
            }
        }
        // Forwarding headers come from what the gateway saw, never from the visitor (replaced, not appended),
        // unless the peer is a trusted proxy: then its X-Forwarded-For is extended and its other forwarding headers kept.
        var remote = context.Connection.RemoteIpAddress;
        string? peer = remote is null ? null : (remote.IsIPv4MappedToIPv6 ? remote.MapToIPv4() : remote).ToString();
        string? incomingFor = trustedPeer ? string.Join(", ", headers["X-Forwarded-For"].Where(v => !string.IsNullOrWhiteSpace(v))) : null;
        string? forwardedFor = string.IsNullOrEmpty(incomingFor) ? peer : peer is null ? incomingFor : incomingFor + ", " + peer;
        if (forwardedFor is not null)
        {
            head.Headers.Add("X-Forwarded-For", forwardedFor);
        }
        if (!trustedPeer || headers["X-Forwarded-Proto"].Count == 0)
        {
            head.Headers.Add("X-Forwarded-Proto", request.Scheme);
        }
        if (!trustedPeer || headers["X-Forwarded-Host"].Count == 0)
        {
            head.Headers.Add("X-Forwarded-Host", request.Host.Value ?? host);
        }
        return head;
    }

    private static bool IsForwardingHeader(string name) =>
        name.Equals("X-Forwarded-For", StringComparison.OrdinalIgnoreCase)
        || name.Equals("X-Forwarded-Proto", StringComparison.OrdinalIgnoreCase)
        || name.Equals("X-Forwarded-Host", StringComparison.OrdinalIgnoreCase)
        || name.Equals("Forwarded", StringComparison.OrdinalIgnoreCase);

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
            if (HopByHop.ShouldDrop(h.Name, h.Value, connectionNamed) || h.Name.StartsWith(':'))
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

    private static bool HasBody(HttpRequest request)
    {
        var detection = request.HttpContext.Features.Get<IHttpRequestBodyDetectionFeature>();
        return detection?.CanHaveBody ?? (request.ContentLength > 0 || request.Headers.TransferEncoding.Count > 0);
    }

    /// <summary>Lower-cased host without port or trailing dot; null when absent.</summary>
    public static string? NormalizeHost(HostString host)
    {
        if (!host.HasValue)
        {
            return null;
        }
        var h = host.Host;
        if (h.Length == 0)
        {
            return null;
        }
        if (h.StartsWith('[') && h.EndsWith(']'))
        {
            h = h[1..^1];
        }
        return h.TrimEnd('.').ToLowerInvariant();
    }

    /// <summary>Writes a gateway-made error: status and a one-line body naming the cause.</summary>
    public static async Task WriteErrorAsync(HttpContext context, int status, string message, int? grpcCode = null)
    {
        var response = context.Response;
        if (VisitorProtocol.Detect(context) == VisitorKind.Grpc)
        {
            // gRPC callers get a gRPC status in a trailers-only response, never an HTTP error page.
            if (!GrpcStatus.TryWriteTrailersOnly(context, grpcCode ?? GrpcStatus.FromHttp(status), message)
                && !GrpcStatus.TryWriteTrailers(context, grpcCode ?? GrpcStatus.FromHttp(status), message))
            {
                context.Abort();
            }
            return;
        }
        if (response.HasStarted)
        {
            context.Abort();
            return;
        }
        response.StatusCode = status;
        response.ContentType = "text/plain; charset=utf-8";
        response.Headers.CacheControl = "no-store";
        try
        {
            await response.WriteAsync("otun: " + message + "\n", context.RequestAborted);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException)
        {
            // The visitor is gone; nothing to tell.
        }
    }

    [LoggerMessage(EventId = 501, EventName = "ResponseHeadersSkipped", Level = LogLevel.Warning,
        Message = "Request {RequestId}: the backend sent response fields that HTTP cannot carry as they are ({Names}); they were dropped. Encode them (RFC 8187) in the backend.")]
    private static partial void LogHeadersSkipped(ILogger logger, string requestId, string names);

    [LoggerMessage(EventId = 500, EventName = "ResponseAborted", Level = LogLevel.Information,
        Message = "Request {RequestId}: the response broke off mid-body ({Code}: {Reason}); the visitor's connection was aborted so it cannot mistake it for a whole answer.")]
    private static partial void LogResponseAborted(ILogger logger, string requestId, string code, string reason);

    /// <summary>What one request did, gathered for its grain's outcome.</summary>
    private sealed class Exchange(HttpContext context, MuxStream stream, RequestTracker.Record record)
    {
        public HttpContext Context { get; } = context;
        public MuxStream Stream { get; } = stream;
        public RequestTracker.Record Record { get; } = record;
        public int Status { get; set; }
        public long BytesIn { get; set; }
        public long BytesOut { get; set; }
        public bool VisitorGone { get; set; }
        public bool Timeout { get; set; }
        public (int Status, string Reason) RequestRejected { get; set; }
        public VisitorKind Kind { get; init; }
        public TimeSpan HeadTimeout { get; init; }
        public string? Failure { get; set; }

        public RequestOutcome Outcome()
        {
            var state = VisitorGone ? RequestState.Cancelled
                : Timeout ? RequestState.TimedOut
                : Failure is not null ? RequestState.Failed
                : RequestState.Completed;
            return new RequestOutcome(state, Status, Failure, BytesIn, BytesOut, DateTimeOffset.UtcNow);
        }
    }
}
