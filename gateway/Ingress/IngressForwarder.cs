using System.Diagnostics;
using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;
using Microsoft.Extensions.Options;
using OrleansTunnel.Gateway.Routing;
using OrleansTunnel.Gateway.Telemetry;
using OrleansTunnel.Gateway.Tunnel;
using OrleansTunnel.Grains;
using OrleansTunnel.Mux;
using OrleansTunnel.Protocol.V1;

namespace OrleansTunnel.Gateway.Ingress;

/// <summary>
/// The visitor side of the gateway: matches a route, picks an agent connection, opens the request's
/// grain and streams the request and its response through the tunnel. Errors a visitor can act on get
/// a status and a one-line body naming the cause.
/// </summary>
public sealed class IngressForwarder(
    RoutingCache routing,
    OrleansTunnel.Gateway.Cluster.Dispatcher dispatcher,
    TunnelExchange exchange,
    ResponseRelay relay,
    PermitPool permits,
    TrustedProxies trustedProxies,
    OrleansTunnel.Gateway.Policy.RateLimitGate rateLimits,
    GatewayTelemetry telemetry,
    IOptionsMonitor<GatewayOptions> options,
    OrleansTunnel.Gateway.Identity.IdentityGate identity,
    IOptionsMonitor<OrleansTunnel.Gateway.Health.ResilienceOptions> resilience,
    OrleansTunnel.Gateway.Health.CircuitBreakers circuits,
    OrleansTunnel.Gateway.Requests.InFlightBounds bounds)
{
    /// <summary>Response header that carries the request id (also the request grain's key).</summary>
    public const string RequestIdHeader = TunnelExchange.RequestIdHeader;

    private long _rejections;
    private long _refusedBeforeForwarding;

    /// <summary>Requests this gateway is forwarding now, and its TCP connections and UDP flows (one bound: <see cref="OrleansTunnel.Gateway.Requests.InFlightBounds"/>).</summary>
    public long InFlight => bounds.InFlight;

    /// <summary>Requests refused by a limit (gateway-wide or an agent's budget) since start.</summary>
    public long Rejections => Interlocked.Read(ref _rejections);

    /// <summary>Requests whose head was sent to an agent since start (what agents could have seen).</summary>
    public long Forwarded => exchange.Forwarded;

    /// <summary>
    /// Requests the gateway answered itself with a 4xx before any agent saw them (malformed or
    /// ambiguous framing, Host problems, access denied, body too large) since start.
    /// </summary>
    public long RefusedBeforeForwarding => Interlocked.Read(ref _refusedBeforeForwarding);

    /// <summary>Tunnelled WebSockets closed by Gateway:WebSocketIdleTimeout since start.</summary>
    public long WebSocketIdleCloses => relay.WebSocketIdleCloses;

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
            await GatewayErrors.WriteAsync(context, StatusCodes.Status404NotFound, $"no route for host '{host}'");
            return;
        }
        // Routing, access and the backend must read one and the same path.
        if (CanonicalPath.Problem(CanonicalPath.PathOf(context.Features.Get<IHttpRequestFeature>()?.RawTarget ?? path)) is { } nonCanonical)
        {
            string? refusal = route.PathMode != CanonicalPath.Raw
                ? $"the request target is not canonical: {nonCanonical}; send the path without it"
                : routing.Current.Routes.HostChecksAccess(host)
                    ? $"the request target is not canonical ({nonCanonical}) and host '{host}' has routes that check access, which cannot be decided on such a path"
                    : null;
            if (refusal is not null)
            {
                telemetry.Refused("non-canonical-path");
                await RefuseAsync(context, StatusCodes.Status400BadRequest, refusal, closeConnection: false);
                return;
            }
        }
        // Identity headers come from the gateway only, never from a visitor (on every route).
        identity.StripForgeable(request.Headers);
        // Access is decided on the route that routing matched (same normalised host and path).
        var access = VisitorAccess.Check(context, route, trustedProxies, o);
        if (!access.Allowed)
        {
            if (access.Challenge is not null)
            {
                context.Response.Headers.WWWAuthenticate = access.Challenge;
            }
            await RefuseAsync(context, access.Status, access.Message!, closeConnection: false);
            return;
        }
        if (VisitorAccess.IsIdentity(route.Access))
        {
            // oidc / jwt: the gate answers itself (sign-in redirect, callback, logout, 401/403) or lets the request on.
            var outcome = await identity.AdmitAsync(context, route);
            if (outcome != OrleansTunnel.Gateway.Identity.IdentityGate.Outcome.Pass)
            {
                if (outcome == OrleansTunnel.Gateway.Identity.IdentityGate.Outcome.Refused)
                {
                    Interlocked.Increment(ref _refusedBeforeForwarding);
                    telemetry.Refused("identity");
                }
                return;
            }
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
        // Route policy after access: the rewritten target must stay canonical, then the cluster-wide rate limit.
        if (OrleansTunnel.Gateway.Policy.RequestRewriter.Prepare(context, route, PathAndQuery(context)) is { } rewriteProblem)
        {
            telemetry.Refused("rewrite");
            await RefuseAsync(context, StatusCodes.Status400BadRequest, rewriteProblem, closeConnection: false);
            return;
        }
        if (!await rateLimits.AdmitAsync(context, route))
        {
            telemetry.Refused("rate-limit");
            Interlocked.Increment(ref _refusedBeforeForwarding);
            return;
        }
        long started = Stopwatch.GetTimestamp();
        var activity = telemetry.StartRequest(context, route.Service);
        try
        {
            await InvokeRoutedAsync(context, o, host, path, route, started);
        }
        finally
        {
            telemetry.EndRequest(context, route.Service, started, activity);
        }
    }

    private async Task InvokeRoutedAsync(HttpContext context, GatewayOptions o, string host, string path, Route route, long routedAt)
    {
        OrleansTunnel.Gateway.Cluster.DispatchTarget? target = null;
        OrleansTunnel.Gateway.Health.RetryPlan? retry;
        try
        {
            target = await dispatcher.ChooseAsync(route.Service, context.RequestAborted);
            if (target is null)
            {
                await NoPathAsync(context, o, route.Service);
                return;
            }
            bool hasBody = VisitorProtocol.Detect(context) is not (VisitorKind.WebSocketHttp1 or VisitorKind.WebSocketHttp2) && TunnelExchange.HasBody(context.Request);
            retry = await OrleansTunnel.Gateway.Health.RetryPlan.ForAsync(context, hasBody, OrleansTunnel.Gateway.Health.RouteResilienceConfig.For(resilience.CurrentValue, route.Resilience),
                (excluded, avoidAgent) => dispatcher.ChooseAsync(route.Service, excluded, avoidAgent, context.RequestAborted), route.Service);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            return;
        }
        catch (BadHttpRequestException ex)
        {
            // Reading a small idempotent body ahead (to be able to retry it) hit a body rule (too large, malformed).
            if (target is not null)
            {
                dispatcher.Release(target);
            }
            await RefuseAsync(context, ex.StatusCode, $"the request body was rejected: {ex.Message}", closeConnection: true);
            return;
        }
        catch (Exception ex) when (ex is IOException or EndOfStreamException)
        {
            // The visitor's body broke off while it was read ahead: nobody is left to answer.
            if (target is not null)
            {
                dispatcher.Release(target);
            }
            return;
        }

        // At most two attempts: the retry plan (if any) names the second target when the first path failed.
        while (target is not null)
        {
            await InvokeOnceAsync(context, o, host, path, route, routedAt, target, retry);
            if (retry?.TakeNext() is not { } next)
            {
                return;
            }
            circuits.Retried(route.Service, retry.Reason ?? "unknown");
            retry.RewindBody(context.Request);
            target = next;
        }
    }

    private async Task NoPathAsync(HttpContext context, GatewayOptions o, string service)
    {
        // With no healthy path left because circuits are open, say so: the operator knows where to look.
        var open = circuits.OpenFor(service);
        string message = open.Length == 0
            ? $"no agent is connected for service '{service}'"
            : $"no healthy path for service '{service}': circuit open for " + string.Join(", ", open.Take(3).Select(c => $"agent '{c.AgentId}' session {c.SessionId} ({c.State}, last failure: {c.LastFailure})"))
                + (open.Length > 3 ? $" and {open.Length - 3} more" : "");
        await RejectAsync(context, o, message, GatewayTelemetry.Limits.NoAgent, service);
    }

    private async Task InvokeOnceAsync(HttpContext context, GatewayOptions o, string host, string path, Route route, long routedAt,
        OrleansTunnel.Gateway.Cluster.DispatchTarget target, OrleansTunnel.Gateway.Health.RetryPlan? retry)
    {
        // Gateway-wide bounds first (no grain call), then the agent's budget (a local permit, leased in batches).
        long inFlight = Interlocked.Increment(ref bounds.Total);
        var agentInFlight = bounds.ByAgent.GetOrAdd(target.AgentId, static _ => new StrongBox<long>());
        long agentCount = Interlocked.Increment(ref agentInFlight.Value);
        var serviceInFlight = bounds.ByService.GetOrAdd(route.Service, static _ => new StrongBox<long>());
        long serviceCount = Interlocked.Increment(ref serviceInFlight.Value);
        PermitResult permit = default;
        MuxStream? stream = null;
        try
        {
            if (inFlight > o.MaxInFlight)
            {
                await RejectAsync(context, o, $"the gateway is at its limit of {o.MaxInFlight} in-flight requests", GatewayTelemetry.Limits.GatewayInFlight, route.Service);
                return;
            }
            if (agentCount > o.EffectiveMaxInFlightPerAgent)
            {
                await RejectAsync(context, o, $"agent '{target.AgentId}' is at this gateway's limit of {o.EffectiveMaxInFlightPerAgent} in-flight requests per agent", GatewayTelemetry.Limits.AgentOnGateway, route.Service);
                return;
            }
            if (serviceCount > o.EffectiveMaxInFlightPerService)
            {
                await RejectAsync(context, o, $"service '{route.Service}' is at this gateway's limit of {o.EffectiveMaxInFlightPerService} in-flight requests per service", GatewayTelemetry.Limits.ServiceOnGateway, route.Service);
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
            catch (MuxStreamAbortedException ex)
            {
                // The session is closing: nothing was sent, so any request may go elsewhere.
                circuits.Abandoned(target.SessionId, route.Service);
                if (retry is not null && await retry.TryPlanAsync(target.SessionId, target.AgentId, null, ex.Reason, headSent: false))
                {
                    return;
                }
                await NoPathAsync(context, o, route.Service);
                return;
            }
            await exchange.ForwardAsync(context, o, route, host, path, target, stream, routedAt, retry);
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
            Interlocked.Decrement(ref agentInFlight.Value);
            Interlocked.Decrement(ref serviceInFlight.Value);
            Interlocked.Decrement(ref bounds.Total);
        }
    }

    /// <summary>The target as it would be forwarded (what <see cref="RequestHeadBuilder"/> puts in the head).</summary>
    private static string PathAndQuery(HttpContext context)
    {
        var rawTarget = context.Features.Get<IHttpRequestFeature>()?.RawTarget;
        return string.IsNullOrEmpty(rawTarget) || !rawTarget.StartsWith('/') ? context.Request.Path.Value + context.Request.QueryString.Value : rawTarget;
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
        await GatewayErrors.WriteAsync(context, status, message);
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
        await GatewayErrors.WriteAsync(context, StatusCodes.Status503ServiceUnavailable, message, limit ? GrpcStatus.ResourceExhausted : GrpcStatus.Unavailable);
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
}
