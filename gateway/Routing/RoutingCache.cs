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

    public void Apply(RoutingSnapshot snapshot)
    {
        while (true)
        {
            var current = _current;
            if (snapshot.Version <= current.Snapshot.Version)
            {
                return;
            }
            var next = new Compiled(snapshot, new RouteTable(snapshot.Routes));
            if (Interlocked.CompareExchange(ref _current, next, current) == current)
            {
                Changed?.Invoke(snapshot);
                return;
            }
        }
    }
}
