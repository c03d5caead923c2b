using System.Diagnostics;
using System.Net;
using System.Net.WebSockets;
using System.Text;
using Grpc.Core;
using Grpc.Net.Client;
using OrleansTunnel.Tests.Grpc;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace OrleansTunnel.Tests.DevMode;

/// <summary>
/// `otun dev` as a user runs it: a separate process, exposing a backend, then each protocol through it.
/// </summary>
public sealed class DevProcessTests(ITestOutputHelper output) : IAsyncLifetime
{
    private TestBackend _backend = null!;
    private DevProcess _dev = null!;

    public async Task InitializeAsync()
    {
        _backend = await TestBackend.StartAsync();
        _dev = await DevProcess.StartAsync(
            "--expose", _backend.Url, "--host", "app.localhost", "--host", "127.0.0.1",
            "--expose", $"h2c://127.0.0.1:{_backend.H2cPort}", "--host", "grpc.localhost");
        output.WriteLine(string.Join("\n", _dev.Lines));
    }

    public async Task DisposeAsync()
    {
        await _dev.DisposeAsync();
        await _backend.DisposeAsync();
    }

    private string CertificatePath()
    {
        var line = _dev.Lines.Single(l => l.TrimStart().StartsWith("dev cert", StringComparison.Ordinal));
        return line.Trim()["dev cert".Length..].Trim().Split(' ')[0];
    }

    private HttpMessageHandler Trusting()
    {
        var certificate = System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPem(File.ReadAllText(CertificatePath()));
        return new SocketsHttpHandler
        {
            SslOptions = { RemoteCertificateValidationCallback = (_, cert, _, _) => cert?.GetCertHashString() == certificate.GetCertHashString() },
        };
    }

    [Fact]
    public async Task EveryProtocol_ThroughTheDevProcess_ThenItStopsOnSigterm()
    {
        Assert.True(File.Exists(CertificatePath()), "the dev certificate path printed does not exist");

        // HTTP/1.1
        using var http1 = new HttpClient();
        using (var r = await http1.GetAsync($"http://127.0.0.1:{_dev.Ingress}/hello"))
        {
            Assert.Equal("hello", await r.Content.ReadAsStringAsync());
        }

        // HTTP/2 over TLS with the dev certificate
        using var http2 = new HttpClient(Trusting()) { DefaultRequestVersion = HttpVersion.Version20, DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact };
        using (var r = await http2.GetAsync($"https://127.0.0.1:{_dev.Https}/download?size=1000000"))
        {
            Assert.Equal(HttpVersion.Version20, r.Version);
            var (hash, _) = await Hashing.Sha256Async(await r.Content.ReadAsStreamAsync());
            Assert.Equal(OrleansTunnel.Demo.DemoBackend.DownloadHash(1_000_000), hash);
        }

        // WebSocket
        using (var ws = new ClientWebSocket())
        {
            await ws.ConnectAsync(new Uri($"ws://127.0.0.1:{_dev.Ingress}/ws"), CancellationToken.None).Within(TimeSpan.FromSeconds(10));
            await ws.SendAsync("through the dev process"u8.ToArray(), WebSocketMessageType.Text, true, CancellationToken.None);
            var buffer = new byte[1024];
            var result = await ws.ReceiveAsync(buffer, CancellationToken.None).Within(TimeSpan.FromSeconds(10));
            Assert.Equal("through the dev process", Encoding.UTF8.GetString(buffer, 0, result.Count));
            await ws.CloseAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None);
        }

        // gRPC (routed by host to the h2c backend)
        using (var channel = GrpcChannel.ForAddress($"https://127.0.0.1:{_dev.Https}", new GrpcChannelOptions { HttpHandler = new HostOverride("grpc.localhost", Trusting()) }))
        {
            var reply = await new Echo.EchoClient(channel).UnaryAsync(new EchoRequest { Text = "grpc via dev", Sequence = 3 });
            Assert.Equal("grpc via dev", reply.Text);
            var ex = await Assert.ThrowsAsync<RpcException>(() => new Echo.EchoClient(GrpcChannel.ForAddress($"https://127.0.0.1:{_dev.Https}",
                new GrpcChannelOptions { HttpHandler = new HostOverride("nowhere.localhost", Trusting()) })).UnaryAsync(new EchoRequest()).ResponseAsync);
            Assert.Equal(StatusCode.NotFound, ex.StatusCode);
        }

        // Admin
        using (var r = await http1.GetAsync($"http://127.0.0.1:{_dev.Admin}/readyz"))
        {
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        }

        // SIGTERM stops it cleanly.
        Assert.Equal(0, await _dev.TerminateAsync());
    }

    private sealed class HostOverride(string host, HttpMessageHandler inner) : DelegatingHandler(inner)
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            request.Headers.Host = host;
            return base.SendAsync(request, cancellationToken);
        }
    }
}
