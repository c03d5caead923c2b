using OrleansTunnel.Grains;

namespace OrleansTunnel.Gateway.Routing;

/// <summary>
/// The gateway's local copy of the cluster's routing table, replaced whole (copy-on-write) when the
/// routing grain pushes a newer version; older versions are ignored. Reads are lock-free.
/// </summary>
public sealed class RoutingCache : IRoutingObserver
{
    private volatile Compiled _current = new(RoutingSnapshot.Empty, new RouteTable([]));

    public sealed record Compiled(RoutingSnapshot Snapshot, RouteTable Routes);

    public Compiled Current => _current;

    /// <summary>Raised after a newer snapshot was applied.</summary>
    public event Action<RoutingSnapshot>? Changed;

    /// <summary>True once a snapshot from the cluster has been applied.</summary>
    public bool Loaded => _current.Snapshot.Version > 0;

    public Task OnRoutingChanged(RoutingSnapshot snapshot)
    {
        Apply(snapshot);
        return Task.CompletedTask;
    }

    /// <summary>
    /// A snapshot from a routing grain that was just re-activated may lack gateways that did not report
    /// to it yet: keep them, and their agents' endpoints, from the previous snapshot until it is complete.
    /// </summary>
    private static RoutingSnapshot KeepMissingGateways(RoutingSnapshot next, RoutingSnapshot previous)
    {
        var present = next.Gateways.Select(g => g.GatewayId).ToHashSet(StringComparer.Ordinal);
        var kept = previous.Gateways.Where(g => !present.Contains(g.GatewayId)).ToArray();
        if (kept.Length == 0)
        {
            return next;
        }
        var keptIds = kept.Select(g => g.GatewayId).ToHashSet(StringComparer.Ordinal);
        var endpoints = new Dictionary<string, ServiceEndpoint[]>(next.Endpoints, StringComparer.Ordinal);
        foreach (var (service, list) in previous.Endpoints)
        {
            var carried = list.Where(e => keptIds.Contains(e.GatewayId)).ToArray();
            if (carried.Length > 0)
            {
                endpoints[service] = [.. endpoints.GetValueOrDefault(service, []), .. carried];
            }
        }
        return next with { Gateways = [.. next.Gateways, .. kept], Endpoints = endpoints };
    }

    public void Apply(RoutingSnapshot snapshot)
    {
        while (true)
        {
            var current = _current;
            if (snapshot.Version <= current.Snapshot.Version)
            {
                return;
            }
            var next = new Compiled(snapshot.GatewaysIncomplete ? KeepMissingGateways(snapshot, current.Snapshot) : snapshot, new RouteTable(snapshot.Routes));
            if (Interlocked.CompareExchange(ref _current, next, current) == current)
            {
                Changed?.Invoke(snapshot);
                return;
            }
        }
    }
}
