using Orleans.Runtime;
using Orleans.Utilities;
using Microsoft.Extensions.Logging;

namespace OrleansTunnel.Grains;

/// <summary>Persisted part of the routing table.</summary>
[GenerateSerializer, Alias("OrleansTunnel.RoutingState")]
public sealed class RoutingState
{
    [Id(0)]
    public List<Route> Routes { get; set; } = [];

    [Id(1)]
    public List<AgentCredential> Credentials { get; set; } = [];

    /// <summary>Token hashes revoked through the admin API (configured credentials cannot be removed from files).</summary>
    [Id(2)]
    public List<string> RevokedTokens { get; set; } = [];

    /// <summary>Run-time TCP/UDP listeners (issue 15; Id 7 mirrors the snapshot's).</summary>
    [Id(7)]
    public List<L4Mapping> L4Services { get; set; } = [];
}

/// <inheritdoc cref="IRoutingGrain"/>
public sealed partial class RoutingGrain(
    [PersistentState("routing", RoutingGrain.StorageName)] IPersistentState<RoutingState> state,
    Microsoft.Extensions.Options.IOptions<DirectoryOptions> directoryOptions,
    ILogger<RoutingGrain> logger) : Grain, IRoutingGrain
{
    /// <summary>The one routing table's key.</summary>
    public const string DefaultKey = "default";

    /// <summary>Name of the grain storage provider that holds durable control state.</summary>
    public const string StorageName = "tunnel";

    private readonly ObserverManager<IRoutingObserver> _observers = new(TimeSpan.FromMinutes(2), logger);
    // The gateway directory: runtime state only. A fresh activation (its silo died) relearns it from
    // the gateways' next reports, within one Gateway:ClusterHeartbeatInterval.
    private readonly Dictionary<string, LiveGateway> _gateways = new(StringComparer.Ordinal);
    private readonly Dictionary<(string, long), DateTimeOffset> _dead = [];
    private readonly Dictionary<string, DateTimeOffset> _fenced = new(StringComparer.Ordinal);
    private IGrainTimer? _expiry;
    private readonly DateTimeOffset _activatedAt = DateTimeOffset.UtcNow;
    private DateTimeOffset? _lastExpiryTick;

    private sealed record LiveGateway(GatewayInfo Info, HeldSession[] Sessions, DateTimeOffset LastReport);
    private RoutingSnapshot? _snapshot;
    private long _version;

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        // The directory starts empty: once every live gateway had its time to report, push a complete snapshot.
        this.RegisterGrainTimer(_ =>
        {
            Changed();
            return Task.CompletedTask;
        }, new GrainTimerCreationOptions(directoryOptions.Value.GatewayTimeToLive, Timeout.InfiniteTimeSpan));
        return base.OnActivateAsync(cancellationToken);
    }

    public Task<RoutingSnapshot> GetSnapshot() => Task.FromResult(Snapshot());

    public async Task<RoutingSnapshot> UpsertRoute(Route route)
    {
        var normalized = Normalize(route);
        var (routesBefore, credentialsBefore) = Before();
        state.State.Routes.RemoveAll(r => SameKey(r, normalized.Host, normalized.PathPrefix));
        state.State.Routes.Add(normalized);
        await SaveAsync(routesBefore, credentialsBefore, $"route {normalized.Host}{normalized.PathPrefix}");
        return Changed();
    }

    public async Task<bool> RemoveRoute(string host, string? pathPrefix)
    {
        var key = Normalize(new Route(host, pathPrefix, "-"));
        var (routesBefore, credentialsBefore) = Before();
        int removed = state.State.Routes.RemoveAll(r => SameKey(r, key.Host, key.PathPrefix));
        if (removed == 0)
        {
            return false;
        }
        await SaveAsync(routesBefore, credentialsBefore, $"removal of route {key.Host}{key.PathPrefix}");
        Changed();
        return true;
    }

    public async Task UpsertCredential(AgentCredential credential)
    {
        var (routesBefore, credentialsBefore) = Before();
        state.State.Credentials.RemoveAll(c => c.AgentId == credential.AgentId);
        state.State.Credentials.Add(credential with { TokenSha256 = credential.TokenSha256.ToLowerInvariant() });
        await SaveAsync(routesBefore, credentialsBefore, $"credential of agent '{credential.AgentId}'");
        Changed();
    }

    public async Task<bool> RemoveCredential(string agentId)
    {
        var (routesBefore, credentialsBefore) = Before();
        if (state.State.Credentials.RemoveAll(c => c.AgentId == agentId) == 0)
        {
            return false;
        }
        await SaveAsync(routesBefore, credentialsBefore, $"removal of agent '{agentId}''s credential");
        Changed();
        return true;
    }

    /// <summary>Most revoked token hashes kept; beyond, the oldest are dropped (rotate those agents' configuration).</summary>
    public const int MaxRevokedTokens = 10_000;

    public async Task<int> RevokeTokens(string[] tokenSha256s)
    {
        var revokedBefore = new List<string>(state.State.RevokedTokens);
        int added = 0;
        foreach (var hash in tokenSha256s.Select(h => h.ToLowerInvariant()).Where(h => h.Length == 64 && h.All(Uri.IsHexDigit)))
        {
            if (!state.State.RevokedTokens.Contains(hash))
            {
                state.State.RevokedTokens.Add(hash);
                added++;
            }
        }
        if (added == 0)
        {
            return 0;
        }
        if (state.State.RevokedTokens.Count > MaxRevokedTokens)
        {
            state.State.RevokedTokens.RemoveRange(0, state.State.RevokedTokens.Count - MaxRevokedTokens);
        }
        var (routesBefore, credentialsBefore) = Before();
        try
        {
            await SaveAsync(routesBefore, credentialsBefore, "token revocation");
        }
        catch (DurableStateUnavailableException)
        {
            state.State.RevokedTokens = revokedBefore;
            throw;
        }
        Changed();
        return added;
    }

    public async Task<RoutingSnapshot> UpsertL4Service(L4Mapping mapping)
    {
        var before = new List<L4Mapping>(state.State.L4Services);
        state.State.L4Services.RemoveAll(m => m.SameKey(mapping.Protocol, mapping.Listen));
        state.State.L4Services.Add(mapping with { Protocol = mapping.Protocol.ToLowerInvariant() });
        await SaveL4Async(before, $"{mapping.Protocol} listener {mapping.Listen}");
        return Changed();
    }

    public async Task<bool> RemoveL4Service(string protocol, string listen)
    {
        var before = new List<L4Mapping>(state.State.L4Services);
        if (state.State.L4Services.RemoveAll(m => m.SameKey(protocol, listen)) == 0)
        {
            return false;
        }
        await SaveL4Async(before, $"removal of {protocol} listener {listen}");
        Changed();
        return true;
    }

    private async Task SaveL4Async(List<L4Mapping> before, string change)
    {
        try
        {
            await SaveAsync([.. state.State.Routes], [.. state.State.Credentials], change);
        }
        catch (DurableStateUnavailableException)
        {
            state.State.L4Services = before;
            throw;
        }
    }

    private (List<Route> Routes, List<AgentCredential> Credentials) Before() => ([.. state.State.Routes], [.. state.State.Credentials]);

    /// <summary>
    /// Writes the durable state; when the storage refuses (Redis unavailable), the change is undone in
    /// memory too, so what gateways are told always matches what survives a restart, and the caller gets
    /// a message naming the storage.
    /// </summary>
    private async Task SaveAsync(List<Route> routesBefore, List<AgentCredential> credentialsBefore, string change)
    {
        try
        {
            await state.WriteStateAsync();
        }
        catch (Exception ex)
        {
            state.State.Routes = routesBefore;
            state.State.Credentials = credentialsBefore;
            LogSaveFailed(logger, change, ex.GetType().Name, ex.Message);
            // The storage's own exception nests several levels with stack traces: the innermost cause's first line says it.
            var cause = ex.GetBaseException();
            string why = cause.Message.Split('\n', 2)[0].Trim();
            why = why.Length > 240 ? why[..240] + "..." : why;
            throw new DurableStateUnavailableException(
                $"the {change} was not saved: the durable storage (Redis, Cluster:Redis) did not accept the write ({cause.GetType().Name}: {why}); nothing changed, retry once Redis is back");
        }
    }

    public Task<GatewayReportResult> ReportGateway(GatewayReport report)
    {
        var info = report.Gateway;
        if (_dead.ContainsKey((info.GatewayId, info.Incarnation)))
        {
            return Task.FromResult(new GatewayReportResult(false,
                $"gateway '{info.GatewayId}' incarnation {info.Incarnation} was declared dead (no report within {directoryOptions.Value.GatewayTimeToLive}); rejoin with a new incarnation",
                NextIncarnation: Math.Max(info.Incarnation, _dead.Keys.Where(k => k.Item1 == info.GatewayId).Max(k => k.Item2)) + 1));
        }
        var sessions = report.Sessions.Where(s => !_fenced.ContainsKey(s.SessionId)).ToArray();
        var now = DateTimeOffset.UtcNow;
        bool changed = true;
        if (_gateways.TryGetValue(info.GatewayId, out var known))
        {
            if (known.Info.Incarnation > info.Incarnation)
            {
                return Task.FromResult(new GatewayReportResult(false,
                    $"gateway '{info.GatewayId}' already joined with a newer incarnation ({known.Info.Incarnation} > {info.Incarnation}); is a second process using this gateway id?",
                    NewerIncarnationExists: true, NextIncarnation: known.Info.Incarnation + 1));
            }
            changed = known.Info != info || !SameSessions(known.Sessions, sessions);
        }
        else
        {
            LogGatewayJoined(logger, info.GatewayId, info.Incarnation, info.TunnelUrl);
        }
        _gateways[info.GatewayId] = new LiveGateway(info, sessions, now);
        var ttl = directoryOptions.Value.GatewayTimeToLive;
        _expiry ??= this.RegisterGrainTimer(ExpireGateways, new GrainTimerCreationOptions(ttl / 3, ttl / 3) { KeepAlive = true });
        var snapshot = changed ? Changed() : Snapshot();
        return Task.FromResult(new GatewayReportResult(true, null, snapshot.Version));
    }

    public Task LeaveGateway(string gatewayId, long incarnation)
    {
        if (_gateways.TryGetValue(gatewayId, out var known) && known.Info.Incarnation == incarnation)
        {
            _gateways.Remove(gatewayId);
            LogGatewayLeft(logger, gatewayId, incarnation);
            Changed();
        }
        return Task.CompletedTask;
    }

    public Task FenceSessions(string[] sessionIds)
    {
        var now = DateTimeOffset.UtcNow;
        bool changed = false;
        foreach (var id in sessionIds)
        {
            _fenced[id] = now;
            foreach (var (gatewayId, live) in _gateways.ToArray())
            {
                if (live.Sessions.Any(s => s.SessionId == id))
                {
                    _gateways[gatewayId] = live with { Sessions = [.. live.Sessions.Where(s => s.SessionId != id)] };
                    changed = true;
                }
            }
        }
        if (changed)
        {
            Changed();
        }
        return Task.CompletedTask;
    }

    private Task ExpireGateways(CancellationToken cancellationToken)
    {
        ExpireCircuits();
        var now = DateTimeOffset.UtcNow;
        var ttl = directoryOptions.Value.GatewayTimeToLive;
        var lastTick = _lastExpiryTick;
        _lastExpiryTick = now;
        if (lastTick is { } previous && now - previous > ttl / 3 * 2)
        {
            // This tick is late: the silo was paused or overloaded, and reports may have waited behind
            // it. Declare no one dead on this tick; the next one judges with fresh reports.
            return Task.CompletedTask;
        }
        bool changed = false;
        foreach (var (id, live) in _gateways.ToArray())
        {
            if (now - live.LastReport > ttl)
            {
                _gateways.Remove(id);
                _dead[(id, live.Info.Incarnation)] = now;
                LogGatewayDeclaredDead(logger, id, live.Info.Incarnation, ttl.TotalSeconds, live.Sessions.Length);
                changed = true;
                foreach (var session in live.Sessions)
                {
                    // The agents' records drop the dead gateway's sessions now, not at their own time-to-live.
                    _ = GrainFactory.GetGrain<IAgentGrain>(session.AgentId).CloseSession(session.SessionId);
                }
            }
        }
        // Fencing records only need to outlive the reports that could still carry them.
        foreach (var (key, at) in _dead.ToArray())
        {
            if (now - at > TimeSpan.FromHours(1))
            {
                _dead.Remove(key);
            }
        }
        foreach (var (key, at) in _fenced.ToArray())
        {
            if (now - at > ttl * 4)
            {
                _fenced.Remove(key);
            }
        }
        if (changed)
        {
            Changed();
        }
        return Task.CompletedTask;
    }

    private static bool SameSessions(HeldSession[] a, HeldSession[] b) =>
        a.Length == b.Length && a.Zip(b).All(p => p.First.SessionId == p.Second.SessionId && p.First.Services.SequenceEqual(p.Second.Services)
            && (p.First.Unhealthy ?? []).SequenceEqual(p.Second.Unhealthy ?? []));

    public Task<RoutingSnapshot> Subscribe(IRoutingObserver observer)
    {
        _observers.Subscribe(observer, observer);
        return Task.FromResult(Snapshot());
    }

    public Task Unsubscribe(IRoutingObserver observer)
    {
        _observers.Unsubscribe(observer);
        return Task.CompletedTask;
    }

    private RoutingSnapshot Changed()
    {
        _snapshot = null;
        var snapshot = Snapshot();
        _ = _observers.Notify(o => o.OnRoutingChanged(snapshot));
        return snapshot;
    }

    private RoutingSnapshot Snapshot()
    {
        if (_snapshot is not null)
        {
            return _snapshot;
        }
        // Versions only grow, also across re-activations, so gateways can ignore stale pushes.
        _version = Math.Max(_version + 1, DateTimeOffset.UtcNow.UtcTicks);
        // A service its agent reports unhealthy (health checks) leaves the endpoints every gateway dispatches to.
        var all = _gateways.Values
            .SelectMany(g => g.Sessions.SelectMany(s => s.Services.Select(service => (service, healthy: s.Unhealthy is null || Array.IndexOf(s.Unhealthy, service) < 0, ep: new ServiceEndpoint(s.AgentId, s.SessionId, g.Info.GatewayId)))))
            .ToArray();
        var endpoints = all.Where(x => x.healthy)
            .GroupBy(x => x.service, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.Select(x => x.ep).ToArray(), StringComparer.Ordinal);
        var unhealthy = all.Where(x => !x.healthy)
            .GroupBy(x => x.service, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.Select(x => x.ep).ToArray(), StringComparer.Ordinal);
        var gateways = _gateways.Values.Select(g => g.Info).OrderBy(g => g.GatewayId, StringComparer.Ordinal).ToArray();
        // Every live gateway reports within the time-to-live: until then this fresh activation's directory may miss some.
        bool incomplete = DateTimeOffset.UtcNow - _activatedAt < directoryOptions.Value.GatewayTimeToLive;
        return _snapshot = new RoutingSnapshot(_version, [.. state.State.Routes], endpoints, [.. state.State.Credentials], gateways, incomplete, [.. state.State.RevokedTokens],
            L4Services: [.. state.State.L4Services], UnhealthyEndpoints: unhealthy, Circuits: CircuitsForSnapshot(incomplete));
    }

    private static bool SameKey(Route route, string host, string? pathPrefix) =>
        string.Equals(route.Host, host, StringComparison.Ordinal) && string.Equals(route.PathPrefix, pathPrefix, StringComparison.Ordinal);

    /// <summary>Lower-cases the host, drops a trailing slash of the prefix and names the path mode one way, so equal rules compare equal.</summary>
    public static Route Normalize(Route route)
    {
        string host = route.Host.Trim().TrimEnd('.').ToLowerInvariant();
        string? prefix = string.IsNullOrWhiteSpace(route.PathPrefix) || route.PathPrefix == "/" ? null : "/" + route.PathPrefix.Trim().Trim('/');
        // Canonical is the default and is stored as null; "raw" is the only other mode.
        string? pathMode = string.Equals(route.PathMode?.Trim(), "raw", StringComparison.OrdinalIgnoreCase) ? "raw" : null;
        return route with { Host = host, PathPrefix = prefix, Service = route.Service.Trim(), PathMode = pathMode };
    }
}

