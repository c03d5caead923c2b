namespace OrleansTunnel.Grains;

/// <summary>
/// One agent (keyed by agent id): its live sessions (gateway, session id, slot, epoch), the services
/// it offers and its last heartbeat. A session on a slot with a newer epoch supersedes the older one;
/// a session with an older epoch than the slot's current one is refused (fenced).
/// </summary>
[Alias("OrleansTunnel.IAgentGrain")]
public interface IAgentGrain : IGrainWithStringKey
{
    [Alias("OpenSession")]
    Task<SessionAdmission> OpenSession(AgentSession session);

    [Alias("CloseSession")]
    Task CloseSession(string sessionId);

    /// <summary>
    /// Records a heartbeat of a live session. A session the grain does not know (its silo was lost)
    /// is admitted again; false means the session is fenced (superseded) and must be closed.
    /// </summary>
    [Alias("Heartbeat")]
    Task<bool> Heartbeat(AgentSession session);

    [Alias("GetSnapshot")]
    Task<AgentSnapshot> GetSnapshot();
}
