using System.Net;
using Microsoft.AspNetCore.Http;

namespace OrleansTunnel.Gateway.Ingress;

/// <summary>
/// Gateway:TrustedProxies, parsed once per configuration value. The source list and its parsed
/// networks are swapped together as one immutable pair, so a reload racing requests never pairs the
/// old networks with the new list.
/// </summary>
public sealed class TrustedProxies
{
    private sealed record Parsed(List<string> Source, IPNetwork[] Networks);

    private Parsed? _parsed;

    /// <summary>Whether the visitor's TCP peer is one of the configured trusted proxies.</summary>
    public bool Contains(HttpContext context, GatewayOptions options)
    {
        var source = options.TrustedProxies;
        if (source.Count == 0)
        {
            return false;
        }
        var parsed = Volatile.Read(ref _parsed);
        if (parsed is null || !ReferenceEquals(parsed.Source, source))
        {
            parsed = new Parsed(source, VisitorAccess.ParseNetworks(source));
            Volatile.Write(ref _parsed, parsed);
        }
        return VisitorAccess.Contains(parsed.Networks, context.Connection.RemoteIpAddress);
    }
}
