using OrleansTunnel.Grains;
using OrleansTunnel.Mux;

namespace OrleansTunnel.Gateway.Tunnel;

/// <summary>One agent's live tunnel connection to this gateway.</summary>
public sealed class AgentConnection(AgentSession session, MuxConnection mux)
{
    public AgentSession Session { get; } = session;

    public string AgentId { get; init; } = "";

    /// <summary>SHA-256 of the token this session authenticated with (re-checked when credentials change).</summary>
    public byte[] TokenHash { get; init; } = [];

    public MuxConnection Mux { get; } = mux;

    /// <summary>True while new requests may be sent here (not closing, no go-away either way).</summary>
    public bool Accepting => !Mux.Closed.IsCancellationRequested && !Mux.GoAwayReceived && !Draining
        && Mux.ActiveStreams < Mux.Settings.MaxConcurrentStreams;

    /// <summary>Set when this gateway is draining: finish in-flight requests, open none.</summary>
    public bool Draining { get; set; }

    public bool Serves(string service) => Array.IndexOf(Session.Services, service) >= 0;

    /// <summary>The health of this session's services as the agent reports it (health frames).</summary>
    public OrleansTunnel.Gateway.Health.SessionHealth Health { get; } = new();
}
