using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OrleansTunnel.Gateway.Telemetry;

namespace OrleansTunnel.Gateway.Health;

/// <summary>
/// One circuit per (agent session, service), local to this gateway. Closed: requests flow. After
/// Resilience:CircuitFailures path failures in a row, or a failure ratio of Resilience:CircuitFailureRatio
/// over Resilience:CircuitWindow, it opens: the dispatcher skips the session for Resilience:CircuitCooldown.
/// Then one request probes it (half-open): success closes it, failure opens it for another cool-down.
/// Only path failures count (agent lost, backend refused or timed out); a backend's own 5xx answer does not.
/// A route's Resilience settings, when it has any, replace these for the requests of that route.
/// With Resilience:SharedCircuits (default) an opened circuit is also shared with every gateway
/// (<see cref="SharedCircuits"/>): all skip the session, one claims the probe, its verdict reaches all.
/// </summary>
public sealed partial class CircuitBreakers
{
    private readonly ConcurrentDictionary<(string Session, string Service), Circuit> _circuits = new();
    // Shared circuits whose cluster-wide probe a request of this gateway holds now.
    private readonly ConcurrentDictionary<(string Session, string Service), byte> _sharedProbes = new();
    private readonly SharedCircuits _shared;
    private readonly IOptionsMonitor<ResilienceOptions> _options;
    private readonly ILogger<CircuitBreakers> _logger;
    private readonly Counter<long> _opened;
    private readonly Counter<long> _retries;
    private long _openedTotal;
    private long _retriesTotal;

    public CircuitBreakers(IOptionsMonitor<ResilienceOptions> options, IMeterFactory meters, ILogger<CircuitBreakers> logger, SharedCircuits shared)
    {
        _shared = shared;
        shared.Dropped += ClosedElsewhere;
        _options = options;
        _logger = logger;
        var meter = meters.Create(GatewayTelemetry.MeterName);
        _opened = meter.CreateCounter<long>("otun.gateway.circuit.opened", description: "Circuits (agent session and service) opened after path failures, by service.");
        _retries = meter.CreateCounter<long>("otun.gateway.retries", description: "Requests sent a second time on another agent session after their path failed before the backend could act, by service and reason.");
    }

    /// <summary>A circuit as the admin API shows it.</summary>
    public sealed record View(string Service, string AgentId, string SessionId, string? GatewayId, string State, DateTimeOffset? OpenUntil, int ConsecutiveFailures, string? LastFailure);

    private sealed class Circuit(string agentId, string? gatewayId)
    {
        public readonly Lock Gate = new();
        public string AgentId = agentId;
        public string? GatewayId = gatewayId;
        public int Consecutive;
        public long WindowStart = Environment.TickCount64;
        public int WindowRequests;
        public int WindowFailures;
        public long OpenUntil; // TickCount64; 0: closed
        public bool Probing;
        public string? LastFailure;
        public long LastUsed = Environment.TickCount64;
    }

    /// <summary>Circuits opened since start.</summary>
    public long OpenedTotal => Interlocked.Read(ref _openedTotal);

    /// <summary>Requests retried since start.</summary>
    public long RetriesTotal => Interlocked.Read(ref _retriesTotal);

    /// <summary>Counts one retry (metrics).</summary>
    public void Retried(string service, string reason)
    {
        Interlocked.Increment(ref _retriesTotal);
        _retries.Add(1, new KeyValuePair<string, object?>("service", service), new KeyValuePair<string, object?>("reason", reason));
    }

    /// <summary>True when the session may get a request for the service now (closed, or a probe is due). No side effect.</summary>
    public bool Allows(string sessionId, string service)
    {
        if (_shared.Blocks(sessionId, service))
        {
            return false;
        }
        if (!_circuits.TryGetValue((sessionId, service), out var c))
        {
            return true;
        }
        lock (c.Gate)
        {
            return c.OpenUntil == 0 || (!c.Probing && Environment.TickCount64 >= c.OpenUntil);
        }
    }

    /// <summary>Called for the session chosen: claims the probe of a half-open circuit; false when another request holds it.</summary>
    public bool TryEnter(string sessionId, string service)
    {
        if (!_circuits.TryGetValue((sessionId, service), out var c))
        {
            return true;
        }
        lock (c.Gate)
        {
            if (c.OpenUntil == 0)
            {
                return true;
            }
            if (c.Probing || Environment.TickCount64 < c.OpenUntil)
            {
                return false;
            }
            c.Probing = true;
            return true;
        }
    }

