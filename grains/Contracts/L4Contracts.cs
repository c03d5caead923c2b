namespace OrleansTunnel.Grains;

/// <summary>
/// A TCP or UDP service listener managed at run time (admin API, <c>otun admin l4</c>): every gateway
/// listens on <see cref="Listen"/> ("address:port") for <see cref="Service"/>, beside the listeners of
/// its own configuration (Gateway:TcpServices / UdpServices; a configured listener on the same
/// protocol and address wins).
/// </summary>
[GenerateSerializer, Immutable, Alias("OrleansTunnel.L4Mapping")]
public sealed record L4Mapping(
    [property: Id(0)] string Protocol,
    [property: Id(1)] string Listen,
    [property: Id(2)] string Service,
    [property: Id(3)] string[]? AllowedNetworks = null,
    [property: Id(4)] int MaxConnections = 1000,
    [property: Id(5)] bool ProxyProtocol = false,
    [property: Id(6)] TimeSpan? IdleTimeout = null)
{
    /// <summary>The mapping's key: protocol and listen address.</summary>
    public bool SameKey(string protocol, string listen) =>
        string.Equals(Protocol, protocol, StringComparison.OrdinalIgnoreCase) && string.Equals(Listen, listen, StringComparison.OrdinalIgnoreCase);
}
