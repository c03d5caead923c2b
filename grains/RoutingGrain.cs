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
}

/// <inheritdoc cref="IRoutingGrain"/>
public sealed class RoutingGrain(
    [PersistentState("routing", RoutingGrain.StorageName)] IPersistentState<RoutingState> state,
    ILogger<RoutingGrain> logger) : Grain, IRoutingGrain
{
    /// <summary>The one routing table's key.</summary>
    public const string DefaultKey = "default";

    /// <summary>Name of the grain storage provider that holds durable control state.</summary>
    public const string StorageName = "tunnel";

    private readonly ObserverManager<IRoutingObserver> _observers = new(TimeSpan.FromMinutes(2), logger);
    private readonly Dictionary<string, Dictionary<string, ServiceEndpoint[]>> _endpointsByAgent = new(StringComparer.Ordinal);
    private RoutingSnapshot? _snapshot;
    private long _version;

    public Task<RoutingSnapshot> GetSnapshot() => Task.FromResult(Snapshot());

    public async Task<RoutingSnapshot> UpsertRoute(Route route)
    {
        var normalized = Normalize(route);
        state.State.Routes.RemoveAll(r => SameKey(r, normalized.Host, normalized.PathPrefix));
        state.State.Routes.Add(normalized);
        await state.WriteStateAsync();
        return Changed();
    }

    public async Task<bool> RemoveRoute(string host, string? pathPrefix)
    {
        var key = Normalize(new Route(host, pathPrefix, "-"));
        int removed = state.State.Routes.RemoveAll(r => SameKey(r, key.Host, key.PathPrefix));
        if (removed == 0)
        {
            return false;
        }
        await state.WriteStateAsync();
        Changed();
        return true;
    }

    public async Task UpsertCredential(AgentCredential credential)
    {
        state.State.Credentials.RemoveAll(c => c.AgentId == credential.AgentId);
        state.State.Credentials.Add(credential with { TokenSha256 = credential.TokenSha256.ToLowerInvariant() });
        await state.WriteStateAsync();
        Changed();
    }

    public async Task<bool> RemoveCredential(string agentId)
    {
        if (state.State.Credentials.RemoveAll(c => c.AgentId == agentId) == 0)
        {
            return false;
        }
        await state.WriteStateAsync();
        Changed();
        return true;
    }

    public Task SetAgentEndpoints(string agentId, Dictionary<string, ServiceEndpoint[]> endpointsByService)
    {
        if (endpointsByService.Count == 0)
        {
            _endpointsByAgent.Remove(agentId);
        }
        else
        {
            _endpointsByAgent[agentId] = endpointsByService;
        }
        Changed();
        return Task.CompletedTask;
    }

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
        var endpoints = new Dictionary<string, ServiceEndpoint[]>(StringComparer.Ordinal);
        foreach (var (service, list) in _endpointsByAgent.Values.SelectMany(d => d)
            .GroupBy(kv => kv.Key, StringComparer.Ordinal)
            .Select(g => (g.Key, g.SelectMany(kv => kv.Value).ToArray())))
        {
            endpoints[service] = list;
        }
        return _snapshot = new RoutingSnapshot(_version, [.. state.State.Routes], endpoints, [.. state.State.Credentials]);
    }

    private static bool SameKey(Route route, string host, string? pathPrefix) =>
        string.Equals(route.Host, host, StringComparison.Ordinal) && string.Equals(route.PathPrefix, pathPrefix, StringComparison.Ordinal);

    /// <summary>Lower-cases the host and drops a trailing slash of the prefix, so equal rules compare equal.</summary>
    public static Route Normalize(Route route)
    {
        string host = route.Host.Trim().TrimEnd('.').ToLowerInvariant();
        string? prefix = string.IsNullOrWhiteSpace(route.PathPrefix) || route.PathPrefix == "/" ? null : "/" + route.PathPrefix.Trim().Trim('/');
        return route with { Host = host, PathPrefix = prefix, Service = route.Service.Trim() };
    }
}
