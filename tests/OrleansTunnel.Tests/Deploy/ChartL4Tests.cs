using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Configuration;
using OrleansTunnel.Gateway;
using OrleansTunnel.Gateway.L4;
using Xunit;
using static OrleansTunnel.Tests.Deploy.Manifests;

namespace OrleansTunnel.Tests.Deploy;

/// <summary>TCP and UDP services and TLS passthrough in the chart: gateway settings, ports, NetworkPolicy, the l4Service, the in-chart agent.</summary>
[Collection(HelmCollection.Name)]
public sealed class ChartL4Tests(HelmFixture helm)
{
    private static readonly string[] L4Args =
    [
        "--set", "gateway.tcpServices[0].service=db", "--set", "gateway.tcpServices[0].port=5432",
        "--set", "gateway.tcpServices[0].proxyProtocol=true", "--set", "gateway.tcpServices[0].allowedNetworks={10.0.0.0/8}",
        "--set", "gateway.tcpServices[0].maxConnections=50", "--set", "gateway.tcpServices[0].idleTimeout=00:10:00",
        "--set", "gateway.udpServices[0].service=dns", "--set", "gateway.udpServices[0].port=5353", "--set", "gateway.udpServices[0].servicePort=53",
        "--set", "gateway.tlsPassthrough.enabled=true", "--set", "gateway.tlsPassthrough.port=8444", "--set", "gateway.tlsPassthrough.servicePort=443",
        "--set", "gateway.l4Service.annotations.lb=yes", "--set", "gateway.l4Service.externalTrafficPolicy=Local",
    ];

    private static JsonElement Settings(Manifests m, string component) =>
        JsonDocument.Parse(At(m.One("ConfigMap", component), "data", "appsettings.json")!.Value.GetString()!).RootElement;

    private static List<(string Name, int Port, string Protocol)> ContainerPorts(JsonElement workload) =>
        [.. Containers(workload).Single().GetProperty("ports").EnumerateArray().Select(p => (Str(p, "name")!, p.GetProperty("containerPort").GetInt32(), Str(p, "protocol")!))];

    [Fact]
    public async Task L4Services_ReachTheGatewaySettings_AsTheGatewayBindsAndValidatesThem()
    {
        var m = await helm.RenderAsync(L4Args);
        string json = At(m.One("ConfigMap", "gateway"), "data", "appsettings.json")!.Value.GetString()!;

        // Bound the way the gateway binds them (L4Hosting: the "Gateway" section), and checked by its validator.
        var configuration = new ConfigurationBuilder().AddJsonStream(new MemoryStream(Encoding.UTF8.GetBytes(json))).Build();
        var options = new L4Options();
        configuration.GetSection(GatewayOptions.Section).Bind(options);
        Assert.True(new L4OptionsValidator().Validate(null, options).Succeeded);

        var tcp = Assert.Single(options.TcpServices);
        Assert.Equal(("0.0.0.0:5432", "db", true, 50, TimeSpan.FromMinutes(10)), (tcp.Listen, tcp.Service, tcp.ProxyProtocol, tcp.MaxConnections, tcp.IdleTimeout));
        Assert.Equal(["10.0.0.0/8"], tcp.AllowedNetworks);
        var udp = Assert.Single(options.UdpServices);
        Assert.Equal(("0.0.0.0:5353", "dns", false, 1000, (TimeSpan?)null), (udp.Listen, udp.Service, udp.ProxyProtocol, udp.MaxConnections, udp.IdleTimeout));
        Assert.Equal("0.0.0.0:8444", options.TlsPassthrough);

        // None configured: none bound.
        var none = new L4Options();
        var defaults = Settings(await helm.RenderAsync(), "gateway");
        new ConfigurationBuilder().AddJsonStream(new MemoryStream(Encoding.UTF8.GetBytes(defaults.GetRawText()))).Build().GetSection(GatewayOptions.Section).Bind(none);
        Assert.Empty(none.TcpServices);
        Assert.Empty(none.UdpServices);
        Assert.Null(none.TlsPassthrough);
    }

