using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using OrleansTunnel.Gateway.Requests;
using OrleansTunnel.Mux;
using OrleansTunnel.Protocol.V1;

namespace OrleansTunnel.Gateway.Ingress;

/// <summary>
/// Turns the visitor's request into the tunnel's request head: the raw target, the fields in order
/// without hop-by-hop ones, and forwarding headers from what the gateway saw (never from the visitor,
/// unless the peer is a trusted proxy).
/// </summary>
internal static class RequestHeadBuilder
{
    /// <summary>
    /// Headers some backends take as the client's address or the original URL; a visitor can set any of
    /// them, so they are removed unless named in Gateway:KeepClientHeaders. (X-Forwarded-For, -Proto,
    /// -Host and Forwarded are handled apart: replaced by what the gateway saw, or kept from a trusted proxy.)
    /// </summary>
    public static readonly HashSet<string> ClientAddressHeaders = new(StringComparer.OrdinalIgnoreCase)
    {
        "X-Real-IP", "True-Client-IP", "X-Client-IP", "CF-Connecting-IP", "Fastly-Client-IP", "X-Cluster-Client-IP",
        "X-Forwarded-Port", "X-Forwarded-Prefix", "X-Forwarded-Server", "X-Original-URL", "X-Rewrite-URL", "X-Original-Forwarded-For",
    };

    public static RequestHead Build(HttpContext context, string requestId, string service, string host, bool hasBody, TimeSpan timeout, VisitorKind kind, bool trustedPeer, HashSet<string> keep)
    {
        var request = context.Request;
        var rawTarget = context.Features.Get<IHttpRequestFeature>()?.RawTarget;
        var head = new RequestHead
        {
            RequestId = requestId,
            Service = service,
            Method = request.Method,
            Scheme = request.Scheme,
            Authority = request.Host.Value ?? host,
            // Origin-form targets travel as sent; an absolute-form target (already checked against Host by
            // Kestrel) travels as its path and query.
            PathAndQuery = string.IsNullOrEmpty(rawTarget) || !rawTarget.StartsWith('/') ? request.Path.Value + request.QueryString.Value : rawTarget,
            Protocol = kind switch
            {
                VisitorKind.Grpc => OrleansTunnel.Protocol.V1.Protocol.Grpc,
                VisitorKind.WebSocketHttp1 or VisitorKind.WebSocketHttp2 => OrleansTunnel.Protocol.V1.Protocol.Websocket,
                _ when request.Protocol == "HTTP/2" => OrleansTunnel.Protocol.V1.Protocol.Http2,
                _ => OrleansTunnel.Protocol.V1.Protocol.Http1,
            },
            // A WebSocket's "body" is its byte stream after the handshake.
            EndOfBody = !hasBody && kind is not (VisitorKind.WebSocketHttp1 or VisitorKind.WebSocketHttp2),
            TimeoutMs = (uint)Math.Min(timeout.TotalMilliseconds, uint.MaxValue),
            HttpVersion = request.Protocol switch { "HTTP/2" => "2", "HTTP/1.0" => "1.0", _ => "1.1" },
        };
        if (kind == VisitorKind.WebSocketHttp2)
        {
            // RFC 8441 extended CONNECT becomes an ordinary WebSocket handshake (GET + Upgrade) at the agent.
            head.Method = "GET";
        }
        var headers = request.Headers;
        var connectionNamed = HopByHop.NamedBy(headers.Connection);
        foreach (var (name, values) in headers)
        {
            if (name.StartsWith(':') || (IsForwardingHeader(name) && !trustedPeer) || name.Equals("Host", StringComparison.OrdinalIgnoreCase)
                || (ClientAddressHeaders.Contains(name) && !keep.Contains(name))
                || ReplayMarker.IsMarker(name)
                || (trustedPeer && name.Equals("X-Forwarded-For", StringComparison.OrdinalIgnoreCase)))
            {
                continue;
            }
            foreach (var value in values)
            {
                if (value is not null && !HopByHop.ShouldDrop(name, value, connectionNamed))
                {
                    head.Headers.Add(name, value);
                }
            }
        }
        // Forwarding headers come from what the gateway saw, never from the visitor (replaced, not appended),
        // unless the peer is a trusted proxy: then its X-Forwarded-For is extended and its other forwarding headers kept.
        var remote = context.Connection.RemoteIpAddress;
        string? peer = remote is null ? null : (remote.IsIPv4MappedToIPv6 ? remote.MapToIPv4() : remote).ToString();
        string? incomingFor = trustedPeer ? string.Join(", ", headers["X-Forwarded-For"].Where(v => !string.IsNullOrWhiteSpace(v))) : null;
        string? forwardedFor = string.IsNullOrEmpty(incomingFor) ? peer : peer is null ? incomingFor : incomingFor + ", " + peer;
        if (forwardedFor is not null)
        {
            head.Headers.Add("X-Forwarded-For", forwardedFor);
        }
        if (!trustedPeer || headers["X-Forwarded-Proto"].Count == 0)
        {
            head.Headers.Add("X-Forwarded-Proto", request.Scheme);
        }
        if (!trustedPeer || headers["X-Forwarded-Host"].Count == 0)
        {
            head.Headers.Add("X-Forwarded-Host", request.Host.Value ?? host);
        }
        return head;
    }

    private static bool IsForwardingHeader(string name) =>
        name.Equals("X-Forwarded-For", StringComparison.OrdinalIgnoreCase)
        || name.Equals("X-Forwarded-Proto", StringComparison.OrdinalIgnoreCase)
        || name.Equals("X-Forwarded-Host", StringComparison.OrdinalIgnoreCase)
        || name.Equals("Forwarded", StringComparison.OrdinalIgnoreCase);
}
