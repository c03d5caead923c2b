using OrleansTunnel.Protocol.V1;

namespace OrleansTunnel.Mux;

/// <summary>
/// Connection-specific ("hop-by-hop") header fields, which a proxy must not forward
/// (RFC 9110 section 7.6.1): the fixed list plus every name listed in <c>Connection</c>.
/// </summary>
public static class HopByHop
{
    private static readonly HashSet<string> Fixed = new(StringComparer.OrdinalIgnoreCase)
    {
        "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "TE", "Trailer",
        "Proxy-Authenticate", "Proxy-Authorization",
        // Connection-specific in an h2c upgrade (RFC 7540 3.2.1); the upgrade itself is never honoured.
        "HTTP2-Settings",
    };

    /// <summary>True for a field that is hop-by-hop by name alone.</summary>
    public static bool IsFixed(string name) => Fixed.Contains(name);

    /// <summary>The extra names a <c>Connection</c> field value lists (comma separated tokens).</summary>
    public static HashSet<string>? NamedBy(IEnumerable<string?> connectionValues)
    {
        HashSet<string>? named = null;
        foreach (var value in connectionValues)
        {
            if (string.IsNullOrEmpty(value))
            {
                continue;
            }
            foreach (var token in value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            {
                (named ??= new HashSet<string>(StringComparer.OrdinalIgnoreCase)).Add(token);
            }
        }
        return named;
    }

    /// <summary>
    /// True when the field must be dropped. <c>TE: trailers</c> survives: it is end-to-end meaningful
    /// (gRPC requires it) and the only TE value HTTP/2 allows.
    /// </summary>
    public static bool ShouldDrop(string name, string value, HashSet<string>? connectionNamed)
    {
        if (Fixed.Contains(name))
        {
            return !(name.Equals("TE", StringComparison.OrdinalIgnoreCase) && value.Trim().Equals("trailers", StringComparison.OrdinalIgnoreCase));
        }
        return connectionNamed is not null && connectionNamed.Contains(name);
    }

    /// <summary>Adds a header pair to a frame's list.</summary>
    public static void Add(this Google.Protobuf.Collections.RepeatedField<Header> headers, string name, string value) =>
        headers.Add(new Header { Name = name, Value = value });
}
