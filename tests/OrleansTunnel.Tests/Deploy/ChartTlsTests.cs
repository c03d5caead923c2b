using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using Xunit;
using static OrleansTunnel.Tests.Deploy.Manifests;

namespace OrleansTunnel.Tests.Deploy;

/// <summary>
/// The chart is locked by default (issue 12): mutual TLS between silos and gateways and TLS on the tunnel,
/// with certificates the chart makes when none is given, mounted without their CA keys.
/// </summary>
[Collection(HelmCollection.Name)]
public sealed class ChartTlsTests(HelmFixture helm)
{
    private static JsonElement Settings(Manifests m, string component) =>
        JsonDocument.Parse(At(m.One("ConfigMap", component), "data", "appsettings.json")!.Value.GetString()!).RootElement;

    private static X509Certificate2 Certificate(JsonElement secret, string key) =>
        X509Certificate2.CreateFromPem(Encoding.ASCII.GetString(Convert.FromBase64String(At(secret, "data", key)!.Value.GetString()!)));

    private static string[] DnsNames(X509Certificate2 certificate) =>
        [.. certificate.Extensions.OfType<X509SubjectAlternativeNameExtension>().SelectMany(e => e.EnumerateDnsNames())];

    [Fact]
    public async Task ByDefault_SilosAndGatewaysUseMutualTls_AndTheTunnelTls_WithChartMadeCertificates()
    {
        var m = await helm.RenderAsync("--set", "agent.enabled=true", "--set", "agent.agentId=a", "--set", "agent.token=t0123456789abcdef",
            "--set", "agent.services[0].name=app", "--set", "agent.services[0].url=http://app:80",
            "--set", "gateway.replicas=2", "--set", "gateway.agentEndpoints.urlTemplate=https://gw-{ordinal}.tunnel.example:443",
            "--set", "gateway.tls.tunnel.extraNames={tunnel.example}");

        // The cluster: one node certificate from a private CA, for both ends of every Orleans connection.
        var cluster = m.One("Secret", "cluster-tls");
        using var clusterCa = Certificate(cluster, "ca.crt");
        using var node = Certificate(cluster, "tls.crt");
        Assert.True(OrleansTunnel.Mux.CaTrust.ChainsTo(node, clusterCa));
        var usages = node.Extensions.OfType<X509EnhancedKeyUsageExtension>().Single().EnhancedKeyUsages.Cast<System.Security.Cryptography.Oid>().Select(o => o.Value).ToList();
        Assert.Contains("1.3.6.1.5.5.7.3.1", usages);
        Assert.Contains("1.3.6.1.5.5.7.3.2", usages);
        foreach (var (component, kind) in new[] { ("silo", "Deployment"), ("gateway", "StatefulSet") })
        {
            var tls = At(Settings(m, component), "Cluster", "Tls")!.Value;
            var workload = m.One(kind, component);
            AssertMountedFrom(workload, Str(tls, "CertificatePath")!, Name(cluster), "tls.crt");
            AssertMountedFrom(workload, Str(tls, "KeyPath")!, Name(cluster), "tls.key");
            AssertMountedFrom(workload, Str(tls, "CaPath")!, Name(cluster), "ca.crt");
            Assert.DoesNotContain("ca.key", PodSpec(workload).GetRawText(), StringComparison.Ordinal);
        }

        // The tunnel: its certificate names the tunnel Service, every gateway for peers, the external addresses.
        var tunnel = m.One("Secret", "tunnel-tls");
        using var tunnelCa = Certificate(tunnel, "ca.crt");
        using var leaf = Certificate(tunnel, "tls.crt");
        Assert.True(OrleansTunnel.Mux.CaTrust.ChainsTo(leaf, tunnelCa));
        string service = Name(m.One("Service", "gateway-tunnel")), headless = Name(m.One("Service", "gateway-headless"));
        var names = DnsNames(leaf);
        foreach (var expected in new[] { service, $"{service}.otun-test.svc", $"*.{headless}.otun-test.svc", "gw-0.tunnel.example", "gw-1.tunnel.example", "tunnel.example" })
        {
            Assert.Contains(expected, names);
        }
        var gateway = Settings(m, "gateway");
        Assert.Equal("https://0.0.0.0:7070", At(gateway, "Gateway", "Tunnel")?.GetString());
        var sts = m.One("StatefulSet", "gateway");
        AssertMountedFrom(sts, Str(At(gateway, "Gateway")!.Value, "TunnelCertificatePath")!, Name(tunnel), "tls.crt");
        AssertMountedFrom(sts, Str(At(gateway, "Gateway")!.Value, "PeerCaFile")!, Name(tunnel), "ca.crt");
        var agent = Settings(m, "agent");
        Assert.StartsWith("https://", At(agent, "Agent", "Gateways")!.Value[0].GetString());
        Assert.Null(At(agent, "Agent", "AllowCleartext"));
        AssertMountedFrom(m.One("Deployment", "agent"), Str(At(agent, "Agent")!.Value, "GatewayCaFile")!, Name(tunnel), "ca.crt");
        Assert.DoesNotContain("ca.key", PodSpec(sts).GetRawText(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task TurnedOff_NothingIsMade_AndTheAgentIsToldCleartextIsAllowed()
    {
        var m = await helm.RenderAsync("--set", "cluster.tls.enabled=false", "--set", "gateway.tls.tunnel.enabled=false",
            "--set", "agent.enabled=true", "--set", "agent.agentId=a", "--set", "agent.token=t0123456789abcdef",
            "--set", "agent.services[0].name=app", "--set", "agent.services[0].url=http://app:80");
        Assert.DoesNotContain(m.OfKind("Secret"), s => Name(s).EndsWith("-tls", StringComparison.Ordinal));
        Assert.Null(At(Settings(m, "silo"), "Cluster", "Tls"));
        Assert.Null(At(Settings(m, "gateway"), "Cluster", "Tls"));
        Assert.Null(At(Settings(m, "gateway"), "Gateway", "PeerCaFile"));
        Assert.True(At(Settings(m, "agent"), "Agent", "AllowCleartext")!.Value.GetBoolean());
    }

    [Fact]
    public async Task GivenSecrets_AreUsed_AndNoneIsMade()
    {
        var m = await helm.RenderAsync("--set", "cluster.tls.secretName=my-cluster-tls", "--set", "gateway.tls.tunnel.secretName=my-tunnel-tls");
        Assert.DoesNotContain(m.OfKind("Secret"), s => Name(s).EndsWith("-tls", StringComparison.Ordinal));
        var gateway = Settings(m, "gateway");
        AssertMountedFrom(m.One("Deployment", "silo"), Str(At(Settings(m, "silo"), "Cluster", "Tls")!.Value, "CaPath")!, "my-cluster-tls", "ca.crt");
        AssertMountedFrom(m.One("StatefulSet", "gateway"), Str(At(gateway, "Gateway")!.Value, "TunnelCertificatePath")!, "my-tunnel-tls", "tls.crt");
        // A given tunnel certificate may chain to a public CA: peers then use the system trust store unless peerCa is set.
        Assert.Null(At(gateway, "Gateway", "PeerCaFile"));
    }
}
