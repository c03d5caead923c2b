namespace OrleansTunnel.Agent;

/// <summary>Agent settings (configuration section "Agent"). Every limit has a default; see README.</summary>
public sealed class AgentOptions
{
    public const string Section = "Agent";

    /// <summary>The agent's id; the token must belong to it.</summary>
    public string AgentId { get; set; } = "";

    /// <summary>The agent's token (a secret: never logged).</summary>
    public string Token { get; set; } = "";

    /// <summary>Default tunnel endpoint when none is configured.</summary>
    public const string DefaultGateway = "http://127.0.0.1:7070";

    /// <summary>Tunnel endpoints of gateways to dial (default: <see cref="DefaultGateway"/>).</summary>
    public List<string> Gateways { get; set; } = [];

    /// <summary>
    /// Allow http:// (cleartext) tunnels to hosts other than loopback. Default false: the token and every
    /// request would cross the network unencrypted, so such a gateway URL is refused at start (configured)
    /// or not dialled (announced by the cluster).
    /// </summary>
    public bool AllowCleartext { get; set; }

    /// <summary>Services this agent exposes: name and local URL (http://, h2c:// or https://).</summary>
    public List<AgentServiceOptions> Services { get; set; } = [];

    /// <summary>Optional health endpoint (/healthz, /readyz: at least one tunnel up), e.g. http://0.0.0.0:9092; empty: the agent listens on no port.</summary>
    public string? Admin { get; set; }

    /// <summary>
    /// Further Host names the agent's admin listener answers (DNS rebinding); IP literals, localhost and
    /// *.localhost always pass; any other name gets 421.
    /// </summary>
    public List<string> AdminHosts { get; set; } = [];

    /// <summary>https:// gateways: PEM CA to trust for the gateway's certificate (e.g. a private CA).</summary>
    public string? GatewayCaFile { get; set; }

    /// <summary>https:// gateways: accept any certificate (testing only). Off by default.</summary>
    public bool GatewaySkipCertificateValidation { get; set; }

    /// <summary>Client certificate for mutual TLS with the gateway (PEM, with ClientCertificateKeyPath).</summary>
    public string? ClientCertificatePath { get; set; }

    /// <summary>PEM private key of ClientCertificatePath.</summary>
    public string? ClientCertificateKeyPath { get; set; }

    /// <summary>
    /// Tunnel connections to keep, each to a distinct gateway where several are known (configured or
    /// announced by the cluster), so losing one gateway interrupts no new request. Default 2.
    /// </summary>
    public int Connections { get; set; } = 2;

    /// <summary>First reconnect delay; doubles per failure (with jitter) up to ReconnectMaxDelay.</summary>
    public TimeSpan ReconnectMinDelay { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Cap of the reconnect delay.</summary>
    public TimeSpan ReconnectMaxDelay { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How long dialling a gateway and the hello exchange may take.</summary>
    public TimeSpan DialTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Ping interval when the gateway does not say one.</summary>
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Per-request credit the agent grants the gateway for request bodies (bytes); bounds an upload's speed per round trip.</summary>
    public int ReceiveWindow { get; set; } = 1024 * 1024;

    /// <summary>Largest data frame the agent sends (bytes, at most 65536).</summary>
    public int MaxDataFrame { get; set; } = 64 * 1024;

    /// <summary>Most bytes the tunnel writer coalesces into one gRPC message.</summary>
    public int MaxBatchBytes { get; set; } = 512 * 1024;

    /// <summary>
    /// Most body bytes one request keeps queued for the tunnel writer (at least one data frame always
    /// goes): lets the writer batch several frames of a bulk stream.
    /// </summary>
    public int MaxStreamQueuedBytes { get; set; } = 256 * 1024;

    /// <summary>Largest gRPC message accepted on the tunnel (bytes).</summary>
    public int MaxTunnelMessageSize { get; set; } = 4 * 1024 * 1024;

    /// <summary>Backend: TCP connect timeout.</summary>
    public TimeSpan BackendConnectTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Backend: idle pooled connections are closed after this long.</summary>
    public TimeSpan BackendIdleTimeout { get; set; } = TimeSpan.FromSeconds(90);

    /// <summary>Backend: HTTP/2 keep-alive ping interval (also while idle).</summary>
    public TimeSpan BackendKeepAlivePing { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Backend: HTTP/2 keep-alive ping timeout.</summary>
    public TimeSpan BackendKeepAlivePingTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Backend: most connections per backend (HTTP/1.1).</summary>
    public int BackendMaxConnections { get; set; } = int.MaxValue;


    /// <summary>Buffer used to read a backend's response body (bytes); the largest the agent grows to.</summary>
    public int ResponseBufferSize { get; set; } = 64 * 1024;

    /// <summary>
    /// First buffer for a response body of unknown length (bytes, 256..ResponseBufferSize): a gRPC answer or an
    /// event stream arrives a few hundred bytes at a time; a read that fills it grows the next to ResponseBufferSize.
    /// </summary>
    public int ResponseInitialBufferSize { get; set; } = 4 * 1024;

    /// <summary>
    /// On shutdown (SIGTERM), how long in-flight requests may take to finish after the agent told its
    /// gateways go-away (they send nothing new on its connections); then the tunnels close.
    /// </summary>
    public TimeSpan ShutdownGracePeriod { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// After a go-away (either way), a connection closes only once it carried no stream for this long
    /// (at least four round trips), so a request the gateway sent just before it learnt of the go-away
    /// is still served, not lost.
    /// </summary>
    public TimeSpan GoAwayQuietPeriod { get; set; } = TimeSpan.FromSeconds(1);
}

/// <summary>One service the agent exposes.</summary>
public sealed class AgentServiceOptions
{
    public string Name { get; set; } = "";

    /// <summary>Local URL of the backend: http://host:port, h2c://host:port or https://host:port.</summary>
    public string Url { get; set; } = "";

    /// <summary>https backends: PEM file of a CA to trust for this backend's certificate.</summary>
    public string? CaFile { get; set; }

    /// <summary>https backends: accept any certificate (self-signed backends). Off by default; prefer CaFile.</summary>
    public bool SkipCertificateValidation { get; set; }

    /// <summary>
    /// Path (and query) the agent probes with GET on the backend, e.g. /healthz; empty: not probed (always
    /// healthy). 2xx and 3xx are healthy; anything else, a refused connection or a timeout is a failure.
    /// </summary>
    public string? HealthPath { get; set; }

    /// <summary>Time between two probes of HealthPath.</summary>
    public TimeSpan HealthInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>How long one probe may take before it counts as a failure.</summary>
    public TimeSpan HealthTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Consecutive failed probes that make a healthy service unhealthy.</summary>
    public int UnhealthyThreshold { get; set; } = 2;

    /// <summary>Consecutive good probes that make an unhealthy service healthy again.</summary>
    public int HealthyThreshold { get; set; } = 2;
}
