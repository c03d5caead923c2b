using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Grpc.Net.Client;
using OrleansTunnel.Gateway.Auth;
using OrleansTunnel.Tests.Grpc;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;
using static OrleansTunnel.Tests.Deploy.Manifests;

namespace OrleansTunnel.Tests.Deploy.Run;

/// <summary>
/// Renders the chart with real helm (TLS on the tunnel and the visitor ingress, 2 silos, 3 gateways,
/// 1 in-chart agent, per-gateway external addresses) and runs what it renders: every pod as a
/// process with exactly its rendered environment, command and mounted files (<see cref="RenderedCluster"/>),
/// Services on nginx. Then HTTP, WebSocket and gRPC go through the visitor Service; every gateway
/// serves the agent that only one of them holds (cross-gateway over TLS peer links); an agent
/// outside the cluster spreads its connections over distinct gateways through their external
/// addresses; and the chart's `helm test` pod passes.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
[Collection(HelmCollection.Name)]
public sealed partial class ChartRunTests(HelmFixture helm)
{
    private const string Ns = "otun-test";
    private const string InAgentToken = "in-cluster-agent-token-of-the-run-test";
    private const string OutAgentToken = "outside-agent-token-of-the-run-test";

    [Fact]
    public async Task TheRenderedRelease_Runs_ServesEveryProtocol_AcrossGateways_AndAgentsOutsideSpread()
    {
        string directory = Path.Combine("/var/tmp", "otun-chart-run-" + Guid.NewGuid().ToString("N")[..8]);
        await using var network = await PodNetwork.CreateAsync();
        await using var backend = await TestBackend.StartAsync(network.Node);
        using var pki = new SecretPki();
        var m = await helm.RenderAsync(
            "--set", "silo.replicas=2", "--set", "silo.kubernetesHosting.enabled=false",
            "--set", "gateway.replicas=3",
            "--set", "gateway.tls.tunnel.enabled=true", "--set", "gateway.tls.tunnel.secretName=otun-tunnel-tls",
            "--set", "gateway.tls.peerCa.secretName=otun-tunnel-tls",
            "--set", "gateway.tls.ingress.enabled=true", "--set", "gateway.tls.ingress.secretName=otun-ingress-tls",
            "--set", "gateway.tunnelService.type=LoadBalancer",
            "--set", "gateway.agentEndpoints.urlTemplate=https://gw-{ordinal}.tunnel.test:443", "--set", "gateway.agentEndpoints.perPodService.enabled=true",
            "--set", "gateway.routes[0].host=app.test", "--set", "gateway.routes[0].service=app",
            "--set", "gateway.routes[1].host=grpc.test", "--set", "gateway.routes[1].service=grpc",
            "--set", "gateway.routes[2].host=outside.test", "--set", "gateway.routes[2].service=outside",
            "--set", "gateway.agents[0].id=in-agent", "--set", "gateway.agents[0].tokenSha256=" + AgentCredentialStore.Hash(InAgentToken),
            "--set", "gateway.agents[0].services={app,grpc}",
            "--set", "gateway.agents[1].id=out-agent", "--set", "gateway.agents[1].tokenSha256=" + AgentCredentialStore.Hash(OutAgentToken),
            "--set", "gateway.agents[1].services={outside}",
            "--set", "agent.enabled=true", "--set", "agent.agentId=in-agent", "--set", "agent.token=" + InAgentToken, "--set", "agent.connections=1",
            "--set", "agent.services[0].name=app", "--set", "agent.services[0].url=http://backend.test:" + backend.Port,
            "--set", "agent.services[1].name=grpc", "--set", "agent.services[1].url=h2c://backend.test:" + backend.H2cPort,
            "--set", "agent.gatewayCa.secretName=otun-tunnel-tls",
            // Peer links and agent tunnels logged (Information) so the test can see where they go.
            "--set", "gateway.config.Logging.LogLevel.OrleansTunnel=Information",
            "--set", "tests.host=app.test", "--set", "tests.path=/hello", "--set", "tests.expectStatus=200");
        string sts = Name(m.One("StatefulSet", "gateway"));
        string headless = Name(m.One("Service", "gateway-headless"));
        string tunnelService = Name(m.One("Service", "gateway-tunnel"));
        var secrets = new Dictionary<string, Dictionary<string, byte[]>>
        {
            // What the operator creates (cert-manager): the tunnel certificate names the tunnel Service,
            // every gateway under the headless Service, and the external addresses.
            ["otun-tunnel-tls"] = pki.TlsSecret(tunnelService, $"*.{headless}.{Ns}.svc", "tunnel.test", "*.tunnel.test"),
            ["otun-ingress-tls"] = pki.TlsSecret("app.test", "grpc.test", "outside.test"),
        };
        var outsideDns = new Dictionary<string, string> { ["tunnel.test"] = tunnelService };
        for (int i = 0; i < 3; i++)
        {
            outsideDns[$"gw-{i}.tunnel.test"] = $"{sts}-{i}";
        }
        RenderedCluster? cluster = null;
        try
        {
            cluster = await StartClusterAsync(m, secrets, network, directory, outsideDns, backend);
            var visitor = cluster.Services[Name(m.One("Service", "gateway"))];
            var gateways = cluster.Pods.Where(p => p.Component == "gateway").ToList();

            // Every gateway links to the two others over TLS, at their names under the headless Service.
            foreach (var gateway in gateways)
            {
                foreach (var other in gateways.Where(g => g != gateway))
                {
                    await cluster.Process(gateway.Name).WaitForLineAsync(
                        $"Link to gateway '{other.Name}' at https://{other.Name}.{headless}.{Ns}.svc:7070 is up", TimeSpan.FromSeconds(90));
                }
            }
            // Every gateway directly: the agent (Agent:Connections 1) is on one, so two of them cross over
            // those links. A gateway may not have the agent's session from the directory yet: retry (bounded).
            Assert.Equal(1, AgentConnections(m));
            foreach (var gateway in gateways)
            {
                using var direct = Client(gateway.Address, pki, ingressPort: gateway.PortOf(JsonString("ingress")));
                string last = "";
                for (var deadline = DateTime.UtcNow.AddSeconds(60); last != "200 hello" && DateTime.UtcNow < deadline;)
                {
                    using var response = await direct.GetAsync("http://app.test/hello");
                    last = $"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}";
                    if (last != "200 hello")
                    {
                        await Task.Delay(250);
                    }
                }
                Assert.True(last == "200 hello", $"{gateway.Name} never served the agent held by one gateway: {last}");
            }

            // HTTP through the visitor Service (nginx round robin over the 3 gateways), bodies by hash.
            using var http = Client(visitor, pki);
            for (int i = 0; i < 6; i++)
            {
                int size = 100_000 + i;
                var body = await http.GetByteArrayAsync($"http://app.test/download?size={size}");
                Assert.Equal(OrleansTunnel.Demo.DemoBackend.DownloadHash(size), Convert.ToHexStringLower(SHA256.HashData(body)));
            }

            // HTTPS (ALPN h2) and a WebSocket through the visitor Service.
            using var https = Client(visitor, pki);
            using (var response = await https.SendAsync(new HttpRequestMessage(HttpMethod.Get, "https://app.test/hello") { Version = HttpVersion.Version20, VersionPolicy = HttpVersionPolicy.RequestVersionExact }))
            {
                Assert.Equal((HttpStatusCode.OK, HttpVersion.Version20, "hello"), (response.StatusCode, response.Version, await response.Content.ReadAsStringAsync()));
            }
            using (var ws = new ClientWebSocket())
            {
                using var invoker = new HttpMessageInvoker(Handler(visitor, pki));
                await ws.ConnectAsync(new Uri("ws://app.test/ws"), invoker, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60));
                var message = Encoding.UTF8.GetBytes("over the rendered release");
                await ws.SendAsync(message, WebSocketMessageType.Text, true, CancellationToken.None);
                var buffer = new byte[1024];
                var received = await ws.ReceiveAsync(buffer, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60));
                Assert.Equal("over the rendered release", Encoding.UTF8.GetString(buffer, 0, received.Count));
                await ws.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60));
            }

            // gRPC (HTTP/2 over the HTTPS ingress) through the visitor Service, several calls to reach every gateway.
            using (var channel = GrpcChannel.ForAddress("https://grpc.test", new GrpcChannelOptions { HttpHandler = Handler(visitor, pki) }))
            {
                var echo = new Echo.EchoClient(channel);
                for (int i = 0; i < 6; i++)
                {
                    var reply = await echo.UnaryAsync(new EchoRequest { Text = "grpc " + i, Sequence = i }, deadline: DateTime.UtcNow.AddSeconds(60));
                    Assert.Equal(("grpc " + i, i), (reply.Text, reply.Sequence));
                }
            }

            // An agent outside the cluster dials the tunnel Service, learns the external per-gateway
            // addresses (gw-N.tunnel.test, per-pod Services) and spreads its 3 connections over 3 gateways.
            var outside = await StartOutsideAgentAsync(cluster, pki, backend);
            await outside.WaitForLineAsync("otun agent: ready", TimeSpan.FromSeconds(90));
            await Eventually.TrueAsync(() => TunnelGateways(outside).Distinct().Count() == 3, TimeSpan.FromSeconds(90),
                "the outside agent did not spread over 3 gateways: " + string.Join(", ", TunnelGateways(outside)) + "\n" + outside.Tail());
            Assert.Contains(outside.Lines, l => Regex.IsMatch(l, @"Tunnel up to https://gw-\d\.tunnel\.test(:443)?/? "));
            Assert.Equal("hello", await http.GetStringAsync("http://outside.test/hello"));

            // The chart's own `helm test` pod passes against the running release.
            var test = m.OfKind("Pod").Single();
            Assert.Equal(0, await cluster.RunToCompletionAsync(test, TimeSpan.FromSeconds(120)));
        }
        catch (Exception ex) when (cluster is not null && ex is not Xunit.Sdk.XunitException)
        {
            throw new InvalidOperationException(ex.Message + "\n" + cluster.Logs, ex);
        }
        finally
        {
            if (cluster is not null)
            {
                await cluster.DisposeAsync();
            }
            try
            {
                Directory.Delete(directory, recursive: true);
            }
            catch (IOException)
            {
                // A leftover under /var/tmp is harmless.
            }
        }
    }

    private static async Task<RenderedCluster> StartClusterAsync(Manifests m, Dictionary<string, Dictionary<string, byte[]>> secrets, PodNetwork network,
        string directory, Dictionary<string, string> outsideDns, TestBackend backend)
    {
        var extraDns = new Dictionary<string, System.Net.IPAddress> { ["backend.test"] = network.Node };
        return await RenderedCluster.StartAsync(m, secrets, network, directory, Ns, outsideDns, extraDns);
    }

    private static System.Text.Json.JsonElement JsonString(string s) => System.Text.Json.JsonDocument.Parse($"\"{s}\"").RootElement;

    private static int AgentConnections(Manifests m) =>
        System.Text.Json.JsonDocument.Parse(At(m.One("ConfigMap", "agent"), "data", "appsettings.json")!.Value.GetString()!).RootElement
            .GetProperty("Agent").GetProperty("Connections").GetInt32();

    /// <summary>The gateway of each slot's latest "Tunnel up" line.</summary>
    private static IEnumerable<string> TunnelGateways(PodProcess agent) => agent.Lines
        .Select(l => TunnelUp().Match(l)).Where(x => x.Success)
        .GroupBy(x => x.Groups["slot"].Value).Select(g => g.Last().Groups["gateway"].Value);

    [GeneratedRegex(@"Tunnel up to \S+ \(gateway (?<gateway>[^,]+), session [^,]+, slot (?<slot>\d+)")]
    private static partial Regex TunnelUp();

    private static async Task<PodProcess> StartOutsideAgentAsync(RenderedCluster cluster, SecretPki pki, TestBackend backend)
    {
        string files = Path.Combine(cluster.Directory, "outside-files");
        Directory.CreateDirectory(Path.Combine(files, "tmp"));
        File.SetUnixFileMode(Path.Combine(files, "tmp"), (UnixFileMode)0b111_111_111);
        File.WriteAllText(Path.Combine(files, "ca.crt"), pki.Ca.ExportCertificatePem() + "\n");
        var env = new Dictionary<string, string>
        {
            ["OTUN_Agent__Token"] = OutAgentToken,
            ["OTUN_Agent__GatewayCaFile"] = "/etc/outside/ca.crt",
            ["OTUN_Logging__LogLevel__OrleansTunnel"] = "Information",
        };
        return await cluster.StartOutsideAsync("outside-agent",
            [new PodMount(files + "/ca.crt", "/etc/outside/ca.crt", true), new PodMount(files + "/tmp", "/tmp", false)], env,
            [.. PodProcess.Otun, "agent", "--agent-id", "out-agent", "--gateway", "https://tunnel.test:7070",
             "--connections", "3", "--expose", $"http://backend.test:{backend.Port}", "--service", "outside"]);
    }

    /// <summary>A client whose every connection goes to <paramref name="address"/> (port 80, or 443 for https), trusting the test CA.</summary>
    private static HttpClient Client(IPAddress address, SecretPki pki, int ingressPort = 80) =>
        new(Handler(address, pki, ingressPort)) { Timeout = TimeSpan.FromSeconds(60) };

    private static SocketsHttpHandler Handler(IPAddress address, SecretPki pki, int httpPort = 80) => new()
    {
        ConnectCallback = async (context, cancel) =>
        {
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                int port = context.DnsEndPoint.Port == 443 ? 443 : httpPort;
                await socket.ConnectAsync(address, port, cancel);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        },
        SslOptions = new SslClientAuthenticationOptions
        {
            RemoteCertificateValidationCallback = (_, certificate, _, errors) => certificate is not null
                && (errors & ~SslPolicyErrors.RemoteCertificateChainErrors) == SslPolicyErrors.None
                && OrleansTunnel.Mux.CaTrust.ChainsTo(new System.Security.Cryptography.X509Certificates.X509Certificate2(certificate), pki.Ca),
        },
    };
}
