namespace OrleansTunnel.Gateway.L4;

/// <summary>
/// TCP and UDP services of the gateway (bound from the "Gateway" section next to <see cref="GatewayOptions"/>):
/// a listener per service, and one shared TLS passthrough port that routes by SNI. See README "TCP and UDP services".
/// </summary>
public sealed class L4Options
{
    /// <summary>TCP listeners: Gateway:TcpServices:N:Listen (address:port) -> Service.</summary>
    public List<L4ServiceOptions> TcpServices { get; set; } = [];

    /// <summary>UDP listeners: Gateway:UdpServices:N:Listen (address:port) -> Service.</summary>
    public List<L4ServiceOptions> UdpServices { get; set; } = [];

    /// <summary>
    /// One shared port (address:port, e.g. 0.0.0.0:443) for TLS-speaking TCP services: the ClientHello's SNI
    /// name is matched against the host routes (exact and wildcard) without terminating TLS. Empty: none.
    /// </summary>
    public string? TlsPassthrough { get; set; }

    /// <summary>Most TLS passthrough connections at once.</summary>
    public int TlsPassthroughMaxConnections { get; set; } = 1000;

    /// <summary>Idle timeout of TLS passthrough connections.</summary>
    public TimeSpan TlsPassthroughIdleTimeout { get; set; } = TimeSpan.FromHours(1);

    /// <summary>How long a TLS passthrough visitor may take to send its ClientHello.</summary>
    public TimeSpan ClientHelloTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How long the gateway waits for the agent to reach a TCP/UDP backend before closing the visitor's connection.</summary>
    public TimeSpan L4ConnectTimeout { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>Read buffer per TCP connection and direction (bytes; up to one data frame is sent per read).</summary>
    public int TcpBufferSize { get; set; } = 64 * 1024;

    /// <summary>Datagrams queued per UDP flow while it waits for its stream; beyond it they are dropped (and counted).</summary>
    public int UdpFlowQueue { get; set; } = 256;
}

/// <summary>One TCP or UDP service listener.</summary>
public sealed class L4ServiceOptions
{
    /// <summary>address:port to listen on, e.g. 0.0.0.0:5432 or [::]:53.</summary>
    public string Listen { get; set; } = "";

    /// <summary>The service (agents expose it with --expose tcp://... --service NAME).</summary>
    public string Service { get; set; } = "";

    /// <summary>CIDRs (or single addresses) a visitor must connect from; empty: anyone.</summary>
    public List<string> AllowedNetworks { get; set; } = [];

    /// <summary>Most connections (TCP) or flows (UDP) at once on this listener; beyond it new ones are refused.</summary>
    public int MaxConnections { get; set; } = 1000;

    /// <summary>TCP: the agent writes a PROXY protocol v2 header carrying the visitor's address before the first byte.</summary>
    public bool ProxyProtocol { get; set; }

    /// <summary>A connection (TCP) or flow (UDP) with no byte either way for this long is closed. Default: TCP 1 h, UDP 60 s.</summary>
    public TimeSpan? IdleTimeout { get; set; }
}
