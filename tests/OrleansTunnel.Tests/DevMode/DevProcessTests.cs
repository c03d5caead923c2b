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
    private readonly int _ingress = Ports.Free(), _https = Ports.Free(), _tunnel = Ports.Free(), _admin = Ports.Free();
    private readonly string _data = Path.Combine(Path.GetTempPath(), "otun-dev-test-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly List<string> _stdout = [];
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private TestBackend _backend = null!;
    private Process _process = null!;

    public async Task InitializeAsync()
    {
        _backend = await TestBackend.StartAsync();
        string otun = Path.Combine(AppContext.BaseDirectory, "otun.dll");
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[]
        {
            otun, "dev",
            "--ingress", $"http://127.0.0.1:{_ingress}", "--https-ingress", $"https://127.0.0.1:{_https}",
            "--tunnel", $"http://127.0.0.1:{_tunnel}", "--admin", $"http://127.0.0.1:{_admin}", "--data", _data,
            "--set", $"Cluster:SiloPort={Ports.Free()}", "--set", $"Cluster:GatewayPort={Ports.Free()}",
            "--set", $"Cluster:Dashboard=http://127.0.0.1:{Ports.Free()}",
            "--expose", _backend.Url, "--host", "app.localhost", "--host", "127.0.0.1",
            "--expose", $"h2c://127.0.0.1:{_backend.H2cPort}", "--host", "grpc.localhost",
        })
        {
            start.ArgumentList.Add(arg);
        }
        _process = Process.Start(start)!;
        _process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                _ready.TrySetException(new InvalidOperationException("otun dev exited before it was ready:\n" + string.Join("\n", _stdout)));
                return;
            }
            lock (_stdout)
            {
                _stdout.Add(e.Data);
            }
            if (e.Data.Contains("ready", StringComparison.Ordinal))
            {
                Assert.StartsWith("otun dev: ready", e.Data);
            {
                _ready.TrySetResult();
            }
            }
        };
        _process.ErrorDataReceived += (_, _) => { };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        await _ready.Task.Within(TimeSpan.FromSeconds(60));
        output.WriteLine(string.Join("\n", _stdout));
    }

    public async Task DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
        await _backend.DisposeAsync();
        Directory.Delete(_data, recursive: true);
    }

    private string CertificatePath()
    {
        lock (_stdout)
        {
            var line = _stdout.Single(l => l.TrimStart().StartsWith("dev cert", StringComparison.Ordinal));
            return line.Trim()["dev cert".Length..].Trim().Split(' ')[0];
        }
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
        using (var r = await http1.GetAsync($"http://127.0.0.1:{_ingress}/hello"))
        {
            Assert.Equal("hello", await r.Content.ReadAsStringAsync());
        }

        // HTTP/2 over TLS with the dev certificate
        using var http2 = new HttpClient(Trusting()) { DefaultRequestVersion = HttpVersion.Version20, DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact };
        using (var r = await http2.GetAsync($"https://127.0.0.1:{_https}/download?size=1000000"))
        {
            Assert.Equal(HttpVersion.Version20, r.Version);
            var (hash, _) = await Hashing.Sha256Async(await r.Content.ReadAsStreamAsync());
            Assert.Equal(OrleansTunnel.Demo.DemoBackend.DownloadHash(1_000_000), hash);
        }

        // WebSocket
        using (var ws = new ClientWebSocket())
        {
            await ws.ConnectAsync(new Uri($"ws://127.0.0.1:{_ingress}/ws"), CancellationToken.None).Within(TimeSpan.FromSeconds(10));
            await ws.SendAsync("through the dev process"u8.ToArray(), WebSocketMessageType.Text, true, CancellationToken.None);
            var buffer = new byte[1024];
            var result = await ws.ReceiveAsync(buffer, CancellationToken.None).Within(TimeSpan.FromSeconds(10));
            Assert.Equal("through the dev process", Encoding.UTF8.GetString(buffer, 0, result.Count));
            await ws.CloseAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None);
        }

        // gRPC (routed by host to the h2c backend)
        using (var channel = GrpcChannel.ForAddress($"https://127.0.0.1:{_https}", new GrpcChannelOptions { HttpHandler = new HostOverride("grpc.localhost", Trusting()) }))
        {
            var reply = await new Echo.EchoClient(channel).UnaryAsync(new EchoRequest { Text = "grpc via dev", Sequence = 3 });
            Assert.Equal("grpc via dev", reply.Text);
            var ex = await Assert.ThrowsAsync<RpcException>(() => new Echo.EchoClient(GrpcChannel.ForAddress($"https://127.0.0.1:{_https}",
                new GrpcChannelOptions { HttpHandler = new HostOverride("nowhere.localhost", Trusting()) })).UnaryAsync(new EchoRequest()).ResponseAsync);
            Assert.Equal(StatusCode.NotFound, ex.StatusCode);
        }

        // Admin
        using (var r = await http1.GetAsync($"http://127.0.0.1:{_admin}/readyz"))
        {
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        }

        // SIGTERM stops it cleanly.
        using (var kill = Process.Start("kill", ["-TERM", _process.Id.ToString()]))
        {
            await kill.WaitForExitAsync();
            Assert.Equal(0, kill.ExitCode);
        }
        await _process.WaitForExitAsync().Within(TimeSpan.FromSeconds(30));
        Assert.Equal(0, _process.ExitCode);
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
