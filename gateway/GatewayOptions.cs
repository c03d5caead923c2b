namespace OrleansTunnel.Gateway;

/// <summary>Gateway settings (configuration section "Gateway"). Every limit has a default; see README.</summary>
public sealed class GatewayOptions
{
    public const string Section = "Gateway";

    /// <summary>This gateway's id in the cluster (default: a fresh id per process).</summary>
    public string GatewayId { get; set; } = "gw-" + Guid.NewGuid().ToString("N")[..8];

    /// <summary>Public ingress for visitors.</summary>
    public string Ingress { get; set; } = "http://127.0.0.1:8080";

    /// <summary>Public HTTPS ingress (ALPN h2 and http/1.1), e.g. https://0.0.0.0:8443; empty: none.</summary>
    public string? HttpsIngress { get; set; }

    /// <summary>Cleartext HTTP/2 (prior knowledge) ingress for callers inside a cluster; empty: none.</summary>
    public string? H2cIngress { get; set; }

    /// <summary>Ingress certificate: a PEM certificate (with CertificateKeyPath) or a PFX/PKCS#12 file.</summary>
    public string? CertificatePath { get; set; }

    /// <summary>PEM private key of CertificatePath (when that is a PEM certificate).</summary>
    public string? CertificateKeyPath { get; set; }

    /// <summary>Password of a PFX certificate or an encrypted PEM key (a secret: never logged).</summary>
    public string? CertificatePassword { get; set; }

    /// <summary>Tunnel TLS certificate (PEM with TunnelCertificateKeyPath, or PFX); empty: the ingress certificate.</summary>
    public string? TunnelCertificatePath { get; set; }

    /// <summary>
    /// How often a TLS handshake may check the certificate files (ingress and tunnel) for a renewal and
    /// load it (cert-manager renews Secrets in place). Zero: load them once at start. Default 00:00:10.
    /// </summary>
    public TimeSpan CertificateCheckInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>PEM private key of TunnelCertificatePath.</summary>
    public string? TunnelCertificateKeyPath { get; set; }

    /// <summary>
    /// PEM CA of agent client certificates. When set, agents must present a certificate issued by it
    /// (mutual TLS) whose common name or DNS name is their agent id.
    /// </summary>
    public string? TunnelClientCaPath { get; set; }

    /// <summary>Tunnel handshakes allowed per second from one source address (a burst of twice that is allowed).</summary>
    public double HandshakesPerSecondPerSource { get; set; } = 5;

    /// <summary>The tunnel endpoint agents dial (gRPC over HTTP/2; https:// for TLS, required in production).</summary>
    public string Tunnel { get; set; } = "http://127.0.0.1:7070";

    /// <summary>Admin endpoint: /healthz, /readyz (never on the public ingress).</summary>
    public string Admin { get; set; } = "http://127.0.0.1:9090";

    /// <summary>SHA-256 (hex) of the admin API's bearer token; empty: the admin API is disabled.</summary>
    public string? AdminTokenSha256 { get; set; }

    /// <summary>
    /// More admin tokens, each with a name (shown in the audit log), the SHA-256 of the token and a scope:
    /// "read" (GET and HEAD only: listings, lookups, the inspector's views) or "full" (default). Remove an
    /// entry to revoke that token; Gateway:AdminTokenSha256 is a full token named "admin".
    /// </summary>
    public List<AdminTokenOptions> AdminTokens { get; set; } = [];

    /// <summary>File the admin API appends one JSON line to per change (who, from where, what, status); empty: the log only.</summary>
    public string? AuditLogPath { get; set; }

    /// <summary>Host names accepted on the admin and dashboard listeners besides IP literals and localhost (DNS rebinding).</summary>
    public List<string> AdminHosts { get; set; } = [];

    /// <summary>Failed admin token attempts allowed per source address per minute; beyond, 429 until the minute ends. 0: no limit.</summary>
    public int AdminFailuresPerMinute { get; set; } = 10;

    /// <summary>How long the gateway waits for a backend's response head before answering 504.</summary>
    public TimeSpan ResponseTimeout { get; set; } = TimeSpan.FromSeconds(100);

    /// <summary>Largest request body accepted from a visitor (bytes); null: no limit. Bodies stream, so this bounds traffic, not memory.</summary>
    public long? MaxRequestBodySize { get; set; }

