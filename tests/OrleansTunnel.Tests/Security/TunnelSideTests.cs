using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using OrleansTunnel.Mux;
using OrleansTunnel.Protocol.V1;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;

namespace OrleansTunnel.Tests.Security;

/// <summary>Hostile agents and the tunnel endpoint: forged streams, overruns, garbage, floods, TLS and mTLS.</summary>
public sealed class TunnelSideTests
{
    private static async Task<HttpResponseMessage> GetWithHost(TunnelHarness h, string host, string path = "/hello")
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, h.Url(path));
        request.Headers.Host = host;
        return await h.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
    }

    [Fact]
    public async Task ForgedStreams_AreDropped_OverCreditResetsOnlyThatRequest_TheConnectionLivesOn()
    {
        await using var h = await TunnelHarness.StartAsync();
        await using var fake = await FakeAgent.ConnectAsync(h);

        // A frame for a stream the gateway never opened: rejected, logged, the connection stays.
        await fake.SendAsync(new Frame { Stream = 999, Data = new Data { Payload = ByteString.CopyFromUtf8("forged"), EndOfBody = true } });

        // A request answered with more data than the credit allows: that request is reset.
        var overrun = GetWithHost(h, "other.test", "/overrun");
        var head = await fake.NextAsync(f => f.KindCase == Frame.KindOneofCase.RequestHead);
        var chunk = ByteString.CopyFrom(new byte[65536]);
        // One chunk more than the gateway's default window grants.
        int chunks = new OrleansTunnel.Gateway.GatewayOptions().ReceiveWindow / chunk.Length + 1;
        await fake.SendAsync(
            [
                new Frame { Stream = head.Stream, ResponseHead = new ResponseHead { Status = 200 } },
                .. Enumerable.Range(0, chunks).Select(_ => new Frame { Stream = head.Stream, Data = new Data { Payload = chunk } }),
            ]);
        var reset = await fake.NextAsync(f => f.Stream == head.Stream && f.KindCase == Frame.KindOneofCase.Reset);
        Assert.Equal(ResetCode.ProtocolError, reset.Reset.Code);
        await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            using var r = await overrun;
            await Hashing.Sha256Async(await r.Content.ReadAsStreamAsync());
        });

        // The same connection still serves the next request.
        var next = GetWithHost(h, "other.test", "/fine");
        var nextHead = await fake.NextAsync(f => f.KindCase == Frame.KindOneofCase.RequestHead);
        Assert.Equal("/fine", nextHead.RequestHead.PathAndQuery);
        await fake.AnswerAsync(nextHead.Stream, "still here");
        using var ok = await next;
        Assert.Equal("still here", await ok.Content.ReadAsStringAsync());

        // Forged stream: never delivered anywhere; and the honest agent was never disturbed.
        using var honest = await h.Client.GetAsync(h.Url("/hello"));
        Assert.Equal("hello", await honest.Content.ReadAsStringAsync());
    }

    [Theory]
    [InlineData(999)]
    [InlineData(0)]
    [InlineData(100)]
    [InlineData(101)]
    [InlineData(70000)]
    public async Task AStatusThatIsNotAFinalHttpStatus_Is502_AndNeverReachesKestrelOrMetrics(int status)
    {
        await using var h = await TunnelHarness.StartAsync();
        await using var fake = await FakeAgent.ConnectAsync(h);
        var pending = GetWithHost(h, "other.test", "/status");
        var head = await fake.NextAsync(f => f.KindCase == Frame.KindOneofCase.RequestHead);
        await fake.SendAsync(new Frame { Stream = head.Stream, ResponseHead = new ResponseHead { Status = status, EndOfBody = true } });
        using var response = await pending;
        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Equal($"otun: the backend's answer broke the protocol: the agent answered with status {status}, not a final HTTP status (200..599, or 101 to a WebSocket handshake)\n",
            await response.Content.ReadAsStringAsync());
        // The same connection serves the next request.
        var next = GetWithHost(h, "other.test", "/fine");
        var nextHead = await fake.NextAsync(f => f.KindCase == Frame.KindOneofCase.RequestHead);
        await fake.AnswerAsync(nextHead.Stream, "still here");
        using var ok = await next;
        Assert.Equal("still here", await ok.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task AGarbageFrame_ClosesOnlyThatAgentsConnection()
    {
        await using var h = await TunnelHarness.StartAsync();
        await using var fake = await FakeAgent.ConnectAsync(h);
        // A response head on the connection stream (0) is not a frame any agent may send there.
        await fake.SendAsync(new Frame { ResponseHead = new ResponseHead { Status = 200 } });
        var error = await fake.NextAsync(f => f.KindCase == Frame.KindOneofCase.Error);
        Assert.Equal("protocol_error", error.Error.Code);
        await Assert.ThrowsAnyAsync<Exception>(() => fake.NextAsync());

        using var honest = await h.Client.GetAsync(h.Url("/hello"));
        Assert.Equal("hello", await honest.Content.ReadAsStringAsync());
        using var gone = await GetWithHost(h, "other.test");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, gone.StatusCode);
    }

    [Fact]
    public async Task AHelloFlood_IsRateLimitedPerSource_AndTheConnectedAgentKeepsServing()
    {
        await using var h = await TunnelHarness.StartAsync(o => o.Gateway["Gateway:HandshakesPerSecondPerSource"] = "5");
        int limited = 0, other = 0;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        using var channel = GrpcChannel.ForAddress(h.TunnelUrl);
        var client = new Tunnel.TunnelClient(channel);
        await Task.WhenAll(Enumerable.Range(0, 60).Select(async _ =>
        {
            using var call = client.Connect();
            try
            {
                await call.RequestStream.WriteAsync(new FrameBatch { Frames = { new Frame { Hello = new Hello { ProtocolVersion = MuxSettings.ProtocolVersion, AgentId = "flood", Token = "x" } } } });
                // A handshake past the limiter gets its challenge, then the refusal of this hello.
                while (await call.ResponseStream.MoveNext(CancellationToken.None))
                {
                }
            }
            catch (RpcException ex) when (ex.StatusCode == StatusCode.ResourceExhausted)
            {
                Assert.StartsWith("too many tunnel handshakes from 127.0.0.1", ex.Status.Detail);
                Interlocked.Increment(ref limited);
            }
            catch (RpcException)
            {
                Interlocked.Increment(ref other);
            }
        })).Within(TimeSpan.FromSeconds(30));
        // A token bucket of 5/s with a burst of 10 lets through at most 10 + 5 per elapsed second.
        double allowed = 10 + 5 * clock.Elapsed.TotalSeconds + 1;
        Assert.True(other <= allowed, $"{other} handshakes got past the limiter in {clock.Elapsed.TotalSeconds:0.00} s (at most {allowed:0} may); {limited} were limited");
        Assert.Equal(60, limited + other);
        using var honest = await h.Client.GetAsync(h.Url("/hello"));
        Assert.Equal("hello", await honest.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task TheTunnel_OverTls_CarriesTraffic()
    {
        await using var h = await TunnelHarness.StartAsync(o => o.TunnelTls = true);
        Assert.StartsWith("https://", h.TunnelUrl);
        using var response = await h.Client.GetAsync(h.Url("/hello"));
        Assert.Equal("hello", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task MutualTls_AdmitsOnlyAgentsWithACertificateNamingThem()
    {
        string dir = Directory.CreateTempSubdirectory("otun-mtls-").FullName;
        var (caPem, caCert, caKey) = TestPki.CreateCa();
        File.WriteAllText(Path.Combine(dir, "ca.pem"), caPem);
        TestPki.WriteLeaf(dir, "good", TunnelHarness.AgentId, caCert, caKey);
        TestPki.WriteLeaf(dir, "impostor", TunnelHarness.OtherAgentId, caCert, caKey);

        await using var h = await TunnelHarness.StartAsync(o =>
        {
            o.TunnelTls = true;
            o.Gateway["Gateway:TunnelClientCaPath"] = Path.Combine(dir, "ca.pem");
            o.Agent["Agent:ClientCertificatePath"] = Path.Combine(dir, "good.pem");
            o.Agent["Agent:ClientCertificateKeyPath"] = Path.Combine(dir, "good.key");
        });
        using (var r = await h.Client.GetAsync(h.Url("/hello")))
        {
            Assert.Equal("hello", await r.Content.ReadAsStringAsync());
        }

        // A valid certificate that names another agent is refused for this agent id.
        var handler = new SocketsHttpHandler();
        handler.SslOptions.RemoteCertificateValidationCallback = (_, _, _, _) => true;
        var impostor = X509CertificateLoader.LoadPkcs12(X509Certificate2.CreateFromPemFile(Path.Combine(dir, "impostor.pem"), Path.Combine(dir, "impostor.key")).Export(X509ContentType.Pkcs12), null);
        handler.SslOptions.ClientCertificates = [impostor];
        using var channel = GrpcChannel.ForAddress(h.TunnelUrl, new GrpcChannelOptions { HttpHandler = handler });
        using var call = new Tunnel.TunnelClient(channel).Connect();
        var hello = new Hello { ProtocolVersion = MuxSettings.ProtocolVersion, AgentId = TunnelHarness.AgentId, InitialWindow = 65536, Services = { new ServiceOffer { Name = "backend" } } };
        var ex = await Assert.ThrowsAsync<RpcException>(() => TunnelDialer.HandshakeAsync(call, hello, h.AgentToken, TimeSpan.FromSeconds(30), "the impostor", CancellationToken.None));
        Assert.Equal(StatusCode.PermissionDenied, ex.StatusCode);
        Assert.Equal($"the client certificate ('{TunnelHarness.OtherAgentId}') does not name agent '{TunnelHarness.AgentId}'", ex.Status.Detail);

        // Without any client certificate the TLS handshake itself fails.
        var bare = new SocketsHttpHandler();
        bare.SslOptions.RemoteCertificateValidationCallback = (_, _, _, _) => true;
        using var bareChannel = GrpcChannel.ForAddress(h.TunnelUrl, new GrpcChannelOptions { HttpHandler = bare });
        using var bareCall = new Tunnel.TunnelClient(bareChannel).Connect();
        await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            await bareCall.RequestStream.WriteAsync(new FrameBatch { Frames = { new Frame { Hello = new Hello() } } });
            await bareCall.ResponseStream.MoveNext(CancellationToken.None);
        });
        Directory.Delete(dir, recursive: true);
    }
}