public sealed partial class RoutingGrain
{
    [LoggerMessage(EventId = 219, EventName = "DurableStateSaveFailed", Level = LogLevel.Error,
        Message = "The {Change} was not saved and was undone: the grain storage refused the write ({Error}: {Message}). Check Redis (Cluster:Redis); routes and credentials already saved keep working.")]
    private static partial void LogSaveFailed(ILogger logger, string change, string error, string message);

    [LoggerMessage(EventId = 210, EventName = "GatewayJoined", Level = LogLevel.Information,
        Message = "Gateway '{GatewayId}' joined the directory (incarnation {Incarnation}, tunnel {TunnelUrl}).")]
    private static partial void LogGatewayJoined(ILogger logger, string gatewayId, long incarnation, string tunnelUrl);

    [LoggerMessage(EventId = 211, EventName = "GatewayLeft", Level = LogLevel.Information,
        Message = "Gateway '{GatewayId}' (incarnation {Incarnation}) left the directory.")]
    private static partial void LogGatewayLeft(ILogger logger, string gatewayId, long incarnation);

    [LoggerMessage(EventId = 212, EventName = "GatewayDeclaredDead", Level = LogLevel.Warning,
        Message = "Gateway '{GatewayId}' (incarnation {Incarnation}) sent no report for {Seconds} s: declared dead; its {Sessions} agent session(s) left the routing and its incarnation is fenced. Its agents reconnect to other gateways.")]
    private static partial void LogGatewayDeclaredDead(ILogger logger, string gatewayId, long incarnation, double seconds, int sessions);
}
