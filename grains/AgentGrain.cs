using Microsoft.Extensions.Logging;

namespace OrleansTunnel.Grains;

/// <inheritdoc cref="IAgentGrain"/>
public sealed partial class AgentGrain(ILogger<AgentGrain> logger, IGrainFactory grains) : Grain, IAgentGrain
{
    /// <summary>A session without a heartbeat for this long is dropped (its gateway is gone).</summary>
    public static readonly TimeSpan SessionTimeToLive = TimeSpan.FromSeconds(45);

    private readonly Dictionary<string, AgentSession> _sessions = new(StringComparer.Ordinal);
    private readonly Dictionary<string, DateTimeOffset> _heartbeats = new(StringComparer.Ordinal);
    private DateTimeOffset? _lastHeartbeat;
    private IGrainTimer? _expiry;

    public async Task<SessionAdmission> OpenSession(AgentSession session)
    {
        var current = _sessions.Values.FirstOrDefault(s => s.Slot == session.Slot && s.SessionId != session.SessionId);
        if (current is not null && current.Epoch > session.Epoch)
        {
            LogStaleSession(logger, this.GetPrimaryKeyString(), session.Slot, session.Epoch, current.Epoch);
            return new SessionAdmission(false, $"slot {session.Slot} already has a newer session (epoch {current.Epoch} > {session.Epoch})", []);
        }
        AgentSession[] superseded = current is null ? [] : [current];
        if (current is not null)
        {
            _sessions.Remove(current.SessionId);
            _heartbeats.Remove(current.SessionId);
        }
        _sessions[session.SessionId] = session;
        _heartbeats[session.SessionId] = DateTimeOffset.UtcNow;
        _lastHeartbeat = DateTimeOffset.UtcNow;
        _expiry ??= this.RegisterGrainTimer(ExpireSessions, new GrainTimerCreationOptions(SessionTimeToLive / 3, SessionTimeToLive / 3) { KeepAlive = true });
        if (superseded.Length > 0)
        {
            // The superseded session may sit on another gateway, which learns it at its next heartbeat:
            // until then the directory already routes nothing to it.
            await grains.GetGrain<IRoutingGrain>(RoutingGrain.DefaultKey).FenceSessions([.. superseded.Select(s => s.SessionId)]);
        }
        return new SessionAdmission(true, null, superseded);
    }

    public Task CloseSession(string sessionId)
    {
        if (_sessions.Remove(sessionId))
        {
            _heartbeats.Remove(sessionId);
        }
        return Task.CompletedTask;
    }

    public async Task<bool> Heartbeat(AgentSession session)
    {
        if (_sessions.ContainsKey(session.SessionId))
        {
            var now = DateTimeOffset.UtcNow;
            _heartbeats[session.SessionId] = now;
            _lastHeartbeat = now;
            return true;
        }
        // Unknown: either this activation lost its state (its silo died) or the session was superseded.
        var admission = await OpenSession(session);
        return admission.Accepted;
    }

    public Task<AgentSnapshot> GetSnapshot() => Task.FromResult(new AgentSnapshot(
        this.GetPrimaryKeyString(),
        [.. _sessions.Values],
        [.. _sessions.Values.SelectMany(s => s.Services).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal)],
        _lastHeartbeat));

    private Task ExpireSessions(CancellationToken cancellationToken)
    {
        var cutoff = DateTimeOffset.UtcNow - SessionTimeToLive;
        var dead = _heartbeats.Where(h => h.Value < cutoff).Select(h => h.Key).ToList();
        foreach (var id in dead)
        {
            LogSessionExpired(logger, this.GetPrimaryKeyString(), id, _sessions[id].GatewayId);
            _sessions.Remove(id);
            _heartbeats.Remove(id);
        }
        if (_sessions.Count == 0)
        {
            _expiry?.Dispose();
            _expiry = null;
            DeactivateOnIdle();
        }
        return Task.CompletedTask;
    }

    [LoggerMessage(EventId = 200, EventName = "StaleSessionRefused", Level = LogLevel.Warning,
        Message = "Refused a session of agent {AgentId} on slot {Slot} with epoch {Epoch}: the slot already has epoch {CurrentEpoch}. An older agent process is still dialling; stop it.")]
    private static partial void LogStaleSession(ILogger logger, string agentId, uint slot, ulong epoch, ulong currentEpoch);

    [LoggerMessage(EventId = 201, EventName = "SessionExpired", Level = LogLevel.Warning,
        Message = "Dropped session {SessionId} of agent {AgentId} on gateway {GatewayId}: no heartbeat within the session time-to-live (the gateway is probably gone).")]
    private static partial void LogSessionExpired(ILogger logger, string agentId, string sessionId, string gatewayId);
}
