using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using OrleansTunnel.Agent;
using OrleansTunnel.Cli;
using OrleansTunnel.Gateway;
using OrleansTunnel.Gateway.Auth;

namespace OrleansTunnel.Tests.Infrastructure;

/// <summary>Settings of one harness.</summary>
public sealed class HarnessOptions
{
    /// <summary>Serve the tunnel endpoint over TLS (https://) with the dev certificate.</summary>
    public bool TunnelTls { get; set; }

    public TimeSpan ResponseTimeout { get; set; } = TimeSpan.FromSeconds(30);
    public Dictionary<string, string?> Gateway { get; } = new(StringComparer.OrdinalIgnoreCase);
    public Dictionary<string, string?> Agent { get; } = new(StringComparer.OrdinalIgnoreCase);
}

/// <summary>A second gateway started by <see cref="TunnelHarness.StartPeerGatewayAsync"/>.</summary>
public sealed class PeerGateway(string gatewayId) : IAsyncDisposable
{
    private readonly int _ingressPort = Ports.Free();
    private readonly int _tunnelPort = Ports.Free();
    private readonly int _adminPort = Ports.Free();

    public string GatewayId { get; } = gatewayId;

    public WebApplication App { get; set; } = null!;

    public Uri Ingress => new($"http://127.0.0.1:{_ingressPort}");

    public string TunnelUrl => $"http://127.0.0.1:{_tunnelPort}";

    public Uri Admin => new($"http://127.0.0.1:{_adminPort}");

    public Uri Url(string pathAndQuery) => new(Ingress, pathAndQuery);

    public T Service<T>() where T : notnull => App.Services.GetRequiredService<T>();

    public async ValueTask DisposeAsync()
    {
        await App.StopAsync(TimeSpan.FromSeconds(10).ToCancellationToken());
        await App.DisposeAsync();
    }
}

/// <summary>
/// The whole path on loopback with real components: a Kestrel backend, a gateway hosting an Orleans
/// silo, and an agent that dials the gateway's tunnel endpoint over gRPC.
/// Routes: 127.0.0.1 and backend.test -> "backend"; refused.test -> "refused" (a closed port);
/// orphan.test -> "orphan" (no agent serves it); raw.backend.test -> "backend" with PathMode Raw.
/// </summary>
public sealed class TunnelHarness : IAsyncDisposable
{
    public const string AgentId = "test-agent";
    public const string OtherAgentId = "other-agent";

    private readonly HarnessOptions _options;
    private readonly int _ingressPort = Ports.Free();
    private readonly int _tunnelPort = Ports.Free();
    private readonly int _adminPort = Ports.Free();
    private readonly int _httpsPort = Ports.Free();
    private readonly int _h2cPort = Ports.Free();
    private static readonly Lazy<(string Cert, string Key)> DevCertificate = new(() =>
    {
        var dir = Path.Combine(Path.GetTempPath(), "otun-tests-" + Environment.ProcessId);
        var (cert, key, _) = OrleansTunnel.Gateway.Ingress.IngressCertificate.EnsureDevCertificate(dir, ["backend.test"]);
        return (cert, key);
    });
    private readonly int _siloPort = Ports.Free();
    private readonly int _siloGatewayPort = Ports.Free();
    private readonly string _clusterId = "test-" + Guid.NewGuid().ToString("N")[..8];

    private TunnelHarness(HarnessOptions options, TestBackend backend)
    {
        _options = options;
        Backend = backend;
        Client = NewClient();
    }

    public TestBackend Backend { get; }

    public WebApplication Gateway { get; private set; } = null!;

    public IHost Agent { get; private set; } = null!;

    public string AgentToken { get; } = "agent-token-" + Guid.NewGuid().ToString("N");

    public string OtherAgentToken { get; } = "other-token-" + Guid.NewGuid().ToString("N");

    public string AdminToken { get; } = "admin-token-" + Guid.NewGuid().ToString("N");

    public HttpClient Client { get; }

    public Uri Ingress => new($"http://127.0.0.1:{_ingressPort}");

    public string TunnelUrl => $"{(_options.TunnelTls ? "https" : "http")}://127.0.0.1:{_tunnelPort}";

    public Uri Admin => new($"http://127.0.0.1:{_adminPort}");

    /// <summary>TLS ingress (ALPN h2, http/1.1) with the dev certificate.</summary>
    public Uri HttpsIngress => new($"https://127.0.0.1:{_httpsPort}");

