using Microsoft.Extensions.Options;

namespace OrleansTunnel.Gateway;

/// <summary>Checks gateway settings at start and lists every problem with its fix.</summary>
public sealed class GatewayOptionsValidator : IValidateOptions<GatewayOptions>
{
    public ValidateOptionsResult Validate(string? name, GatewayOptions o)
    {
        var failures = new List<string>();
        foreach (var (key, url) in new[] { ("Ingress", o.Ingress), ("Tunnel", o.Tunnel), ("Admin", o.Admin) })
        {
            if (!Uri.TryCreate(url, UriKind.Absolute, out _))
            {
                failures.Add($"Gateway:{key} '{url}' is not an absolute URL; set it like http://127.0.0.1:8080");
            }
        }
        if (o.AdminFailuresPerMinute < 0)
        {
            failures.Add($"Gateway:AdminFailuresPerMinute {o.AdminFailuresPerMinute} must be 0 (no limit) or more, e.g. 10");
        }
        if (o.RequestGrains.Trim().ToLowerInvariant() is not ("always" or "on-demand" or "off"))
        {
            failures.Add($"Gateway:RequestGrains '{o.RequestGrains}' is not one of always, on-demand, off");
        }
        if (o.RequestGrainAfter < TimeSpan.FromMilliseconds(50))
        {
            failures.Add("Gateway:RequestGrainAfter must be at least 50 ms (e.g. 00:00:01)");
        }
        if (o.RequestRetention < TimeSpan.Zero)
        {
            failures.Add("Gateway:RequestRetention must not be negative (e.g. 00:05:00)");
        }
        if (string.IsNullOrEmpty(o.GatewayId) || o.GatewayId.Length > 63 || !o.GatewayId.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
        {
            failures.Add($"Gateway:GatewayId '{o.GatewayId}' must be 1-63 letters, digits, '-', '_' or '.' (it is part of every request id)");
        }
        if (o.ResponseTimeout <= TimeSpan.Zero)
        {
            failures.Add("Gateway:ResponseTimeout must be positive (e.g. 00:01:40)");
        }
        if (o.DrainDelay < TimeSpan.Zero || o.DrainDelay > TimeSpan.FromMinutes(10))
        {
            failures.Add($"Gateway:DrainDelay must be from 00:00:00 to 00:10:00, not {o.DrainDelay} (e.g. 00:00:05: as long as load balancers take to stop sending here)");
        }
        if (o.ShutdownGracePeriod < TimeSpan.Zero)
        {
            failures.Add($"Gateway:ShutdownGracePeriod must not be negative, not {o.ShutdownGracePeriod} (e.g. 00:00:30)");
        }
        if (o.HeartbeatInterval < TimeSpan.FromMilliseconds(100))
        {
            failures.Add("Gateway:HeartbeatInterval must be at least 100 ms (e.g. 00:00:10)");
        }
        if (o.ReceiveWindow is < 1024 or > 64 * 1024 * 1024)
        {
            failures.Add($"Gateway:ReceiveWindow {o.ReceiveWindow} must be between 1024 and 67108864 bytes");
        }
        if (o.MaxDataFrame is < 1024 or > 65536)
        {
            failures.Add($"Gateway:MaxDataFrame {o.MaxDataFrame} must be between 1024 and 65536 bytes");
        }
        if (o.MaxBatchBytes < o.MaxDataFrame)
        {
            failures.Add("Gateway:MaxBatchBytes must be at least Gateway:MaxDataFrame");
        }
        if (o.MaxQueuedFramesPerStream < 16 || o.MaxProtocolViolations < 1)
        {
            failures.Add($"Gateway:MaxQueuedFramesPerStream ({o.MaxQueuedFramesPerStream}) must be at least 16 and Gateway:MaxProtocolViolations ({o.MaxProtocolViolations}) at least 1");
        }
        if (o.MaxStreamQueuedBytes is < 0 or > 64 * 1024 * 1024)
        {
            failures.Add($"Gateway:MaxStreamQueuedBytes {o.MaxStreamQueuedBytes} must be between 0 (one frame at a time) and 67108864 bytes");
        }
        if (o.MaxTunnelMessageSize < o.MaxBatchBytes + 65536)
        {
            failures.Add("Gateway:MaxTunnelMessageSize must exceed Gateway:MaxBatchBytes by at least 65536");
        }
        if (o.ClusterHeartbeatInterval < TimeSpan.FromMilliseconds(100))
        {
            failures.Add("Gateway:ClusterHeartbeatInterval must be at least 100 ms (e.g. 00:00:05; keep Directory:GatewayTimeToLive at three of it)");
        }
        if (o.PeerDialTimeout <= TimeSpan.Zero || o.PermitLeaseTimeout <= TimeSpan.Zero)
        {
            failures.Add("Gateway:PeerDialTimeout and Gateway:PermitLeaseTimeout must be positive (e.g. 00:00:02)");
        }
        if (o.DegradedPermitsPerAgent < 0)
        {
            failures.Add("Gateway:DegradedPermitsPerAgent must not be negative (0 refuses requests while the cluster cannot grant permits)");
        }
        if (!string.IsNullOrWhiteSpace(o.AdvertisedTunnel) && !Uri.TryCreate(o.AdvertisedTunnel, UriKind.Absolute, out _))
        {
            failures.Add($"Gateway:AdvertisedTunnel '{o.AdvertisedTunnel}' is not an absolute URL; set it like http://10.0.0.5:7070");
        }
        if (!string.IsNullOrWhiteSpace(o.AgentAdvertisedTunnel) && !string.Equals(o.AgentAdvertisedTunnel.Trim(), "none", StringComparison.OrdinalIgnoreCase)
            && !(Uri.TryCreate(o.AgentAdvertisedTunnel, UriKind.Absolute, out var agentUrl) && agentUrl.Scheme is "http" or "https"))
        {
            failures.Add($"Gateway:AgentAdvertisedTunnel '{o.AgentAdvertisedTunnel}' is neither an absolute http(s) URL nor \"none\"; set it like https://gw-0.tunnel.example.com:443, or to none");
        }
        if (o.CertificateCheckInterval < TimeSpan.Zero)
        {
            failures.Add("Gateway:CertificateCheckInterval may not be negative (00:00:00 loads the certificates once)");
        }
        if (o.PermitBatchSize < 1)
        {
            failures.Add("Gateway:PermitBatchSize must be at least 1");
        }
        if (o.PermitRenewInterval <= TimeSpan.Zero || o.PermitIdleReturn < TimeSpan.Zero)
        {
            failures.Add("Gateway:PermitRenewInterval must be positive and Gateway:PermitIdleReturn not negative");
        }
        if (o.QueueTimeout < TimeSpan.Zero || o.MaxQueuedPerAgent < 0)
        {
            failures.Add("Gateway:QueueTimeout and Gateway:MaxQueuedPerAgent may not be negative");
        }
        for (int i = 0; i < o.AdminTokens.Count; i++)
        {
            var t = o.AdminTokens[i];
            if (Tunnel.HelloCheck.NameProblem(t.Name) is { } nameProblem)
            {
                failures.Add($"Gateway:AdminTokens:{i}:Name {nameProblem}");
            }
            if (t.Sha256 is not { Length: 64 } || !t.Sha256.All(Uri.IsHexDigit))
            {
                failures.Add($"Gateway:AdminTokens:{i}:Sha256 must be 64 hex digits (otun hash-token prints it)");
            }
            if (t.Scope is not (AdminScopes.Read or AdminScopes.Full))
            {
                failures.Add($"Gateway:AdminTokens:{i}:Scope '{t.Scope}' must be read or full");
            }
        }
        if (o.MaxInFlightPerAgent < 0)
        {
            failures.Add($"Gateway:MaxInFlightPerAgent ({o.MaxInFlightPerAgent}) may not be negative (0: three quarters of the gateway's bound)");
        }
        if (o.MaxInFlightPerService < 0)
        {
            failures.Add($"Gateway:MaxInFlightPerService ({o.MaxInFlightPerService}) may not be negative (0: three quarters of the gateway's bound)");
        }
        if (o.MaxHelloServices < 1 || o.MaxAgentSlots < 1)
        {
            failures.Add($"Gateway:MaxHelloServices ({o.MaxHelloServices}) and Gateway:MaxAgentSlots ({o.MaxAgentSlots}) must be at least 1");
        }
        if (o.EpochClockSkew < TimeSpan.Zero)
        {
            failures.Add($"Gateway:EpochClockSkew ({o.EpochClockSkew}) may not be negative");
        }
        if (o.MaxInFlight < 1 || o.MaxTunnelBufferBytes < o.ReceiveWindow)
        {
            failures.Add("Gateway:MaxInFlight must be at least 1 and Gateway:MaxTunnelBufferBytes at least Gateway:ReceiveWindow");
        }
        if (o.MaxRequestHeaderCount < 1 || o.MaxRequestHeadersTotalSize < 1024 || o.MaxRequestLineSize < 256)
        {
            failures.Add("Gateway:MaxRequestHeaderCount must be at least 1, Gateway:MaxRequestHeadersTotalSize at least 1024 and Gateway:MaxRequestLineSize at least 256");
        }
        if (o.RequestHeadersTimeout <= TimeSpan.Zero || o.KeepAliveTimeout <= TimeSpan.Zero || o.WebSocketIdleTimeout <= TimeSpan.Zero)
        {
            failures.Add("Gateway:RequestHeadersTimeout, Gateway:KeepAliveTimeout and Gateway:WebSocketIdleTimeout must be positive");
        }
        if (o.MinRequestBodyDataRate < 0 || (o.MinRequestBodyDataRate > 0 && o.MinRequestBodyDataRateGracePeriod <= TimeSpan.FromSeconds(1)))
        {
            failures.Add("Gateway:MinRequestBodyDataRate may not be negative, and Gateway:MinRequestBodyDataRateGracePeriod must be over 1 s (Kestrel requires it; e.g. 00:00:05)");
        }
        if (o.MaxIngressConnections < 0 || o.MaxUpgradedConnections < 0)
        {
            failures.Add("Gateway:MaxIngressConnections and Gateway:MaxUpgradedConnections may not be negative (0: no limit)");
        }
        if (o.Http2InitialStreamWindowSize < 65535 || o.Http2InitialConnectionWindowSize < o.Http2InitialStreamWindowSize)
        {
            failures.Add("Gateway:Http2InitialStreamWindowSize must be at least 65535 and Gateway:Http2InitialConnectionWindowSize at least the stream window");
        }
        if (o.Http2MaxStreamsPerConnection < 1 || o.Http2HeaderTableSize < 0 || o.Http2MaxFrameSize is < 16384 or > 16777215 || o.Http2MaxRequestHeaderFieldSize < 1024)
        {
            failures.Add("Gateway:Http2MaxStreamsPerConnection must be at least 1, Gateway:Http2HeaderTableSize not negative, Gateway:Http2MaxFrameSize between 16384 and 16777215 and Gateway:Http2MaxRequestHeaderFieldSize at least 1024");
        }
        if (o.TransportBlockSize is < 4096 or > 1024 * 1024)
        {
            failures.Add($"Gateway:TransportBlockSize {o.TransportBlockSize} must be between 4096 and 1048576 bytes (Kestrel's read and write buffer blocks)");
        }
        if (o.TransportPoolRetainedBytes < 0)
        {
            failures.Add($"Gateway:TransportPoolRetainedBytes {o.TransportPoolRetainedBytes} must not be negative");
        }
        for (int i = 0; i < o.TrustedProxies.Count; i++)
        {
            if (!Ingress.VisitorAccess.TryParseNetwork(o.TrustedProxies[i], out _))
            {
                failures.Add($"Gateway:TrustedProxies:{i} '{o.TrustedProxies[i]}' is not an IP address or CIDR network (e.g. 10.0.0.0/8)");
            }
        }
        for (int i = 0; i < o.Agents.Count; i++)
        {
            var a = o.Agents[i];
            if (string.IsNullOrWhiteSpace(a.Id))
            {
                failures.Add($"Gateway:Agents:{i}:Id is empty; give the agent id the token belongs to");
            }
            if (a.TokenSha256.Length != 64 || !a.TokenSha256.All(Uri.IsHexDigit))
            {
                failures.Add($"Gateway:Agents:{i}:TokenSha256 must be 64 hex digits (the SHA-256 of the token; 'otun hash-token' prints it)");
            }
            if (a.Services.Count == 0)
            {
                failures.Add($"Gateway:Agents:{i}:Services is empty; list the services agent '{a.Id}' may serve (or \"*\")");
            }
        }
        for (int i = 0; i < o.Routes.Count; i++)
        {
            var r = o.Routes[i];
            if (string.IsNullOrWhiteSpace(r.Host) || string.IsNullOrWhiteSpace(r.Service))
            {
                failures.Add($"Gateway:Routes:{i} needs both Host and Service");
            }
            else if (r.Host.Contains('*') && !(r.Host.StartsWith("*.", StringComparison.Ordinal) && r.Host.LastIndexOf('*') == 0))
            {
                failures.Add($"Gateway:Routes:{i}:Host '{r.Host}': a wildcard is only allowed as the first label (*.example.com)");
            }
            if (r.Capture.Bodies && r.Capture.MaxBytes is < 1 or > 1024 * 1024)
            {
                failures.Add($"Gateway:Routes:{i}:Capture:MaxBytes {r.Capture.MaxBytes} must be between 1 and 1048576");
            }
            if (RouteProblem(r.MaxRequestBodySize, r.Access, r.CredentialSha256, r.AllowedNetworks, r.PathMode, r.Identity?.ToRecord()) is { } problem)
            {
                failures.Add($"Gateway:Routes:{i}: {problem}");
            }
            if ((Policy.PolicyConfig.RewriteProblem(r.Rewrite, r.PathPrefix) ?? Policy.PolicyConfig.RateLimitProblem(r.RateLimit)
                ?? Health.RouteResilienceConfig.Problem(r.Resilience)) is { } policyProblem)
            {
                failures.Add($"Gateway:Routes:{i}:{policyProblem}");
            }
        }
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    /// <summary>What is wrong with a route's visitor-side settings (shared with the admin API), or null.</summary>
    public static string? RouteProblem(long? maxRequestBodySize, string? access, string? credentialSha256, IEnumerable<string>? allowedNetworks, string? pathMode,
        OrleansTunnel.Grains.RouteIdentity? identity = null)
    {
        if (OrleansTunnel.Mux.CanonicalPath.Mode(pathMode) is null)
        {
            return $"PathMode '{pathMode}' must be Canonical or Raw";
        }
        if (maxRequestBodySize < 0)
        {
            return "MaxRequestBodySize may not be negative";
        }
        var kind = Ingress.VisitorAccess.Kind(access);
        if (kind is null)
        {
            return $"Access '{access}' must be none, basic, bearer, oidc or jwt";
        }
        if (Identity.IdentityValidation.Problem(kind, identity) is { } identityProblem)
        {
            return identityProblem;
        }
        if (kind is Ingress.VisitorAccess.Basic or Ingress.VisitorAccess.Bearer && (credentialSha256 is not { Length: 64 } || !credentialSha256.All(Uri.IsHexDigit)))
        {
            return "CredentialSha256 must be 64 hex digits (SHA-256 of \"user:password\" for basic, of the token for bearer)";
        }
        foreach (var network in allowedNetworks ?? [])
        {
            if (!Ingress.VisitorAccess.TryParseNetwork(network, out _))
            {
                return $"AllowedNetworks entry '{network}' is not an IP address or CIDR network (e.g. 10.0.0.0/8)";
            }
        }
        return null;
    }
}
