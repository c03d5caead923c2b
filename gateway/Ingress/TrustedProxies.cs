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
    public bool Contains(HttpContext context, GatewayOptions options) =>
        Networks(options) is { } networks && VisitorAccess.Contains(networks, context.Connection.RemoteIpAddress);

    /// <summary>
    /// The visitor's address as route allow-lists judge it: the TCP peer, or, when the peer is a trusted
    /// proxy, the right-most X-Forwarded-For entry that is not itself a trusted proxy (entries to its left
    /// were written by whoever the visitor is and prove nothing). Null when such an entry is not an IP
    /// address: an allow-list then refuses (fails closed).
    /// </summary>
    public IPAddress? VisitorAddress(HttpContext context, GatewayOptions options)
    {
        var peer = context.Connection.RemoteIpAddress;
        if (Networks(options) is not { } networks || !VisitorAccess.Contains(networks, peer))
        {
            return peer;
        }
        var values = context.Request.Headers["X-Forwarded-For"];
        for (int v = values.Count - 1; v >= 0; v--)
        {
            var entries = (values[v] ?? "").Split(',', StringSplitOptions.TrimEntries);
            for (int e = entries.Length - 1; e >= 0; e--)
            {
                if (entries[e].Length == 0)
                {
                    continue;
                }
                if (!IPAddress.TryParse(entries[e].Trim('[', ']'), out var address))
                {
                    return null;
                }
                if (!VisitorAccess.Contains(networks, address))
                {
                    return address;
                }
                peer = address;
            }
        }
        // Every hop was a trusted proxy: the left-most one is as close to the visitor as can be known.
        return peer;
    }

    private IPNetwork[]? Networks(GatewayOptions options)
    {
        var source = options.TrustedProxies;
        if (source.Count == 0)
        {
            return null;
        }
        var parsed = Volatile.Read(ref _parsed);
        if (parsed is null || !ReferenceEquals(parsed.Source, source))
        {
            parsed = new Parsed(source, VisitorAccess.ParseNetworks(source));
            Volatile.Write(ref _parsed, parsed);
        }
        return parsed.Networks;
    }
}
