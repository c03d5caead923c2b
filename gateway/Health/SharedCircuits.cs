using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OrleansTunnel.Gateway.Cluster;
using OrleansTunnel.Gateway.Routing;
using OrleansTunnel.Gateway.Telemetry;
using OrleansTunnel.Grains;

namespace OrleansTunnel.Gateway.Health;

/// <summary>
/// This gateway's copy of the circuits the cluster shares (the routing snapshot's Circuits, pushed by the
/// routing grain like routes and health): reads are local and lock-free. Grain calls happen only when a
/// circuit changes here: opened, probe claimed, closed. When the grain cannot be reached the gateway
/// falls back to its own circuits (logged once per outage, counted).
/// </summary>
public sealed partial class SharedCircuits
{
    private readonly IGrainFactory _grains;
    private readonly GatewayIdentity _identity;
    private readonly IOptionsMonitor<ResilienceOptions> _options;
    private readonly ILogger<SharedCircuits> _logger;
    private readonly Counter<long> _unavailable;
    private volatile Dictionary<(string Session, string Service), SharedCircuit> _table = [];
    private long _unavailableTotal;
    private int _down;

    public SharedCircuits(IGrainFactory grains, RoutingCache cache, GatewayIdentity identity, IOptionsMonitor<ResilienceOptions> options,
        IMeterFactory meters, ILogger<SharedCircuits> logger)
    {
        _grains = grains;
        _identity = identity;
        _options = options;
        _logger = logger;
        _unavailable = meters.Create(GatewayTelemetry.MeterName).CreateCounter<long>("otun.gateway.circuit.shared_unavailable",
            description: "Calls to the routing grain about shared circuits that failed (the gateway used its own circuits instead).");
        cache.Changed += Apply;
    }

    /// <summary>Raised with the circuits that left the shared table (closed by a probe elsewhere, expired, or their session left).</summary>
    public event Action<IReadOnlyList<(string Session, string Service)>>? Dropped;

    /// <summary>Grain calls about shared circuits that failed since start.</summary>
    public long UnavailableTotal => Interlocked.Read(ref _unavailableTotal);

    private bool Enabled => _options.CurrentValue.SharedCircuits;

    private string Me => _identity.GatewayId;

    /// <summary>This gateway's id (as shared circuits name their opener and prober).</summary>
    public string GatewayId => Me;

    /// <summary>The shared circuits as this gateway last heard of them.</summary>
    public IReadOnlyCollection<SharedCircuit> All => Enabled ? _table.Values : [];

    /// <summary>The live shared circuit of the session for the service, or null.</summary>
    public SharedCircuit? Find(string sessionId, string service) =>
        Enabled && _table.TryGetValue((sessionId, service), out var c) && c.ExpiresAt > DateTimeOffset.UtcNow ? c : null;

    /// <summary>True while the cluster skips the session for the service: open, or another gateway holds its probe.</summary>
    public bool Blocks(string sessionId, string service)
    {
        if (Find(sessionId, service) is not { } c)
        {
            return false;
        }
        var now = DateTimeOffset.UtcNow;
        return c.IsOpenAt(now) || (c.ProbeBy is { } holder && holder != Me && c.ProbeUntil > now);
    }

    /// <summary>True when the shared circuit's open time is over: the next request must claim its probe.</summary>
    public bool ProbeDue(string sessionId, string service) => Find(sessionId, service) is { } c && !c.IsOpenAt(DateTimeOffset.UtcNow);

    /// <summary>State of a shared circuit for the admin API.</summary>
    public string StateOf(SharedCircuit c)
    {
        var now = DateTimeOffset.UtcNow;
        return c.IsOpenAt(now) ? "open" : c.ProbeBy is not null && c.ProbeUntil > now ? "half-open" : "half-open (probe due)";
    }

    /// <summary>Claims the probe cluster-wide; true also when the grain cannot be reached (this gateway decides alone).</summary>
    public async ValueTask<bool> ClaimAsync(string sessionId, string service)
    {
        var o = _options.CurrentValue;
        try
        {
            bool granted = await Routing().ClaimCircuitProbe(sessionId, service, Me, o.SharedProbeLease).WaitAsync(o.SharedCallTimeout);
            Up();
            return granted;
        }
        catch (Exception ex)
        {
            Unavailable("claim the probe", ex);
            return true;
        }
    }

    /// <summary>Tells the cluster this gateway opened (or reopened) the circuit; does not wait.</summary>
    public void PublishOpen(string sessionId, string service, string agentId, string reason, TimeSpan cooldown)
    {
        if (!Enabled)
        {
            return;
        }
        var o = _options.CurrentValue;
        var now = DateTimeOffset.UtcNow;
        var circuit = new SharedCircuit(sessionId, service, agentId, Me, now, now + cooldown, now + cooldown + o.SharedCircuitLinger,
            reason.Length > 200 ? reason[..200] : reason);
        _ = CallAsync("share the open circuit", () => Routing().OpenCircuit(circuit, o.SharedCircuitMaxEntries));
    }

    /// <summary>Tells the cluster the circuit closed here (a probe succeeded); does not wait.</summary>
    public void PublishClose(string sessionId, string service)
    {
        if (Enabled)
        {
            _ = CallAsync("share the closed circuit", () => Routing().CloseCircuit(sessionId, service, Me));
        }
    }

    private IRoutingGrain Routing() => _grains.GetGrain<IRoutingGrain>(RoutingGrain.DefaultKey);

    private async Task CallAsync(string what, Func<Task> call)
    {
        try
        {
            await call().WaitAsync(_options.CurrentValue.SharedCallTimeout);
            Up();
        }
        catch (Exception ex)
        {
            Unavailable(what, ex);
        }
    }

    private void Unavailable(string what, Exception ex)
    {
        Interlocked.Increment(ref _unavailableTotal);
        _unavailable.Add(1);
        if (Interlocked.Exchange(ref _down, 1) == 0)
        {
            LogUnavailable(_logger, what, ex.Message);
        }
    }

    private void Up()
    {
        if (Interlocked.Exchange(ref _down, 0) == 1)
        {
            LogBack(_logger);
        }
    }

    private void Apply(RoutingSnapshot snapshot)
    {
        var previous = _table;
        var next = new Dictionary<(string, string), SharedCircuit>();
        foreach (var c in snapshot.Circuits ?? [])
        {
            next[(c.SessionId, c.Service)] = c;
        }
        if (snapshot.GatewaysIncomplete)
        {
            // A routing grain just re-activated (its silo died) knows no circuits yet: keep ours until they expire.
            foreach (var (key, c) in previous)
            {
                next.TryAdd(key, c);
            }
        }
        _table = next;
        var dropped = previous.Keys.Where(k => !next.ContainsKey(k)).ToList();
        if (dropped.Count > 0)
        {
            Dropped?.Invoke(dropped);
        }
    }

    [LoggerMessage(EventId = 644, EventName = "SharedCircuitsUnavailable", Level = LogLevel.Warning,
        Message = "Could not {What} with the cluster ({Error}); this gateway keeps its own circuits (as with Resilience:SharedCircuits false) until the routing grain answers again. Check that a silo is up. Logged once per outage; counted in otun.gateway.circuit.shared_unavailable.")]
    private static partial void LogUnavailable(ILogger logger, string what, string error);

    [LoggerMessage(EventId = 645, EventName = "SharedCircuitsBack", Level = LogLevel.Information,
        Message = "The cluster answers shared-circuit calls again; circuits are shared with every gateway.")]
    private static partial void LogBack(ILogger logger);
}
