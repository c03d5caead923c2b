using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Hosting;
using OrleansTunnel.Gateway.Routing;
using OrleansTunnel.Gateway.Tunnel;

namespace OrleansTunnel.Gateway.Admin;

/// <summary>
/// One endpoint of the admin port. Register implementations in DI; the admin listener dispatches to
/// them by path prefix. The admin port is never the public ingress.
/// </summary>
public interface IAdminEndpoint
{
    /// <summary>Path (exact) or prefix ending in '/' that this endpoint answers.</summary>
    string Path { get; }

    /// <summary>Whether the admin token is required (Gateway:AdminToken).</summary>
    bool RequiresToken { get; }

    Task HandleAsync(HttpContext context);
}

/// <summary>The gateway's admin listener: health, readiness, tunnels, and whatever else is registered.</summary>
public sealed class AdminEndpoints(
    IEnumerable<IAdminEndpoint> endpoints,
    RoutingSubscriber subscriber,
    IHostApplicationLifetime lifetime,
    ConnectionRegistry registry,
    Cluster.PeerLinks peers,
    GatewayDrain drain,
    AdminAuthorizer authorizer,
    AdminAudit audit,
    Inspector.InspectorSessions inspector,
    Microsoft.Extensions.Options.IOptionsMonitor<GatewayOptions> options)
{
    private readonly IAdminEndpoint[] _endpoints = [.. endpoints.OrderByDescending(e => e.Path.Length)];

    public Task HandleAsync(HttpContext context)
    {
        if (AdminHostCheck.Check(context, options.CurrentValue.AdminHosts) is { } misdirected)
        {
            return misdirected.ExecuteAsync(context);
        }
        string path = context.Request.Path.Value ?? "/";
        switch (path)
        {
            case "/healthz":
                return Results.Text("ok\n").ExecuteAsync(context);
            case "/readyz":
                // Draining (shutting down) answers 503 at once, so load balancers stop sending here
                // while the gateway still serves for Gateway:DrainDelay.
                bool started = lifetime.ApplicationStarted.IsCancellationRequested && !lifetime.ApplicationStopping.IsCancellationRequested && !drain.Draining;
                bool routing = subscriber.Ready.IsCompletedSuccessfully;
                return started && routing
                    ? Results.Text("ready\n").ExecuteAsync(context)
                    : Results.Text($"not ready: {(started ? "" : drain.Draining ? "draining (shutting down); " : "not started or stopping; ")}{(routing ? "" : "routing table not loaded from the cluster")}\n", statusCode: 503).ExecuteAsync(context);
            case "/tunnels":
                // Read-only view of this gateway's agent connections (no secrets): streams, ping RTT.
                return Results.Json(registry.All.Select(c => new
                {
                    agent = c.AgentId,
                    session = c.Session.SessionId,
                    slot = c.Session.Slot,
                    epoch = c.Session.Epoch,
                    services = c.Session.Services,
                    connectedAt = c.Session.ConnectedAt,
                    activeStreams = c.Mux.ActiveStreams,
                    queuedControlFrames = c.Mux.QueuedControlFrames,
                    rttMs = c.Mux.RoundTripTime?.TotalMilliseconds,
                    traffic = Traffic(c.Mux),
                    accepting = c.Accepting,
                    // Services the agent probes (health checks): healthy or not, the last probe's outcome, since when.
                    health = c.Health.States.ToDictionary(kv => kv.Key, kv => new { healthy = kv.Value.Healthy, detail = kv.Value.Detail, since = kv.Value.Since }),
                })).ExecuteAsync(context);
            case "/peers":
                // This gateway's links to the other gateways (it opens the streams on them): up or not, streams, ping RTT.
                // The link's connection is read once: one that drops meanwhile shows as down, never half.
                return Results.Json(peers.All.Select(l => (Link: l, Mux: l.Mux)).Select(p => new
                {
                    gateway = p.Link.Info.GatewayId,
                    url = p.Link.Info.TunnelUrl,
                    up = p.Mux is not null,
                    accepting = p.Link.Accepting,
                    activeStreams = p.Mux?.ActiveStreams ?? 0,
                    rttMs = p.Mux?.RoundTripTime?.TotalMilliseconds,
                    traffic = p.Mux is { } m ? Traffic(m) : null,
                })).ExecuteAsync(context);
        }
        foreach (var endpoint in _endpoints)
        {
            if (path == endpoint.Path || (endpoint.Path.EndsWith('/') && path.StartsWith(endpoint.Path, StringComparison.Ordinal)))
            {
                // The inspector page's session (cookie) stands in for the bearer token.
                if (!endpoint.RequiresToken)
                {
                    return endpoint.HandleAsync(context);
                }
                AdminPrincipal? who = null;
                if (!inspector.Allows(context, out who) && authorizer.Check(context, out who) is { } failure)
                {
                    return failure.ExecuteAsync(context);
                }
                return AdminAudit.IsChange(context.Request) ? audit.ChangeAsync(context, who!, endpoint) : endpoint.HandleAsync(context);
            }
        }
        return Results.Text("otun admin: unknown path\n", statusCode: 404).ExecuteAsync(context);
    }

    /// <summary>What the connection wrote and read: gRPC messages, frames, and frames per message (the writer's coalescing).</summary>
    private static object Traffic(Mux.MuxConnection mux)
    {
        var t = mux.Traffic;
        return new
        {
            messagesOut = t.MessagesWritten,
            framesOut = t.FramesWritten,
            framesPerMessageOut = t.MessagesWritten == 0 ? 0 : Math.Round((double)t.FramesWritten / t.MessagesWritten, 2),
            messagesIn = t.MessagesRead,
            framesIn = t.FramesRead,
            framesPerMessageIn = t.MessagesRead == 0 ? 0 : Math.Round((double)t.FramesRead / t.MessagesRead, 2),
        };
    }
}