    /// <summary>
    /// Like <see cref="TryEnter"/>, and when the cluster shares the circuit and its open time is over,
    /// claims its one probe cluster-wide (a grain call, only then); false when another request or gateway holds it.
    /// </summary>
    public async ValueTask<bool> TryEnterAsync(string sessionId, string service)
    {
        if (!TryEnter(sessionId, service))
        {
            return false;
        }
        if (!_shared.ProbeDue(sessionId, service))
        {
            return true;
        }
        var key = (sessionId, service);
        if (_sharedProbes.TryAdd(key, 0))
        {
            if (await _shared.ClaimAsync(sessionId, service))
            {
                return true;
            }
            _sharedProbes.TryRemove(key, out _);
            if (_shared.Find(sessionId, service) is null)
            {
                // Another gateway's probe closed the circuit while this claim was on its way: the close skipped
                // this circuit then (a claim was pending), so it is closed here now and the request may go.
                ClosedElsewhere([key]);
                return true;
            }
        }
        FreeLocalProbe(sessionId, service);
        return false;
    }

    /// <summary>A request's path worked (the backend's answer arrived): closes a half-open circuit.</summary>
    /// <param name="settings">The route's effective settings (<see cref="RouteResilienceConfig.For"/>); null: the gateway's.</param>
    public void Succeeded(string sessionId, string service, ResilienceOptions? settings = null)
    {
        bool heldShared = _sharedProbes.TryRemove((sessionId, service), out _);
        if (!_circuits.TryGetValue((sessionId, service), out var c))
        {
            if (heldShared)
            {
                LogClosed(_logger, service, "?", sessionId);
                _shared.PublishClose(sessionId, service);
            }
            return;
        }
        bool closed;
        lock (c.Gate)
        {
            closed = c.OpenUntil != 0;
            c.OpenUntil = 0;
            c.Probing = false;
            c.Consecutive = 0;
            c.LastUsed = Environment.TickCount64;
            Count(c, failed: false, settings ?? _options.CurrentValue);
        }
        if (closed || heldShared)
        {
            LogClosed(_logger, service, c.AgentId, sessionId);
            _shared.PublishClose(sessionId, service);
        }
    }

    /// <summary>A request's path failed (agent lost, backend refused or timed out).</summary>
    /// <param name="settings">The route's effective settings (thresholds, cool-down); null: the gateway's.</param>
    public void Failed(string sessionId, string service, string agentId, string? gatewayId, string reason, ResilienceOptions? settings = null)
    {
        var o = settings ?? _options.CurrentValue;
        // A failed cluster-wide probe opens the circuit again, whatever this gateway counted before.
        bool heldShared = _sharedProbes.TryRemove((sessionId, service), out _);
        if (o.CircuitFailures == 0 && o.CircuitFailureRatio == 0)
        {
            return;
        }
        var c = _circuits.GetOrAdd((sessionId, service), _ => new Circuit(agentId, gatewayId));
        bool opened = false;
        lock (c.Gate)
        {
            c.LastFailure = reason;
            c.LastUsed = Environment.TickCount64;
            c.Consecutive++;
            Count(c, failed: true, o);
            bool trip = c.OpenUntil != 0 || heldShared // a failed probe (or a request that raced it) opens it again
                || (o.CircuitFailures > 0 && c.Consecutive >= o.CircuitFailures)
                || (o.CircuitFailureRatio > 0 && c.WindowRequests >= o.CircuitMinimumRequests && c.WindowFailures >= o.CircuitFailureRatio * c.WindowRequests);
            if (trip)
            {
                opened = c.OpenUntil == 0 || c.Probing;
                c.OpenUntil = Environment.TickCount64 + (long)o.CircuitCooldown.TotalMilliseconds;
                c.Probing = false;
            }
        }
        if (opened)
        {
            Interlocked.Increment(ref _openedTotal);
            _opened.Add(1, new KeyValuePair<string, object?>("service", service));
            LogOpened(_logger, service, agentId, sessionId, c.Consecutive, reason, o.CircuitCooldown.TotalSeconds);
            _shared.PublishOpen(sessionId, service, agentId, reason, o.CircuitCooldown);
        }
        Prune();
    }

    /// <summary>A request ended with no verdict on the path (visitor left, bad request): frees a probe it held.</summary>
    public void Abandoned(string sessionId, string service)
    {
        // A held shared probe is given back by its lease (Resilience:SharedProbeLease); this gateway may claim it again at once.
        _sharedProbes.TryRemove((sessionId, service), out _);
        FreeLocalProbe(sessionId, service);
    }

    private void FreeLocalProbe(string sessionId, string service)
    {
        if (_circuits.TryGetValue((sessionId, service), out var c))
        {
            lock (c.Gate)
            {
                c.Probing = false;
            }
        }
    }

