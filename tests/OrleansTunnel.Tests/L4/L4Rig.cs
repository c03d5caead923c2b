using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.DependencyInjection;
using OrleansTunnel.Gateway.Auth;
using OrleansTunnel.Gateway.L4;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;

namespace OrleansTunnel.Tests.L4;

/// <summary>
/// One gateway (with its silo) and agent for every L4 test, with real backends: redis-server, sshd,
/// dnsmasq, two TLS servers with their own certificates, and small socket servers (echo, PROXY header,
/// reset, UDP echo). Each backend is a TCP or UDP service on its own gateway port; the TLS ones share the
/// TLS passthrough port, chosen by SNI (a.tls.test exact, *.b.tls.test wildcard).
/// </summary>
public sealed class L4Rig : IAsyncLifetime
{
    public const string KillAgentId = "l4-killable";

    public TunnelHarness Harness { get; private set; } = null!;
    public RedisServer Redis { get; private set; } = null!;
    public SshServer Ssh { get; private set; } = null!;
    public DnsServer Dns { get; private set; } = null!;
    public TcpProbe Echo { get; } = TcpProbe.Echo();
    public TcpProbe Proxy { get; } = TcpProbe.ProxyHeader();
    public TcpProbe Resetting { get; } = TcpProbe.ResetAfterFirstByte();
    public UdpEcho UdpEcho { get; } = new();
    public TcpProbe TlsA { get; private set; } = null!;
    public TcpProbe TlsB { get; private set; } = null!;
    public X509Certificate2 CertA { get; private set; } = null!;
    public X509Certificate2 CertB { get; private set; } = null!;
    public string KillToken { get; } = "kill-token-" + Guid.NewGuid().ToString("N");

    /// <summary>Gateway ports by service name (TCP and UDP), and the TLS passthrough port.</summary>
    public Dictionary<string, int> Port { get; } = new(StringComparer.Ordinal);
    public int PassthroughPort { get; } = Ports.Free();

    public L4Telemetry Telemetry => Harness.Gateway.Services.GetRequiredService<L4Telemetry>();