    /// <summary>On shutdown, how long in-flight requests may take to finish before they are cut.</summary>
    public TimeSpan ShutdownGracePeriod { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// On shutdown, how long the gateway keeps serving visitors after it reported not ready and told
    /// agents and peer gateways go-away, so load balancers and agents move first (a pod's preStop).
    /// Then it stops accepting and in-flight requests get <see cref="ShutdownGracePeriod"/>. 0: none.
    /// </summary>
    public TimeSpan DrainDelay { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Value of Retry-After on 503 answers.</summary>
    public TimeSpan RetryAfter { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Ping interval on tunnel connections; three missed pongs close the connection.</summary>
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Per-request credit the gateway grants agents for response bodies (bytes). One stream moves at most
    /// this much per tunnel round trip: 1 MiB keeps a download near 1 GB/s at a 1 ms round trip.
    /// </summary>
    public int ReceiveWindow { get; set; } = 1024 * 1024;

    /// <summary>Largest data frame the gateway sends (bytes, at most 65536).</summary>
    public int MaxDataFrame { get; set; } = 64 * 1024;

    /// <summary>Most bytes the tunnel writer coalesces into one gRPC message.</summary>
    public int MaxBatchBytes { get; set; } = 512 * 1024;

    /// <summary>
    /// Most response- and request-body bytes one request keeps queued for the tunnel writer (at least
    /// one data frame always goes): lets the writer batch several frames of a bulk stream.
    /// </summary>
    public int MaxStreamQueuedBytes { get; set; } = 256 * 1024;

    /// <summary>Frames one stream may hold unread (empty frames cost no credit); more: that stream is reset as a protocol error. Default 4096.</summary>
    public int MaxQueuedFramesPerStream { get; set; } = 4096;

    /// <summary>Stream protocol errors an agent (or peer) may cause on one connection before it is closed. Default 16.</summary>
    public int MaxProtocolViolations { get; set; } = 16;

    /// <summary>Largest gRPC message accepted on the tunnel (bytes).</summary>
    public int MaxTunnelMessageSize { get; set; } = 4 * 1024 * 1024;

    /// <summary>Most concurrent requests on one agent connection.</summary>
    public int MaxStreamsPerConnection { get; set; } = 10_000;

    /// <summary>How long the first (hello) frame may take after an agent connects.</summary>
    public TimeSpan HelloTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Permits leased from an agent's backpressure grain at a time.</summary>
    public int PermitBatchSize { get; set; } = 16;

    /// <summary>Unused leased permits go back to the grain after this long without use.</summary>
    public TimeSpan PermitIdleReturn { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How long a permit lease from an agent's backpressure grain may take before the gateway falls back to its degraded allowance. Default 00:00:02.</summary>
    public TimeSpan PermitLeaseTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// While the cluster cannot grant permits (a silo just died, Redis or the network is down), the
    /// gateway admits up to this many concurrent requests per agent and service on its own instead of
    /// answering 503; 0: refuse them (strict limits). Default 64.
    /// </summary>
    public int DegradedPermitsPerAgent { get; set; } = 64;

    /// <summary>How often the gateway renews its leases (keep well under Backpressure:LeaseTimeout).</summary>
    public TimeSpan PermitRenewInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How long a request over an agent's limit waits for a permit; zero: fail fast with 503.</summary>
    public TimeSpan QueueTimeout { get; set; } = TimeSpan.Zero;

    /// <summary>Most requests waiting for one agent's permits at once (the queue is bounded).</summary>
    public int MaxQueuedPerAgent { get; set; } = 100;

    /// <summary>Most requests this gateway forwards at once.</summary>
    public int MaxInFlight { get; set; } = 10_000;

    /// <summary>
    /// Requests one agent may have in flight through this gateway (its tunnel buffers are this times
    /// ReceiveWindow at most), so one tenant cannot take every slot of a gateway. Over it: 503.
    /// Default 0: three quarters of the gateway's own bound, min(MaxInFlight, MaxTunnelBufferBytes / ReceiveWindow)
    /// (768 with the defaults), which leaves a quarter to the other tenants.
    /// </summary>
    public int MaxInFlightPerAgent { get; set; }

    /// <summary>
    /// Requests one service may have in flight through this gateway, over all the agents serving it, so one
    /// tenant's service cannot take every slot even with many agents. Over it: 503. Default 0: the same
    /// default as <see cref="MaxInFlightPerAgent"/> (three quarters of the gateway's own bound).
    /// </summary>
    public int MaxInFlightPerService { get; set; }

    /// <summary>The per-service bound in force (<see cref="MaxInFlightPerService"/>, or its default).</summary>
    internal long EffectiveMaxInFlightPerService => MaxInFlightPerService > 0
        ? MaxInFlightPerService
        : Math.Max(1, Math.Min(MaxInFlight, MaxTunnelBufferBytes / Math.Max(1, ReceiveWindow)) * 3 / 4);

    /// <summary>The per-agent bound in force (<see cref="MaxInFlightPerAgent"/>, or its default).</summary>
    internal long EffectiveMaxInFlightPerAgent => MaxInFlightPerAgent > 0
        ? MaxInFlightPerAgent
        : Math.Max(1, Math.Min(MaxInFlight, MaxTunnelBufferBytes / Math.Max(1, ReceiveWindow)) * 3 / 4);

    /// <summary>
    /// Bound of the gateway's tunnel buffers: in-flight requests times the receive window may not
    /// exceed it (the worst case of what credit lets agents send before visitors drain it).
    /// </summary>
    public long MaxTunnelBufferBytes { get; set; } = 1L << 30;

    /// <summary>Most services one hello may offer; more: the hello is refused (INVALID_ARGUMENT). Default 64.</summary>
    public int MaxHelloServices { get; set; } = 64;

    /// <summary>Connection slots an agent may use (its hello's slot must be below this). Default 16.</summary>
    public int MaxAgentSlots { get; set; } = 16;

    /// <summary>
    /// How far an agent's epoch (its clock, Unix ms) may run ahead of this gateway's clock. A later epoch is
    /// refused: it would supersede every future session of its slot. Default 5 minutes.
    /// </summary>
    public TimeSpan EpochClockSkew { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// Most request headers a visitor may send (HTTP/1.1 and HTTP/2; Kestrel's MaxRequestHeaderCount).
    /// Over it: 431 Request Header Fields Too Large and the connection is closed. Default 100.
    /// </summary>
    public int MaxRequestHeaderCount { get; set; } = 100;

    /// <summary>
    /// Largest total size of a visitor's request headers in bytes (Kestrel's MaxRequestHeadersTotalSize).
    /// Over it: 431 and the connection is closed. Default 32768 (32 KiB).
    /// </summary>
    public int MaxRequestHeadersTotalSize { get; set; } = 32 * 1024;

    /// <summary>
    /// Longest HTTP/1.1 request line (method, target and version) in bytes (Kestrel's MaxRequestLineSize).
    /// Over it: 414 URI Too Long and the connection is closed. Default 8192 (8 KiB).
    /// </summary>
    public int MaxRequestLineSize { get; set; } = 8 * 1024;

    /// <summary>
    /// How long a visitor may take to send a request's headers (Kestrel's RequestHeadersTimeout; slowloris).
    /// Over it: 408 and the connection is closed. Default 00:00:30.
    /// </summary>
    public TimeSpan RequestHeadersTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How long an idle keep-alive connection is kept open (Kestrel's KeepAliveTimeout). It does not cover
    /// upgraded connections: see <see cref="WebSocketIdleTimeout"/>. Default 00:02:10.
    /// </summary>
    public TimeSpan KeepAliveTimeout { get; set; } = TimeSpan.FromSeconds(130);

    /// <summary>
    /// Slowest accepted request body upload in bytes per second, averaged after
    /// <see cref="MinRequestBodyDataRateGracePeriod"/> (Kestrel's MinRequestBodyDataRate). Slower uploads
    /// are cut (408 if nothing was answered yet). Not applied to gRPC calls and WebSockets, which may go
    /// quiet legitimately. 0: no minimum. Default 240.
    /// </summary>
    public double MinRequestBodyDataRate { get; set; } = 240;

    /// <summary>Grace period before <see cref="MinRequestBodyDataRate"/> applies (over 1 s, as Kestrel requires). Default 00:00:05.</summary>
    public TimeSpan MinRequestBodyDataRateGracePeriod { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// A tunnelled WebSocket on which no byte moved in either direction for this long is closed on both
    /// sides (the visitor's connection and the backend's). Kestrel's keep-alive timeout does not cover
    /// upgraded connections. Default 00:10:00.
    /// </summary>
    public TimeSpan WebSocketIdleTimeout { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>
    /// Most concurrent visitor connections over all ingress listeners; further connections are closed at
    /// once (the tunnel and admin listeners are not counted, so visitors cannot lock agents out).
    /// 0: no limit. Default 10000.
    /// </summary>
    public int MaxIngressConnections { get; set; } = 10_000;

    /// <summary>
    /// Most concurrent upgraded (HTTP/1.1 WebSocket) connections (Kestrel's MaxConcurrentUpgradedConnections);
    /// over it the upgrade is refused. 0: no limit. Default 5000.
    /// </summary>
    public int MaxUpgradedConnections { get; set; } = 5_000;

    /// <summary>
    /// Most concurrent streams a visitor may open on one HTTP/2 connection (Kestrel's
    /// Http2.MaxStreamsPerConnection, also applied to the tunnel listener). More are refused with
    /// RST_STREAM REFUSED_STREAM. Default 100.
    /// </summary>
    public int Http2MaxStreamsPerConnection { get; set; } = 100;

    /// <summary>HPACK dynamic table size the gateway lets HTTP/2 peers use (Kestrel's Http2.HeaderTableSize). Default 4096.</summary>
    public int Http2HeaderTableSize { get; set; } = 4096;

    /// <summary>
    /// HTTP/2 receive window per stream (Kestrel's Http2.InitialStreamWindowSize, 65535..2147483647). A tunnel
    /// connection is one gRPC stream carrying every response on it, so this bounds a whole tunnel direction
    /// per round trip (Kestrel's 768 KiB default held downloads near 0.5 GB/s). Default 8 MiB.
    /// </summary>
    public int Http2InitialStreamWindowSize { get; set; } = 8 * 1024 * 1024;

    /// <summary>HTTP/2 receive window per connection (Kestrel's Http2.InitialConnectionWindowSize, at least the stream window). Default 16 MiB.</summary>
    public int Http2InitialConnectionWindowSize { get; set; } = 16 * 1024 * 1024;

    /// <summary>Largest HTTP/2 frame payload the gateway accepts (Kestrel's Http2.MaxFrameSize, 16384..16777215). Default 16384.</summary>
    public int Http2MaxFrameSize { get; set; } = 16 * 1024;

    /// <summary>
    /// Size of Kestrel's buffer blocks (4096..1048576 bytes; Kestrel's own is 4096). One socket read fills at most
    /// one block, so bulk bytes arriving at the gateway (uploads, agents' answers) cost one receive call per block.
    /// A connection with bytes buffered holds at least one block; idle keep-alive connections hold none. Default 65536.
    /// </summary>
    public int TransportBlockSize { get; set; } = 64 * 1024;

    /// <summary>Free blocks of <see cref="TransportBlockSize"/> kept for reuse, in bytes (more are left to the GC). Default 32 MiB.</summary>
    public long TransportPoolRetainedBytes { get; set; } = 32L * 1024 * 1024;

    /// <summary>
    /// Largest decoded HTTP/2 header field (name plus value; Kestrel's Http2.MaxRequestHeaderFieldSize). Bounds
    /// HPACK bombs together with <see cref="MaxRequestHeadersTotalSize"/>. Default 16384.
    /// </summary>
    public int Http2MaxRequestHeaderFieldSize { get; set; } = 16 * 1024;

    /// <summary>
    /// Peers trusted to set forwarding headers (IP addresses or CIDR networks, e.g. "10.0.0.0/8").
    /// From a trusted peer the gateway appends the peer's address to the incoming X-Forwarded-For and
    /// keeps the incoming X-Forwarded-Proto, X-Forwarded-Host and Forwarded; from anyone else those
    /// headers are replaced by what the gateway saw. Default: none.
    /// </summary>
    public List<string> TrustedProxies { get; set; } = [];

    /// <summary>
    /// Client-address and original-URL headers a visitor sent that are forwarded anyway (by default the
    /// gateway removes X-Real-IP, True-Client-IP, X-Client-IP, CF-Connecting-IP, Fastly-Client-IP,
    /// X-Cluster-Client-IP, X-Forwarded-Port, X-Forwarded-Prefix, X-Forwarded-Server, X-Original-URL,
    /// X-Rewrite-URL and X-Original-Forwarded-For, which a backend may trust). Default: none.
    /// </summary>
    public List<string> KeepClientHeaders { get; set; } = [];

    private (List<string> Source, HashSet<string> Set)? _keepClientHeaders;

    /// <summary><see cref="KeepClientHeaders"/> as a case-insensitive set (built once per list).</summary>
    internal HashSet<string> KeepClientHeadersSet
    {
        get
        {
            var cached = _keepClientHeaders;
            if (cached is { } c && ReferenceEquals(c.Source, KeepClientHeaders))
            {
                return c.Set;
            }
            var set = new HashSet<string>(KeepClientHeaders, StringComparer.OrdinalIgnoreCase);
            _keepClientHeaders = (KeepClientHeaders, set);
            return set;
        }
    }

    /// <summary>
    /// Tunnel URL other gateways and agents dial to reach this gateway (published in the cluster's
    /// gateway directory and sent to agents in the welcome). Default: <see cref="Tunnel"/> with its bound
    /// port; when that listens on a wildcard address (0.0.0.0) nothing is published unless this is set
    /// (the Helm chart sets it to the pod's address).
    /// </summary>
    public string? AdvertisedTunnel { get; set; }

    /// <summary>
    /// Tunnel URL sent to agents (Welcome and config frames) so they spread their connections over
    /// distinct gateways, when it differs from the in-cluster <see cref="AdvertisedTunnel"/> peers dial,
    /// e.g. https://gw-0.tunnel.example.com:443 for agents outside a Kubernetes cluster. Empty: the
    /// same URL as the peers'. "none": agents are told no address of this gateway (they keep dialling
    /// their configured Agent:Gateways), for when this gateway has no address agents can reach.
    /// </summary>
    public string? AgentAdvertisedTunnel { get; set; }

    /// <summary>
    /// How often the gateway reports itself and its agent sessions to the cluster's directory (also at
    /// once after a tunnel opens or closes). The directory declares a gateway dead after
    /// Directory:GatewayTimeToLive (silo option, default 15 s = three of these). Default 00:00:05.
    /// </summary>
    public TimeSpan ClusterHeartbeatInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>How long a request waits for the link to another gateway to come up when only that gateway holds the service's agents. Default 00:00:02.</summary>
    public TimeSpan PeerDialTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// When a request gets its RequestGrain (so any node can address it by id and the dashboard shows
    /// it): "on-demand" (default) only when it outlives <see cref="RequestGrainAfter"/> or somebody
    /// looks it up or cancels it; "always" for every request (a grain activation per request, about
    /// half the throughput of small requests); "off" never from the request path (look-ups and cancels
    /// by id still work: they activate the grain, which asks this gateway).
    /// </summary>
    public string RequestGrains { get; set; } = "on-demand";

    /// <summary>With RequestGrains=on-demand: a request still running after this gets its grain (long downloads, SSE, WebSockets, gRPC streams). Default 00:00:01.</summary>
    public TimeSpan RequestGrainAfter { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How long a finished request stays answerable by id from this gateway's journal (within Inspector:Capacity). Default 00:05:00.</summary>
    public TimeSpan RequestRetention { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>The parsed <see cref="RequestGrains"/>.</summary>
    public RequestGrainMode RequestGrainMode => RequestGrains.Trim().ToLowerInvariant() switch
    {
        "always" => RequestGrainMode.Always,
        "off" => RequestGrainMode.Off,
        _ => RequestGrainMode.OnDemand,
    };

    /// <summary>PEM CA that other gateways' https:// tunnel certificates chain to (cross-gateway links); empty: the system's trust store.</summary>
    public string? PeerCaFile { get; set; }

    /// <summary>Agents allowed to connect: id, SHA-256 of the token, services it may serve.</summary>
    public List<AgentCredentialOptions> Agents { get; set; } = [];

    /// <summary>Routes seeded into the cluster's routing table at start (idempotent).</summary>
    public List<RouteOptions> Routes { get; set; } = [];
}

/// <summary>One agent credential. Only the token's hash is configured, never the token.</summary>
public sealed class AgentCredentialOptions
{
    /// <summary>The agent id the token belongs to.</summary>
    public string Id { get; set; } = "";

    /// <summary>Lower-case hex SHA-256 of the token (<c>otun hash-token</c> prints it).</summary>
    public string TokenSha256 { get; set; } = "";

    /// <summary>
    /// A second accepted hash, for rotation without downtime: put the new token's hash here, move the
    /// agent to the new token, then make it TokenSha256 and clear this (sessions on a hash no longer
    /// configured are closed at the next configuration reload or revocation check).
    /// </summary>
    public string? NextTokenSha256 { get; set; }

    /// <summary>Services this agent may serve; "*" allows any.</summary>
    public List<string> Services { get; set; } = [];
}

/// <summary>A route from configuration.</summary>
public sealed class RouteOptions
{
    public string Host { get; set; } = "";
    public string? PathPrefix { get; set; }
    public string Service { get; set; } = "";

    /// <summary>Largest request body on this route (bytes); overrides Gateway:MaxRequestBodySize. Over it: 413.</summary>
    public long? MaxRequestBodySize { get; set; }

    /// <summary>Visitor authentication on this route: "none" (default), "basic", "bearer", "oidc" or "jwt" (the last two with <see cref="Identity"/>).</summary>
    public string? Access { get; set; }

    /// <summary>
    /// Lower-case hex SHA-256 of the credential: of "user:password" for basic, of the token for bearer.
    /// Only the hash is configured; the visitor's Authorization header is removed before forwarding.
    /// </summary>
    public string? CredentialSha256 { get; set; }

    /// <summary>What the request inspector keeps of this route's bodies (off unless set).</summary>
    public RouteCaptureOptions Capture { get; set; } = new();

    /// <summary>Visitor networks allowed on this route (IPs or CIDRs, e.g. "10.0.0.0/8"); empty: any. Others get 403.</summary>
    public List<string> AllowedNetworks { get; set; } = [];

    /// <summary>
    /// "Canonical" (default): targets a backend could read differently from the gateway (<c>//</c>, dot
    /// segments raw or encoded, %2F, %5C, <c>\</c>, <c>;</c>, NUL, double encodings) get 400. "Raw": such
    /// targets are forwarded byte for byte, unless a route of the same host checks access or networks.
    /// </summary>
    public string? PathMode { get; set; }

    /// <summary>Settings of Access "oidc" or "jwt" (see Identity.RouteIdentityOptions); null otherwise.</summary>
    public OrleansTunnel.Gateway.Identity.RouteIdentityOptions? Identity { get; set; }

    /// <summary>Rewrites of the forwarded target, Host and headers (README "Rewrites"); off unless set.</summary>
    public OrleansTunnel.Gateway.Policy.RouteRewriteOptions? Rewrite { get; set; }

    /// <summary>A cluster-wide rate limit (README "Rate limits"); none unless set.</summary>
    public OrleansTunnel.Gateway.Policy.RouteRateLimitOptions? RateLimit { get; set; }

    /// <summary>This route's retry and circuit settings over the gateway's Resilience section (README "Health checks, retries and circuit breaking").</summary>
    public OrleansTunnel.Gateway.Health.RouteResilienceOptions? Resilience { get; set; }
}

/// <summary>When requests get a RequestGrain (Gateway:RequestGrains).</summary>
public enum RequestGrainMode
{
    OnDemand,
    Always,
    Off,
}

/// <summary>Body capture for the request inspector, per route.</summary>
public sealed class RouteCaptureOptions
{
    /// <summary>Keep the first <see cref="MaxBytes"/> of each request and response body (never of WebSockets). Default false.</summary>
    public bool Bodies { get; set; }

    /// <summary>Most bytes kept of each body. Default 16384.</summary>
    public int MaxBytes { get; set; } = 16384;

    /// <summary>The route's capture size: 0 when off.</summary>
    public int Bytes => Bodies ? MaxBytes : 0;
}

/// <summary>One admin API token (Gateway:AdminTokens).</summary>
public sealed class AdminTokenOptions
{
    /// <summary>Who or what holds the token; written to the audit log with every change it makes.</summary>
    public string Name { get; set; } = "";

    /// <summary>Lower-case hex SHA-256 of the token (otun hash-token prints it).</summary>
    public string Sha256 { get; set; } = "";

    /// <summary>"read" (GET/HEAD only) or "full".</summary>
    public string Scope { get; set; } = AdminScopes.Full;
}

/// <summary>Admin token scopes.</summary>
public static class AdminScopes
{
    public const string Read = "read";
    public const string Full = "full";
}