    [Fact]
    public async Task L4Ports_AreContainerPorts_OpenInTheNetworkPolicy_AndOnTheirOwnService()
    {
        var m = await helm.RenderAsync(L4Args);

        var ports = ContainerPorts(m.One("StatefulSet", "gateway"));
        Assert.Contains(("tcp-0", 5432, "TCP"), ports);
        Assert.Contains(("udp-0", 5353, "UDP"), ports);
        Assert.Contains(("tls-passthrough", 8444, "TCP"), ports);

        var policy = m.One("NetworkPolicy", "gateway");
        var open = At(policy, "spec", "ingress")!.Value[0].GetProperty("ports").EnumerateArray()
            .Select(p => (p.GetProperty("port").ToString(), Str(p, "protocol") ?? "TCP")).ToList();
        Assert.Contains(("tcp-0", "TCP"), open);
        Assert.Contains(("udp-0", "UDP"), open);
        Assert.Contains(("tls-passthrough", "TCP"), open);

        var service = m.One("Service", "gateway-l4");
        Assert.Equal("LoadBalancer", At(service, "spec", "type")?.GetString());
        Assert.Equal("Local", At(service, "spec", "externalTrafficPolicy")?.GetString());
        Assert.Equal("yes", At(service, "metadata", "annotations", "lb")?.GetString());
        Assert.Equal("gateway", At(service, "spec", "selector", "app.kubernetes.io/component")?.GetString());
        var servicePorts = At(service, "spec", "ports")!.Value.EnumerateArray()
            .Select(p => (Str(p, "name"), p.GetProperty("port").GetInt32(), Str(p, "targetPort"), Str(p, "protocol"))).ToList();
        Assert.Equal([("tcp-0", 5432, "tcp-0", "TCP"), ("udp-0", 53, "udp-0", "UDP"), ("tls-passthrough", 443, "tls-passthrough", "TCP")], servicePorts);
        // The HTTP visitor Service is unchanged.
        Assert.DoesNotContain(At(m.One("Service", "gateway"), "spec", "ports")!.Value.EnumerateArray(), p => Str(p, "targetPort") is "tcp-0" or "udp-0" or "tls-passthrough");

        var byDefault = await helm.RenderAsync();
        Assert.Null(byDefault.Find("Service", "gateway-l4"));
        Assert.Equal(["ingress", "tunnel", "admin"], ContainerPorts(byDefault.One("StatefulSet", "gateway")).Select(p => p.Name));
    }

    [Fact]
    public async Task InChartAgent_ExposesTcpAndUdpBackends()
    {
        var m = await helm.RenderAsync(HelmFixture.ScenarioArgs("ci/with-agent-values.yaml"));

        var services = At(Settings(m, "agent"), "Agent", "Services")!.Value.EnumerateArray().ToDictionary(s => Str(s, "Name")!, s => Str(s, "Url"));
        Assert.Equal("tcp://demo-db.default.svc.cluster.local:5432", services["demo-db"]);
        Assert.Equal("udp://demo-dns.default.svc.cluster.local:53", services["demo-dns"]);
        var gateway = At(Settings(m, "gateway"), "Gateway")!.Value;
        Assert.Equal("demo-db", Str(At(gateway, "TcpServices")!.Value[0], "Service"));
        Assert.Equal("demo-dns", Str(At(gateway, "UdpServices")!.Value[0], "Service"));
        Assert.Equal("ClusterIP", At(m.One("Service", "gateway-l4"), "spec", "type")?.GetString());
    }

    [Fact]
    public async Task PortClashes_AndBadValues_AreRefused_NamingTheKey()
    {
        var clash = await helm.TemplateAsync("--set", "gateway.tcpServices[0].service=db", "--set", "gateway.tcpServices[0].port=7070");
        Assert.NotEqual(0, clash.ExitCode);
        Assert.Contains("gateway.tcpServices[0].port: TCP port 7070 is already gateway.ports.tunnel's", clash.StandardError);

        // The same port number for TCP and UDP is fine (DNS over both); twice on one protocol is not.
        var both = await helm.TemplateAsync("--set", "gateway.tcpServices[0].service=dns", "--set", "gateway.tcpServices[0].port=5353",
            "--set", "gateway.udpServices[0].service=dns", "--set", "gateway.udpServices[0].port=5353");
        Assert.True(both.ExitCode == 0, both.Describe());
        var twice = await helm.TemplateAsync("--set", "gateway.udpServices[0].service=a", "--set", "gateway.udpServices[0].port=5353",
            "--set", "gateway.udpServices[1].service=b", "--set", "gateway.udpServices[1].port=5354", "--set", "gateway.udpServices[1].servicePort=5353");
        Assert.NotEqual(0, twice.ExitCode);
        Assert.Contains("gateway.udpServices[1].servicePort: UDP/5353 is already gateway.udpServices[0]'s", twice.StandardError);

        var proxyOnUdp = await helm.TemplateAsync("--set", "gateway.udpServices[0].service=a", "--set", "gateway.udpServices[0].port=53", "--set", "gateway.udpServices[0].proxyProtocol=true");
        Assert.NotEqual(0, proxyOnUdp.ExitCode);
        Assert.Contains("proxyProtocol", proxyOnUdp.StandardError);
        var noPort = await helm.TemplateAsync("--set", "gateway.tcpServices[0].service=db");
        Assert.NotEqual(0, noPort.ExitCode);
        Assert.Contains("port", noPort.StandardError);
    }
}