    public async Task InitializeAsync()
    {
        Redis = await RedisServer.StartAsync();
        Ssh = await SshServer.StartAsync();
        Dns = await DnsServer.StartAsync();
        (CertA, CertB) = MakeCertificates();
        TlsA = TcpProbe.Tls(CertA, "a");
        TlsB = TcpProbe.Tls(CertB, "b");

        // service -> (kind, backend port, extra gateway keys)
        var services = new (string Name, string Kind, int Backend, Dictionary<string, string> Extra)[]
        {
            ("redis", "tcp", Redis.Port, []),
            ("ssh", "tcp", Ssh.Port, []),
            ("echo", "tcp", Echo.Port, []),
            ("idle", "tcp", Echo.Port, new() { ["IdleTimeout"] = "00:00:02" }),
            ("denied", "tcp", Echo.Port, new() { ["AllowedNetworks:0"] = "10.0.0.0/8" }),
            ("proxied", "tcp", Proxy.Port, new() { ["ProxyProtocol"] = "true" }),
            ("resetting", "tcp", Resetting.Port, []),
            ("dns", "udp", Dns.Port, new() { ["IdleTimeout"] = "00:00:01", ["MaxConnections"] = "5000" }),
            ("udp-echo", "udp", UdpEcho.Port, []),
            ("udp-denied", "udp", UdpEcho.Port, new() { ["AllowedNetworks:0"] = "10.0.0.0/8" }),
        };
        Harness = await TunnelHarness.StartAsync(o =>
        {
            int tcp = 0, udp = 0, agentService = 10, allowed = 6;
            foreach (var (name, kind, backend, extra) in services)
            {
                Port[name] = Ports.Free();
                string section = kind == "tcp" ? $"Gateway:TcpServices:{tcp++}" : $"Gateway:UdpServices:{udp++}";
                o.Gateway[$"{section}:Listen"] = $"127.0.0.1:{Port[name]}";
                o.Gateway[$"{section}:Service"] = name;
                foreach (var (k, v) in extra)
                {
                    o.Gateway[$"{section}:{k}"] = v;
                }
                o.Gateway[$"Gateway:Agents:0:Services:{allowed++}"] = name;
                // Long-lived connections (MONITOR, idle flows) would hold the agent's stop for its whole grace period.
                o.Agent["Agent:ShutdownGracePeriod"] = "00:00:02";
                o.Agent[$"Agent:Services:{agentService}:Name"] = name;
                o.Agent[$"Agent:Services:{agentService++}:Url"] = $"{kind}://127.0.0.1:{backend}";
            }
            foreach (var (name, backend) in new[] { ("tls-a", TlsA.Port), ("tls-b", TlsB.Port) })
            {
                o.Gateway[$"Gateway:Agents:0:Services:{allowed++}"] = name;
                o.Agent[$"Agent:Services:{agentService}:Name"] = name;
                o.Agent[$"Agent:Services:{agentService++}:Url"] = $"tcp://127.0.0.1:{backend}";
            }
            o.Gateway["Gateway:TlsPassthrough"] = $"127.0.0.1:{PassthroughPort}";
            o.Gateway["Gateway:Routes:30:Host"] = "a.tls.test";
            o.Gateway["Gateway:Routes:30:Service"] = "tls-a";
            o.Gateway["Gateway:Routes:31:Host"] = "*.b.tls.test";
            o.Gateway["Gateway:Routes:31:Service"] = "tls-b";
            o.Gateway["Gateway:Routes:32:Host"] = "denied.tls.test";
            o.Gateway["Gateway:Routes:32:Service"] = "tls-a";
            o.Gateway["Gateway:Routes:32:AllowedNetworks:0"] = "10.0.0.0/8";
            // The agent process the kill test ends with SIGKILL.
            Port["kill-echo"] = Ports.Free();
            o.Gateway[$"Gateway:TcpServices:{tcp}:Listen"] = $"127.0.0.1:{Port["kill-echo"]}";
            o.Gateway[$"Gateway:TcpServices:{tcp}:Service"] = "kill-echo";
            o.Gateway["Gateway:Agents:2:Id"] = KillAgentId;
            o.Gateway["Gateway:Agents:2:TokenSha256"] = AgentCredentialStore.Hash(KillToken);
            o.Gateway["Gateway:Agents:2:Services:0"] = "kill-echo";
        });
        var registry = Harness.Gateway.Services.GetRequiredService<Gateway.Tunnel.ConnectionRegistry>();
        await Eventually.TrueAsync(() => registry.Choose("tls-b") is not null, TimeSpan.FromSeconds(30), "the agent never offered its TCP services");
    }

    private static (X509Certificate2, X509Certificate2) MakeCertificates()
    {
        string dir = Path.Combine(Path.GetTempPath(), "otun-l4-pki-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        var (_, ca, caKey) = TestPki.CreateCa("otun L4 test CA");
        TestPki.WriteLeaf(dir, "a", "a.tls.test", ca, caKey, TestPki.ServerAuth);
        TestPki.WriteLeaf(dir, "b", "x.b.tls.test", ca, caKey, TestPki.ServerAuth);
        X509Certificate2 Load(string name)
        {
            using var pem = X509Certificate2.CreateFromPemFile(Path.Combine(dir, name + ".pem"), Path.Combine(dir, name + ".key"));
            return X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
        }
        var result = (Load("a"), Load("b"));
        Directory.Delete(dir, recursive: true);
        return result;
    }

    public async Task DisposeAsync()
    {
        await Harness.DisposeAsync();
        await Redis.DisposeAsync();
        await Ssh.DisposeAsync();
        await Dns.DisposeAsync();
        await Echo.DisposeAsync();
        await Proxy.DisposeAsync();
        await Resetting.DisposeAsync();
        await TlsA.DisposeAsync();
        await TlsB.DisposeAsync();
        UdpEcho.Dispose();
    }
}