    /// <summary>Cleartext HTTP/2 (prior knowledge) ingress.</summary>
    public Uri H2cIngress => new($"http://127.0.0.1:{_h2cPort}");

    public static System.Security.Cryptography.X509Certificates.X509Certificate2 Certificate { get; } =
        System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPemFile(DevCertificate.Value.Cert, DevCertificate.Value.Key);

    /// <summary>The dev certificate with its key, for test servers.</summary>
    public static System.Security.Cryptography.X509Certificates.X509Certificate2 ServerCertificate { get; } =
        System.Security.Cryptography.X509Certificates.X509CertificateLoader.LoadPkcs12(
            Certificate.Export(System.Security.Cryptography.X509Certificates.X509ContentType.Pkcs12), null);

    /// <summary>PEM file of the dev certificate (a CA file for backends that use it).</summary>
    public static string CertificatePemPath => DevCertificate.Value.Cert;

    /// <summary>A handler that trusts exactly the dev certificate.</summary>
    public static SocketsHttpHandler TrustingHandler() => new()
    {
        AllowAutoRedirect = false,
        UseCookies = false,
        MaxConnectionsPerServer = 1024,
        SslOptions = { RemoteCertificateValidationCallback = (_, cert, _, _) => cert is not null && cert.GetCertHashString() == Certificate.GetCertHashString() },
    };

    /// <summary>An HTTP/2-only client over TLS.</summary>
    public static HttpClient NewHttp2Client() => new(TrustingHandler())
    {
        DefaultRequestVersion = System.Net.HttpVersion.Version20,
        DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
        Timeout = TimeSpan.FromMinutes(5),
    };

    public int RefusedPort { get; } = Ports.Closed();

    public AgentStatus AgentStatus => Agent.Services.GetRequiredService<AgentStatus>();

    public static async Task<TunnelHarness> StartAsync(Action<HarnessOptions>? configure = null)
    {
        var options = new HarnessOptions();
        configure?.Invoke(options);
        var backend = await TestBackend.StartAsync();
        var harness = new TunnelHarness(options, backend);
        await harness.StartGatewayAsync();
        await harness.StartAgentAsync();
        return harness;
    }

    public static HttpClient NewClient() => new(new SocketsHttpHandler
    {
        AllowAutoRedirect = false,
        UseCookies = false,
        AutomaticDecompression = System.Net.DecompressionMethods.None,
        PooledConnectionIdleTimeout = TimeSpan.FromSeconds(5),
        MaxConnectionsPerServer = 1024,
    })
    { Timeout = TimeSpan.FromMinutes(5) };

    public Uri Url(string pathAndQuery) => new(Ingress, pathAndQuery);