    /// <summary>Open (or half-open) circuits for a service, this gateway's and the cluster's, for the 503 a visitor gets when no path is left.</summary>
    public View[] OpenFor(string service)
    {
        var local = All().Where(v => v.Service == service && v.State != "closed").ToList();
        foreach (var c in _shared.All.Where(c => c.Service == service && c.ExpiresAt > DateTimeOffset.UtcNow))
        {
            // This gateway's own view of a session comes first; the cluster's fills in the sessions it never failed on.
            if (!local.Any(v => v.SessionId == c.SessionId))
            {
                local.Add(new View(service, c.AgentId, c.SessionId, null, _shared.StateOf(c), c.OpenUntil, 0, $"{c.Reason}; opened by gateway {c.OpenedBy}"));
            }
        }
        return [.. local];
    }

    /// <summary>
    /// GET /api/circuits: the cluster's shared circuits (who opened each, until when, state, who probes it),
    /// this gateway's own circuits and its counters.
    /// </summary>
    public object AdminView() => new
    {
        gateway = _shared.GatewayId,
        shared = _options.CurrentValue.SharedCircuits,
        cluster = _shared.All.OrderBy(c => c.Service, StringComparer.Ordinal).ThenBy(c => c.SessionId, StringComparer.Ordinal).Select(c => new
        {
            c.Service, c.AgentId, c.SessionId, c.OpenedBy, c.OpenedAt, State = _shared.StateOf(c), c.OpenUntil, c.ProbeBy, c.ProbeUntil, c.Reason,
        }),
        local = All().OrderBy(c => c.Service, StringComparer.Ordinal),
        counters = new { opened = OpenedTotal, retries = RetriesTotal, sharedUnavailable = _shared.UnavailableTotal },
    };

    /// <summary>The shared circuits left the cluster's table (a probe elsewhere closed them, or they expired): they close here too.</summary>
    private void ClosedElsewhere(IReadOnlyList<(string Session, string Service)> keys)
    {
        foreach (var key in keys)
        {
            if (_circuits.TryGetValue(key, out var c) && !_sharedProbes.ContainsKey(key))
            {
                lock (c.Gate)
                {
                    c.OpenUntil = 0;
                    c.Probing = false;
                    c.Consecutive = 0;
                }
            }
        }
    }

    /// <summary>Every circuit this gateway tracks (those that saw a failure recently).</summary>
    public IEnumerable<View> All()
    {
        long now = Environment.TickCount64;
        var views = new List<View>();
        foreach (var ((session, service), c) in _circuits)
        {
            lock (c.Gate)
            {
                string state = c.OpenUntil == 0 ? "closed" : c.Probing ? "half-open" : now >= c.OpenUntil ? "half-open (probe due)" : "open";
                views.Add(new View(service, c.AgentId, session, c.GatewayId, state,
                    c.OpenUntil == 0 ? null : DateTimeOffset.UtcNow.AddMilliseconds(c.OpenUntil - now), c.Consecutive, c.LastFailure));
            }
        }
        return views;
    }

    private static void Count(Circuit c, bool failed, ResilienceOptions o)
    {
        long now = Environment.TickCount64;
        if (now - c.WindowStart > (long)o.CircuitWindow.TotalMilliseconds)
        {
            c.WindowStart = now;
            c.WindowRequests = 0;
            c.WindowFailures = 0;
        }
        c.WindowRequests++;
        if (failed)
        {
            c.WindowFailures++;
        }
    }

    private void Prune()
    {
        // Circuits of sessions that closed long ago go; a closed circuit carries nothing worth keeping.
        if (_circuits.Count < 1024)
        {
            return;
        }
        long now = Environment.TickCount64;
        foreach (var (key, c) in _circuits)
        {
            if (c.OpenUntil == 0 && now - c.LastUsed > 60_000)
            {
                _circuits.TryRemove(key, out _);
            }
        }
    }

    [LoggerMessage(EventId = 642, EventName = "CircuitOpened", Level = LogLevel.Warning,
        Message = "Circuit open for service '{Service}' on agent '{AgentId}' session {SessionId} after {Failures} failure(s) in a row (last: {Reason}); this gateway skips that session for {Seconds:0.#} s (Resilience:CircuitCooldown, or the route's), then probes it with one request. Check the agent's backend.")]
    private static partial void LogOpened(ILogger logger, string service, string agentId, string sessionId, int failures, string reason, double seconds);

    [LoggerMessage(EventId = 643, EventName = "CircuitClosed", Level = LogLevel.Information,
        Message = "Circuit closed for service '{Service}' on agent '{AgentId}' session {SessionId}: the probe succeeded.")]
    private static partial void LogClosed(ILogger logger, string service, string agentId, string sessionId);
}
