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

    /// <summary>The tunnel endpoint agents dial (gRPC over HTTP/2).</summary>
    public string Tunnel { get; set; } = "http://127.0.0.1:7070";

    /// <summary>Admin endpoint: /healthz, /readyz (never on the public ingress).</summary>
    public string Admin { get; set; } = "http://127.0.0.1:9090";

    /// <summary>SHA-256 (hex) of the admin API's bearer token; empty: the admin API is disabled.</summary>
    public string? AdminTokenSha256 { get; set; }

    /// <summary>How long the gateway waits for a backend's response head before answering 504.</summary>
    public TimeSpan ResponseTimeout { get; set; } = TimeSpan.FromSeconds(100);

    /// <summary>Largest request body accepted from a visitor (bytes); null: no limit. Bodies stream, so this bounds traffic, not memory.</summary>
    public long? MaxRequestBodySize { get; set; }

    /// <summary>On shutdown, how long in-flight requests may take to finish before they are cut.</summary>
    public TimeSpan ShutdownGracePeriod { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Value of Retry-After on 503 answers.</summary>
    public TimeSpan RetryAfter { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Ping interval on tunnel connections; three missed pongs close the connection.</summary>
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Per-request credit the gateway grants agents for response bodies (bytes).</summary>
    public int ReceiveWindow { get; set; } = 256 * 1024;

    /// <summary>Largest data frame the gateway sends (bytes, at most 65536).</summary>
    public int MaxDataFrame { get; set; } = 64 * 1024;

    /// <summary>Most bytes the tunnel writer coalesces into one gRPC message.</summary>
    public int MaxBatchBytes { get; set; } = 512 * 1024;

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

    /// <summary>How often the gateway renews its leases (keep well under Backpressure:LeaseTimeout).</summary>
    public TimeSpan PermitRenewInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How long a request over an agent's limit waits for a permit; zero: fail fast with 503.</summary>
    public TimeSpan QueueTimeout { get; set; } = TimeSpan.Zero;

    /// <summary>Most requests waiting for one agent's permits at once (the queue is bounded).</summary>
    public int MaxQueuedPerAgent { get; set; } = 100;

    /// <summary>Most requests this gateway forwards at once.</summary>
    public int MaxInFlight { get; set; } = 10_000;

    /// <summary>
    /// Bound of the gateway's tunnel buffers: in-flight requests times the receive window may not
    /// exceed it (the worst case of what credit lets agents send before visitors drain it).
    /// </summary>
    public long MaxTunnelBufferBytes { get; set; } = 1L << 30;

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

    /// <summary>Services this agent may serve; "*" allows any.</summary>
    public List<string> Services { get; set; } = [];
}

/// <summary>A route from configuration.</summary>
public sealed class RouteOptions
{
    public string Host { get; set; } = "";
    public string? PathPrefix { get; set; }
    public string Service { get; set; } = "";
}