    public async Task StartGatewayAsync()
    {
        var config = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase)
        {
            ["Cluster:ClusterId"] = _clusterId,
            ["Cluster:SiloPort"] = _siloPort.ToString(),
            ["Cluster:GatewayPort"] = _siloGatewayPort.ToString(),
            ["Gateway:GatewayId"] = "gw-test",
            ["Gateway:Ingress"] = Ingress.ToString(),
            ["Gateway:Tunnel"] = TunnelUrl,
            ["Gateway:Admin"] = Admin.ToString(),
            ["Gateway:HttpsIngress"] = HttpsIngress.ToString(),
            ["Gateway:H2cIngress"] = H2cIngress.ToString(),
            ["Gateway:CertificatePath"] = DevCertificate.Value.Cert,
            ["Gateway:CertificateKeyPath"] = DevCertificate.Value.Key,
            ["Gateway:ResponseTimeout"] = _options.ResponseTimeout.ToString(),
            ["Gateway:HeartbeatInterval"] = "00:00:02",
            // No load balancer to wait for: stop at once (a test may set a delay).
            ["Gateway:DrainDelay"] = "00:00:00",
            ["Gateway:AdminTokenSha256"] = AgentCredentialStore.Hash(AdminToken),
            ["Gateway:Agents:0:Id"] = AgentId,
            ["Gateway:Agents:0:TokenSha256"] = AgentCredentialStore.Hash(AgentToken),
            ["Gateway:Agents:0:Services:0"] = "backend",
            ["Gateway:Agents:0:Services:1"] = "refused",
            ["Gateway:Agents:0:Services:2"] = "grpc",
            ["Gateway:Agents:0:Services:3"] = "tls-untrusted",
            ["Gateway:Agents:0:Services:4"] = "tls-ca",
            ["Gateway:Agents:0:Services:5"] = "tls-skip",
            ["Gateway:Agents:1:Id"] = OtherAgentId,
            ["Gateway:Agents:1:TokenSha256"] = AgentCredentialStore.Hash(OtherAgentToken),
            ["Gateway:Agents:1:Services:0"] = "other",
            ["Gateway:Routes:0:Host"] = "127.0.0.1",
            ["Gateway:Routes:0:Service"] = "backend",
            ["Gateway:Routes:1:Host"] = "backend.test",
            ["Gateway:Routes:1:Service"] = "backend",
            ["Gateway:Routes:2:Host"] = "refused.test",
            ["Gateway:Routes:2:Service"] = "refused",
            ["Gateway:Routes:3:Host"] = "orphan.test",
            ["Gateway:Routes:3:Service"] = "orphan",
            ["Gateway:Routes:4:Host"] = "127.0.0.1",
            ["Gateway:Routes:4:PathPrefix"] = "/orleanstunnel.tests.Echo",
            ["Gateway:Routes:4:Service"] = "grpc",
            ["Gateway:Routes:5:Host"] = "grpc.test",
            ["Gateway:Routes:5:Service"] = "grpc",
            ["Gateway:Routes:19:Host"] = "raw.backend.test",
            ["Gateway:Routes:19:Service"] = "backend",
            ["Gateway:Routes:19:PathMode"] = "Raw",
            ["Gateway:Routes:9:Host"] = "other.test",
            ["Gateway:Routes:9:Service"] = "other",
            ["Gateway:Routes:6:Host"] = "tls-untrusted.test",
            ["Gateway:Routes:6:Service"] = "tls-untrusted",
            ["Gateway:Routes:7:Host"] = "tls-ca.test",
            ["Gateway:Routes:7:Service"] = "tls-ca",
            ["Gateway:Routes:8:Host"] = "tls-skip.test",
            ["Gateway:Routes:8:Service"] = "tls-skip",
            ["Logging:LogLevel:Default"] = "Warning",
            ["Logging:LogLevel:OrleansTunnel"] = "Warning",
        };
        foreach (var (k, v) in _options.Gateway)
        {
            config[k] = v;
        }
        Gateway = Roles.BuildGateway(config, withSilo: true);
        await Gateway.StartAsync();
        await Gateway.Services.GetRequiredService<Gateway.Routing.RoutingSubscriber>().Ready.WaitAsync(TimeSpan.FromSeconds(30));
    }

    /// <summary>
    /// A second gateway of the same cluster: an Orleans client of this harness's silo, with its own
    /// ingress and tunnel endpoint and no agent of its own unless one dials it.
    /// </summary>
    public async Task<PeerGateway> StartPeerGatewayAsync(string gatewayId, Dictionary<string, string?>? overrides = null)
    {
        var peer = new PeerGateway(gatewayId);
        var config = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase)
        {
            ["Cluster:ClusterId"] = _clusterId,
            ["Cluster:GatewayPort"] = _siloGatewayPort.ToString(),
            ["Gateway:GatewayId"] = gatewayId,
            ["Gateway:Ingress"] = peer.Ingress.ToString(),
            ["Gateway:Tunnel"] = peer.TunnelUrl,
            ["Gateway:Admin"] = peer.Admin.ToString(),
            ["Gateway:ResponseTimeout"] = _options.ResponseTimeout.ToString(),
            ["Gateway:HeartbeatInterval"] = "00:00:02",
            ["Gateway:ClusterHeartbeatInterval"] = "00:00:01",
            // No load balancer in front of a test's gateways: a graceful stop need not keep serving first
            // (pass an override to test the drain).
            ["Gateway:DrainDelay"] = "00:00:00",
            ["Gateway:AdminTokenSha256"] = AgentCredentialStore.Hash(AdminToken),
            ["Gateway:Agents:0:Id"] = AgentId,
            ["Gateway:Agents:0:TokenSha256"] = AgentCredentialStore.Hash(AgentToken),
            ["Gateway:Agents:0:Services:0"] = "*",
            ["Logging:LogLevel:Default"] = "Warning",
            ["Logging:LogLevel:OrleansTunnel"] = "Warning",
        };
        foreach (var (k, v) in overrides ?? [])
        {
            config[k] = v;
        }
        peer.App = Roles.BuildGateway(config, withSilo: false);
        await peer.App.StartAsync();
        await peer.App.Services.GetRequiredService<Gateway.Routing.RoutingSubscriber>().Ready.WaitAsync(TimeSpan.FromSeconds(30));
        return peer;
    }

    public async Task StopGatewayAsync()
    {
        await Gateway.StopAsync(TimeSpan.FromSeconds(10).ToCancellationToken());
        await Gateway.DisposeAsync();
    }

    /// <summary>Starts another agent in this harness (not the default one), e.g. with a runtime token.</summary>
    public async Task<IHost> StartExtraAgentAsync(string agentId, string token, string service)
    {
        var agent = Roles.BuildAgent(new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase)
        {
            ["Agent:AgentId"] = agentId,
            ["Agent:Token"] = token,
            ["Agent:Gateways:0"] = TunnelUrl,
            ["Agent:Services:0:Name"] = service,
            ["Agent:Services:0:Url"] = Backend.Url,
            ["Agent:ReconnectMinDelay"] = "00:00:00.100",
            ["Agent:ReconnectMaxDelay"] = "00:00:01",
            // One gateway here: one connection keeps session and connection counts exact (tests may override).
            ["Agent:Connections"] = "1",
            ["Logging:LogLevel:Default"] = "Warning",
        });
        await agent.StartAsync();
        return agent;
    }

    public async Task StartAgentAsync()
    {
        var config = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase)
        {
            ["Agent:AgentId"] = AgentId,
            ["Agent:Token"] = AgentToken,
            ["Agent:Gateways:0"] = TunnelUrl,
            ["Agent:Services:0:Name"] = "backend",
            ["Agent:Services:0:Url"] = Backend.Url,
            ["Agent:Services:1:Name"] = "refused",
            ["Agent:Services:1:Url"] = $"http://127.0.0.1:{RefusedPort}",
            ["Agent:Services:2:Name"] = "grpc",
            ["Agent:Services:2:Url"] = $"h2c://127.0.0.1:{Backend.H2cPort}",
            ["Agent:Services:3:Name"] = "tls-untrusted",
            ["Agent:Services:3:Url"] = $"https://127.0.0.1:{Backend.TlsPort}",
            ["Agent:Services:4:Name"] = "tls-ca",
            ["Agent:Services:4:Url"] = $"https://127.0.0.1:{Backend.TlsPort}",
            ["Agent:Services:4:CaFile"] = CertificatePemPath,
            ["Agent:Services:5:Name"] = "tls-skip",
            ["Agent:Services:5:Url"] = $"https://127.0.0.1:{Backend.TlsPort}",
            ["Agent:Services:5:SkipCertificateValidation"] = "true",
            ["Agent:ReconnectMinDelay"] = "00:00:00.100",
            ["Agent:ReconnectMaxDelay"] = "00:00:01",
            // One gateway here: one connection keeps session and connection counts exact (tests may override).
            ["Agent:Connections"] = "1",
            ["Agent:GatewayCaFile"] = _options.TunnelTls ? CertificatePemPath : null,
            ["Logging:LogLevel:Default"] = "Warning",
        };
        foreach (var (k, v) in _options.Agent)
        {
            config[k] = v;
        }
        Agent = Roles.BuildAgent(config);
        await Agent.StartAsync();
        await AgentStatus.AnyUp.WaitAsync(TimeSpan.FromSeconds(30));
        await WaitForRoutableAsync();
    }

    public async Task StopAgentAsync()
    {
        await Agent.StopAsync(TimeSpan.FromSeconds(10).ToCancellationToken());
        Agent.Dispose();
    }

    /// <summary>Waits until the gateway has the agent's connection for "backend" (a signal, polled).</summary>
    public async Task WaitForRoutableAsync()
    {
        var registry = Gateway.Services.GetRequiredService<Gateway.Tunnel.ConnectionRegistry>();
        await Eventually.TrueAsync(() => registry.Choose("backend") is not null, TimeSpan.FromSeconds(30), "the gateway never had an agent connection for 'backend'");
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        try
        {
            await StopAgentAsync();
        }
        catch (ObjectDisposedException)
        {
        }
        try
        {
            await StopGatewayAsync();
        }
        catch (ObjectDisposedException)
        {
        }
        await Backend.DisposeAsync();
    }
}
