using System.Collections.Concurrent;
using OrleansTunnel.Gateway.Routing;
using OrleansTunnel.Gateway.Tunnel;
using OrleansTunnel.Grains;
using OrleansTunnel.Mux;

namespace OrleansTunnel.Gateway.Cluster;

/// <summary>Where one request goes: an agent connection of this gateway, or another gateway's through a peer link.</summary>
public sealed class DispatchTarget
{
    public required MuxConnection Mux { get; init; }
    public required string AgentId { get; init; }
    public required string SessionId { get; init; }

    /// <summary>The gateway holding the agent's tunnel (this one for a local target).</summary>
    public required string HolderGatewayId { get; init; }

    /// <summary>That gateway's incarnation (recorded in the request's grain for fencing).</summary>
    public required long HolderIncarnation { get; init; }

    /// <summary>The local agent connection, or null when the request crosses to another gateway.</summary>
    public AgentConnection? Local { get; init; }

    public bool IsLocal => Local is not null;
}

/// <summary>
/// Chooses where a request goes: a local agent connection when this gateway holds one for the service
/// (power of two choices on outstanding requests); otherwise an agent session another gateway holds,
/// as the routing snapshot lists it, through the peer link to that gateway (power of two choices on this
/// gateway's outstanding requests to each remote session). Local knowledge only: no grain call.
/// </summary>
public sealed class Dispatcher(ConnectionRegistry registry, RoutingCache routing, PeerLinks peers, GatewayIdentity identity,
    OrleansTunnel.Gateway.Health.CircuitBreakers circuits)
{
    private readonly ConcurrentDictionary<string, int> _remoteOutstanding = new(StringComparer.Ordinal);
    private long _crossGateway;

    /// <summary>Requests sent to agents through another gateway since start.</summary>
    public long CrossGateway => Interlocked.Read(ref _crossGateway);

    public ValueTask<DispatchTarget?> ChooseAsync(string service, CancellationToken cancellationToken) =>
        ChooseAsync(service, null, null, cancellationToken);

    /// <summary>
    /// Like <see cref="ChooseAsync(string, CancellationToken)"/>, skipping sessions whose circuit is open
    /// for the service, the sessions in <paramref name="excluded"/> (a retry's failed path) and, when not
    /// null, every session of <paramref name="avoidAgent"/>. The target's half-open circuit, if any, is
    /// claimed for this request (its one probe).
    /// </summary>
    public async ValueTask<DispatchTarget?> ChooseAsync(string service, ISet<string>? excluded, string? avoidAgent, CancellationToken cancellationToken)
    {
        // A half-open circuit's probe may be claimed by another request between the check and the claim: choose again.
        for (int attempt = 0; attempt < 3; attempt++)
        {
            var target = await ChooseOnceAsync(service, excluded, avoidAgent, cancellationToken);
            if (target is null || await circuits.TryEnterAsync(target.SessionId, service))
            {
                return target;
            }
            Release(target);
            excluded = new HashSet<string>(excluded ?? (IEnumerable<string>)[], StringComparer.Ordinal) { target.SessionId };
        }
        return null;
    }

    private bool Allowed(string sessionId, string agentId, string service, ISet<string>? excluded, string? avoidAgent) =>
        (excluded is null || !excluded.Contains(sessionId)) && (avoidAgent is null || !string.Equals(agentId, avoidAgent, StringComparison.Ordinal))
        && circuits.Allows(sessionId, service);

    private async ValueTask<DispatchTarget?> ChooseOnceAsync(string service, ISet<string>? excluded, string? avoidAgent, CancellationToken cancellationToken)
    {
        if (registry.Choose(service, c => Allowed(c.Session.SessionId, c.AgentId, service, excluded, avoidAgent)) is { } local)
        {
            return new DispatchTarget
            {
                Mux = local.Mux, AgentId = local.AgentId, SessionId = local.Session.SessionId,
                HolderGatewayId = identity.GatewayId, HolderIncarnation = identity.Incarnation, Local = local,
            };
        }
        var snapshot = routing.Current.Snapshot;
        if (!snapshot.Endpoints.TryGetValue(service, out var endpoints))
        {
            return null;
        }
        var usable = Usable(endpoints, service, excluded, avoidAgent);
        if (usable.Length == 0)
        {
            // The links are kept up eagerly; this waits only right after a gateway joined or a link broke.
            var remote = endpoints.Where(e => e.GatewayId != identity.GatewayId && Allowed(e.SessionId, e.AgentId, service, excluded, avoidAgent)).Select(e => e.GatewayId);
            if (await peers.WaitAnyUpAsync(remote, cancellationToken) is null)
            {
                return null;
            }
            usable = Usable(endpoints, service, excluded, avoidAgent);
            if (usable.Length == 0)
            {
                return null;
            }
        }
        var a = usable[Random.Shared.Next(usable.Length)];
        var b = usable[Random.Shared.Next(usable.Length)];
        var pick = Outstanding(b.SessionId) < Outstanding(a.SessionId) ? b : a;
        var link = peers.Up(pick.GatewayId);
        if (link?.Mux is not { } mux)
        {
            return null;
        }
        _remoteOutstanding.AddOrUpdate(pick.SessionId, 1, (_, n) => n + 1);
        Interlocked.Increment(ref _crossGateway);
        return new DispatchTarget
        {
            Mux = mux, AgentId = pick.AgentId, SessionId = pick.SessionId,
            HolderGatewayId = pick.GatewayId, HolderIncarnation = link.Info.Incarnation,
        };
    }

    /// <summary>The request sent to the target ended.</summary>
    public void Release(DispatchTarget target)
    {
        if (!target.IsLocal)
        {
            _remoteOutstanding.AddOrUpdate(target.SessionId, 0, (_, n) => Math.Max(0, n - 1));
            if (_remoteOutstanding.TryGetValue(target.SessionId, out int left) && left == 0)
            {
                _remoteOutstanding.TryRemove(new KeyValuePair<string, int>(target.SessionId, 0));
            }
        }
    }

    private int Outstanding(string sessionId) => _remoteOutstanding.GetValueOrDefault(sessionId);

    /// <summary>The endpoints on other gateways whose link is up.</summary>
    private ServiceEndpoint[] Usable(ServiceEndpoint[] endpoints, string service, ISet<string>? excluded, string? avoidAgent) =>
        [.. endpoints.Where(e => e.GatewayId != identity.GatewayId && peers.Up(e.GatewayId) is not null && Allowed(e.SessionId, e.AgentId, service, excluded, avoidAgent))];
}
