namespace OrleansTunnel.Grains;

/// <summary>
/// The shared circuits of the routing grain (issue 17): which (agent session, service) some gateway found
/// broken. Runtime state only, pushed inside the routing snapshot, so every gateway's dispatcher reads it
/// locally; gateways call here only when a circuit changes (open, probe claim, close).
/// </summary>
public sealed partial class RoutingGrain
{
    private readonly Dictionary<(string Session, string Service), SharedCircuit> _circuits = [];

    public Task OpenCircuit(SharedCircuit circuit, int maxEntries)
    {
        _circuits[(circuit.SessionId, circuit.Service)] = circuit with { ProbeBy = null, ProbeUntil = null };
        PruneCircuits(DateTimeOffset.UtcNow, Math.Max(1, maxEntries));
        Changed();
        return Task.CompletedTask;
    }

    public Task<bool> ClaimCircuitProbe(string sessionId, string service, string gatewayId, TimeSpan lease)
    {
        var now = DateTimeOffset.UtcNow;
        if (!_circuits.TryGetValue((sessionId, service), out var c) || c.ExpiresAt <= now)
        {
            return Task.FromResult(true);
        }
        if (c.IsOpenAt(now) || (c.ProbeBy is { } holder && holder != gatewayId && c.ProbeUntil > now))
        {
            return Task.FromResult(false);
        }
        _circuits[(sessionId, service)] = c with { ProbeBy = gatewayId, ProbeUntil = now + lease };
        Changed();
        return Task.FromResult(true);
    }

    public Task CloseCircuit(string sessionId, string service, string gatewayId)
    {
        if (_circuits.Remove((sessionId, service)))
        {
            Changed();
        }
        return Task.CompletedTask;
    }

    /// <summary>The circuits for a snapshot: those past their expiry, and those of sessions no live gateway holds, are dropped.</summary>
    private SharedCircuit[] CircuitsForSnapshot(bool directoryIncomplete)
    {
        if (_circuits.Count == 0)
        {
            return [];
        }
        var now = DateTimeOffset.UtcNow;
        HashSet<string>? live = directoryIncomplete ? null
            : _gateways.Values.SelectMany(g => g.Sessions.Select(s => s.SessionId)).ToHashSet(StringComparer.Ordinal);
        foreach (var (key, c) in _circuits.ToArray())
        {
            if (c.ExpiresAt <= now || (live is not null && !live.Contains(c.SessionId)))
            {
                _circuits.Remove(key);
            }
        }
        return [.. _circuits.Values.OrderBy(c => c.Service, StringComparer.Ordinal).ThenBy(c => c.SessionId, StringComparer.Ordinal)];
    }

    private void PruneCircuits(DateTimeOffset now, int maxEntries)
    {
        foreach (var (key, c) in _circuits.ToArray())
        {
            if (c.ExpiresAt <= now)
            {
                _circuits.Remove(key);
            }
        }
        // Over the cap: the circuits closest to their end go first (they would be probed soonest anyway).
        foreach (var (key, _) in _circuits.OrderBy(kv => kv.Value.OpenUntil).Take(Math.Max(0, _circuits.Count - maxEntries)).ToArray())
        {
            _circuits.Remove(key);
        }
    }

    /// <summary>Called by the expiry timer: drops circuits past their expiry and pushes when any went.</summary>
    private void ExpireCircuits()
    {
        var now = DateTimeOffset.UtcNow;
        int before = _circuits.Count;
        PruneCircuits(now, int.MaxValue);
        if (_circuits.Count != before)
        {
            Changed();
        }
    }
}
