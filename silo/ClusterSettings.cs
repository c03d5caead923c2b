namespace OrleansTunnel.Silo;

/// <summary>
/// How a node joins the Orleans cluster (configuration section "Cluster"). Without a Redis connection
/// string the node uses localhost clustering (one silo on this machine: dev mode).
/// </summary>
public sealed class ClusterSettings
{
    public const string Section = "Cluster";

    /// <summary>Orleans cluster id: nodes with the same id form one cluster.</summary>
    public string ClusterId { get; set; } = "otun-dev";

    /// <summary>Orleans service id: keys durable state; keep it across deployments.</summary>
    public string ServiceId { get; set; } = "orleans-tunnel";

    /// <summary>StackExchange.Redis connection string for clustering and durable state; empty: localhost clustering, in-memory state.</summary>
    public string? Redis { get; set; }

    /// <summary>Silo-to-silo port.</summary>
    public int SiloPort { get; set; } = 11111;

    /// <summary>Port Orleans clients (gateways) connect to.</summary>
    public int GatewayPort { get; set; } = 30000;

    /// <summary>
    /// Kubernetes pod identity (Microsoft.Orleans.Hosting.Kubernetes): silo name, advertised address,
    /// service and cluster id from the pod; dead pods' silos leave the membership at once. Needs the
    /// POD_* environment and RBAC the Helm chart provides.
    /// </summary>
    public bool KubernetesHosting { get; set; }

    /// <summary>Admin endpoint of a standalone silo (/healthz, /readyz).</summary>
    public string Admin { get; set; } = "http://127.0.0.1:9091";

    /// <summary>
    /// URL of the Orleans dashboard listener (e.g. http://127.0.0.1:8090; served under /dashboard);
    /// empty: no dashboard. It has no authentication: keep it on loopback or an internal network.
    /// Dev mode defaults it to http://127.0.0.1:8090.
    /// </summary>
    public string? Dashboard { get; set; }

    /// <summary>
    /// Further Host names the silo's admin and dashboard listeners answer (DNS rebinding); IP literals,
    /// localhost and *.localhost always pass; any other name gets 421.
    /// </summary>
    public List<string> AdminHosts { get; set; } = [];

    /// <summary>IP address other nodes reach this silo at (default: loopback, fine when every node runs on one machine).</summary>
    public string? AdvertisedAddress { get; set; }

    /// <summary>
    /// Failure detection: how long a silo waits for a probe answer from another silo (Orleans
    /// ClusterMembershipOptions.ProbeTimeout; default 5 s). A silo is declared dead after
    /// <see cref="NumMissedProbesLimit"/> missed probes, so a killed silo is noticed after roughly
    /// ProbeTimeout x NumMissedProbesLimit. Tests shorten it (00:00:01).
    /// </summary>
    public TimeSpan? ProbeTimeout { get; set; }

    /// <summary>Missed probes before a silo is suspected (ClusterMembershipOptions.NumMissedProbesLimit; default 3).</summary>
    public int? NumMissedProbesLimit { get; set; }

    /// <summary>
    /// How long a grain call waits for its answer (Orleans MessagingOptions.ResponseTimeout, silos and
    /// gateways; default 30 s). A call to a grain on a silo that died fails after at most this long.
    /// </summary>
    public TimeSpan? ResponseTimeout { get; set; }

    /// <summary>
    /// Most grain locations a silo keeps in its directory cache (Orleans GrainDirectoryOptions.CacheSize,
    /// whose own default is 1,000,000). Request grains have unique ids: with Gateway:RequestGrains=always
    /// the cache filled with locations never looked up again (~220 bytes each; 290k requests added 65 MB
    /// of RSS). A miss costs one directory look-up, never correctness.
    /// </summary>
    public int DirectoryCacheSize { get; set; } = 100_000;

    /// <summary>How often a gateway refreshes its list of silos from the membership table (Orleans GatewayOptions.GatewayListRefreshPeriod; default 60 s).</summary>
    public TimeSpan? GatewayListRefreshPeriod { get; set; }

    /// <summary>Mutual TLS between silos and gateways (Cluster:Tls:CertificatePath, KeyPath, CaPath).</summary>
    public ClusterTlsSettings Tls { get; set; } = new();

    /// <summary>TLS to Redis (Cluster:RedisTls:CaPath, CertificatePath, KeyPath).</summary>
    public RedisTlsSettings RedisTls { get; set; } = new();

    /// <summary>Hides the Redis password from logs.</summary>
    public override string ToString() =>
        $"cluster={ClusterId} service={ServiceId} clustering={(string.IsNullOrEmpty(Redis) ? "localhost" : "redis " + RedactRedis(Redis))} tls={(Tls.Enabled ? "mutual" : "off")}";

    /// <summary>A connection string safe to log: password and user removed.</summary>
    public static string RedactRedis(string connection) =>
        string.Join(',', connection.Split(',').Select(part =>
            part.TrimStart().StartsWith("password=", StringComparison.OrdinalIgnoreCase) ? "password=***" :
            part.TrimStart().StartsWith("user=", StringComparison.OrdinalIgnoreCase) ? "user=***" : part));
}
