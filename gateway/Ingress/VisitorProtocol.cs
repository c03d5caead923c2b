using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace OrleansTunnel.Gateway.Ingress;

/// <summary>What a visitor's request is, for how it is forwarded and how errors are told.</summary>
public enum VisitorKind
{
    Http,
    Grpc,
    /// <summary>HTTP/1.1 Upgrade: websocket.</summary>
    WebSocketHttp1,
    /// <summary>HTTP/2 extended CONNECT with :protocol websocket (RFC 8441).</summary>
    WebSocketHttp2,
    /// <summary>A TCP connection of a TCP service or TLS passthrough (gateway/L4).</summary>
    Tcp,
    /// <summary>A UDP flow of a UDP service (gateway/L4).</summary>
    Udp,
}

public static class VisitorProtocol
{
    public static VisitorKind Detect(HttpContext context)
    {
        var request = context.Request;
        if (request.ContentType is { } type && type.StartsWith("application/grpc", StringComparison.OrdinalIgnoreCase))
        {
            return VisitorKind.Grpc;
        }
        if (context.Features.Get<IHttpExtendedConnectFeature>() is { IsExtendedConnect: true } connect
            && string.Equals(connect.Protocol, "websocket", StringComparison.OrdinalIgnoreCase))
        {
            return VisitorKind.WebSocketHttp2;
        }
        // Only Upgrade: websocket is honoured; other upgrades (h2c, ...) are forwarded as plain requests
        // with the Upgrade header stripped as hop-by-hop.
        if (context.Features.Get<IHttpUpgradeFeature>() is { IsUpgradableRequest: true }
            && request.Headers.Upgrade.Any(v => v is not null && v.Split(',').Any(t => t.Trim().Equals("websocket", StringComparison.OrdinalIgnoreCase))))
        {
            return VisitorKind.WebSocketHttp1;
        }
        return VisitorKind.Http;
    }

    public static string Name(VisitorKind kind) => kind switch
    {
        VisitorKind.Grpc => "grpc",
        VisitorKind.WebSocketHttp1 or VisitorKind.WebSocketHttp2 => "websocket",
        VisitorKind.Tcp => "tcp",
        VisitorKind.Udp => "udp",
        _ => "http",
    };
}
