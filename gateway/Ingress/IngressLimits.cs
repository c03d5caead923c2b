using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace OrleansTunnel.Gateway.Ingress;

/// <summary>
/// Kestrel's protocol limits from the gateway's options. Kestrel's limits are server-wide, so they also
/// bound the tunnel and admin listeners; the defaults are Kestrel's own and leave gRPC tunnels room.
/// </summary>
public static class IngressLimits
{
    public static void Apply(KestrelServerLimits limits, GatewayOptions o)
    {
        limits.MaxRequestHeaderCount = o.MaxRequestHeaderCount;
        limits.MaxRequestHeadersTotalSize = o.MaxRequestHeadersTotalSize;
        limits.MaxRequestLineSize = o.MaxRequestLineSize;
        limits.RequestHeadersTimeout = o.RequestHeadersTimeout;
        limits.KeepAliveTimeout = o.KeepAliveTimeout;
        limits.MinRequestBodyDataRate = o.MinRequestBodyDataRate > 0
            // Kestrel demands a grace period over 1 s; the validator reports a shorter one, this keeps Kestrel from throwing first.
            ? new MinDataRate(o.MinRequestBodyDataRate, o.MinRequestBodyDataRateGracePeriod > TimeSpan.FromSeconds(1) ? o.MinRequestBodyDataRateGracePeriod : TimeSpan.FromSeconds(1.1))
            : null;
        limits.MaxConcurrentUpgradedConnections = o.MaxUpgradedConnections > 0 ? o.MaxUpgradedConnections : null;
        limits.Http2.MaxStreamsPerConnection = o.Http2MaxStreamsPerConnection;
        limits.Http2.HeaderTableSize = o.Http2HeaderTableSize;
        limits.Http2.MaxFrameSize = o.Http2MaxFrameSize;
        limits.Http2.InitialConnectionWindowSize = o.Http2InitialConnectionWindowSize;
        limits.Http2.InitialStreamWindowSize = o.Http2InitialStreamWindowSize;
        limits.Http2.MaxRequestHeaderFieldSize = o.Http2MaxRequestHeaderFieldSize;
    }
}
