using System.Security.Cryptography;
using Microsoft.Extensions.Options;
using OrleansTunnel.Grains;

namespace OrleansTunnel.Gateway.Cluster;

/// <summary>
/// Who this gateway is in the cluster: its id, its incarnation (fresh at each start and each time the
/// directory declared it dead) and the secret it presents when it dials another gateway.
/// </summary>
public sealed class GatewayIdentity(IOptions<GatewayOptions> options, GatewayEndpoints endpoints)
{
    private long _incarnation = DateTimeOffset.UtcNow.UtcTicks;
    private string? _advertised;

    private readonly TaskCompletionSource _joined = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public string GatewayId => options.Value.GatewayId;

    /// <summary>Completes once the directory accepted this gateway's first report.</summary>
    public Task Joined => _joined.Task;

    internal void MarkJoined() => _joined.TrySetResult();

    public long Incarnation => Interlocked.Read(ref _incarnation);

    /// <summary>The secret (base64url of 32 random bytes) sent in the hello of a peer link; only its hash leaves the process.</summary>
    public string PeerSecret { get; } = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    public string PeerSecretSha256 => _peerSecretSha256 ??= OrleansTunnel.Gateway.Auth.AgentCredentialStore.Hash(PeerSecret);

    private string? _peerSecretSha256;

    /// <summary>The tunnel URL published to the cluster; empty when this gateway cannot tell a reachable one.</summary>
    public string AdvertisedTunnel => _advertised ?? Cache(ComputeAdvertised());

    private string Cache(string url)
    {
        // Until the tunnel listener is bound, a configured port 0 is not known yet: do not keep that answer.
        if (!string.IsNullOrWhiteSpace(options.Value.AdvertisedTunnel) || endpoints.TunnelPort > 0 || url.Length == 0)
        {
            _advertised = url;
        }
        return url;
    }

    /// <summary>
    /// The tunnel URL agents are told about: Gateway:AgentAdvertisedTunnel, else <see cref="AdvertisedTunnel"/>;
    /// empty when that option is "none".
    /// </summary>
    public string AgentAdvertisedTunnel
    {
        get
        {
            string? configured = options.Value.AgentAdvertisedTunnel?.Trim();
            if (string.IsNullOrEmpty(configured))
            {
                return AdvertisedTunnel;
            }
            return string.Equals(configured, "none", StringComparison.OrdinalIgnoreCase) ? "" : configured.TrimEnd('/');
        }
    }

    public GatewayInfo Info(DateTimeOffset joinedAt) => new(GatewayId, Incarnation, AdvertisedTunnel, PeerSecretSha256, joinedAt, AgentAdvertisedTunnel);

    /// <summary>Starts a new incarnation (after this gateway was declared dead and fenced).</summary>
    public long Renew(long atLeast = 0)
    {
        long next = Math.Max(Math.Max(Incarnation + 1, atLeast), DateTimeOffset.UtcNow.UtcTicks);
        Interlocked.Exchange(ref _incarnation, next);
        return next;
    }

    private string ComputeAdvertised()
    {
        var o = options.Value;
        if (!string.IsNullOrWhiteSpace(o.AdvertisedTunnel))
        {
            return o.AdvertisedTunnel.TrimEnd('/');
        }
        if (!Uri.TryCreate(o.Tunnel, UriKind.Absolute, out var uri) || uri.Host is "0.0.0.0" or "*" or "+" or "[::]" or "::")
        {
            return "";
        }
        int port = endpoints.TunnelPort > 0 ? endpoints.TunnelPort : uri.Port;
        return new UriBuilder(uri) { Port = port }.Uri.ToString().TrimEnd('/');
    }
}
