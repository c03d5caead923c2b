using System.Collections.Concurrent;

namespace OrleansTunnel.Gateway.Tunnel;

/// <summary>
/// The agent connections this gateway holds, indexed by service. Choosing one is a local read:
/// power of two choices on outstanding requests (fewest wins).
/// </summary>
public sealed class ConnectionRegistry
{
    private readonly ConcurrentDictionary<string, AgentConnection> _bySession = new(StringComparer.Ordinal);
    private volatile Dictionary<string, AgentConnection[]> _byService = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();

    public int Count => _bySession.Count;

    public IReadOnlyCollection<AgentConnection> All => [.. _bySession.Values];

    public event Action? Changed;

    /// <summary>Raised after a connection was added (with it).</summary>
    public event Action<AgentConnection>? Added;

    public void Add(AgentConnection connection)
    {
        lock (_gate)
        {
            _bySession[connection.Session.SessionId] = connection;
            Rebuild();
        }
        Added?.Invoke(connection);
        Changed?.Invoke();
    }

    public void Remove(AgentConnection connection)
    {
        lock (_gate)
        {
            if (!_bySession.TryRemove(new KeyValuePair<string, AgentConnection>(connection.Session.SessionId, connection)))
            {
                return;
            }
            Rebuild();
        }
        Changed?.Invoke();
    }

    /// <summary>Something about a connection changed that the directory should hear of (its services' health).</summary>
    public void NotifyChanged() => Changed?.Invoke();

    public AgentConnection? Find(string sessionId) => _bySession.GetValueOrDefault(sessionId);

    /// <summary>A connection serving the service that accepts new requests, or null.</summary>
    public AgentConnection? Choose(string service) => Choose(service, null);

    /// <summary>
    /// A connection serving the service that accepts new requests, whose agent reports the service healthy
    /// and that <paramref name="usable"/> allows (circuit breakers, a retry's exclusions), or null.
    /// </summary>
    public AgentConnection? Choose(string service, Func<AgentConnection, bool>? usable)
    {
        if (!_byService.TryGetValue(service, out var candidates))
        {
            return null;
        }
        bool Ok(AgentConnection c) => c.Accepting && c.Health.IsHealthy(service) && (usable is null || usable(c));
        int n = candidates.Length;
        if (n == 1)
        {
            return Ok(candidates[0]) ? candidates[0] : null;
        }
        // Power of two choices, then a scan if both picks are unusable.
        var a = candidates[Random.Shared.Next(n)];
        var b = candidates[Random.Shared.Next(n)];
        var best = Better(Ok(a) ? a : null, Ok(b) ? b : null);
        if (best is not null)
        {
            return best;
        }
        foreach (var c in candidates)
        {
            if (Ok(c))
            {
                best = Better(best, c);
            }
        }
        return best;
    }

    private static AgentConnection? Better(AgentConnection? x, AgentConnection? y) =>
        x is null ? y : y is null ? x : (y.Mux.ActiveStreams < x.Mux.ActiveStreams ? y : x);

    private void Rebuild()
    {
        var map = new Dictionary<string, List<AgentConnection>>(StringComparer.Ordinal);
        foreach (var c in _bySession.Values)
        {
            foreach (var s in c.Session.Services)
            {
                if (!map.TryGetValue(s, out var list))
                {
                    map[s] = list = [];
                }
                list.Add(c);
            }
        }
        _byService = map.ToDictionary(kv => kv.Key, kv => kv.Value.ToArray(), StringComparer.Ordinal);
    }
}
