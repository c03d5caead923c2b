using System.Net;
using System.Text.Json;
using OrleansTunnel.Demo;
using OrleansTunnel.Tests.EndToEnd;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;

namespace OrleansTunnel.Tests.Protocols;

/// <summary>Visitors on HTTP/2 (TLS with ALPN, and cleartext prior knowledge) through the tunnel.</summary>
[Collection("shared harness")]
public sealed class Http2Tests(SharedHarness fixture)
{
    private TunnelHarness H => fixture.Harness;

    [Fact]
    public async Task Tls_NegotiatesHttp2_AndHttp11_ByAlpn()
    {
        using var h2 = TunnelHarness.NewHttp2Client();
        using var r2 = await h2.GetAsync(new Uri(H.HttpsIngress, "/echo"));
        Assert.Equal(HttpVersion.Version20, r2.Version);
        var echo = JsonDocument.Parse(await r2.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("https", echo.GetProperty("headers").EnumerateArray().First(h => h[0].GetString() == "X-Forwarded-Proto")[1].GetString());

        using var h1 = new HttpClient(TunnelHarness.TrustingHandler());
        using var r1 = await h1.GetAsync(new Uri(H.HttpsIngress, "/hello"));
        Assert.Equal(HttpVersion.Version11, r1.Version);
        Assert.Equal("hello", await r1.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task CleartextHttp2_PriorKnowledge_IsServed()
    {
        using var client = new HttpClient { DefaultRequestVersion = HttpVersion.Version20, DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact };
        using var response = await client.GetAsync(new Uri(H.H2cIngress, "/hello"));
        Assert.Equal(HttpVersion.Version20, response.Version);
        Assert.Equal("hello", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task ManyConcurrentStreams_OnOneConnection_BothDirections()
    {
        using var client = TunnelHarness.NewHttp2Client();
        var tasks = Enumerable.Range(0, 100).Select(async i =>
        {
            var body = Hashing.Bytes(100_000 + i, seed: i);
            using var upload = await client.PostAsync(new Uri(H.HttpsIngress, "/upload"), new ByteArrayContent(body));
            Assert.Equal(HttpVersion.Version20, upload.Version);
            var sent = JsonDocument.Parse(await upload.Content.ReadAsStringAsync()).RootElement;
            Assert.Equal(Hashing.Sha256(body), sent.GetProperty("sha256").GetString());
            using var download = await client.GetAsync(new Uri(H.HttpsIngress, $"/download?size={300_000 + i}"));
            var (hash, _) = await Hashing.Sha256Async(await download.Content.ReadAsStreamAsync());
            Assert.Equal(DemoBackend.DownloadHash(300_000 + i), hash);
        });
        await Task.WhenAll(tasks).Within(TimeSpan.FromSeconds(60));
    }

    [Fact]
    public async Task LargeStreamingBodies_OverHttp2_ArriveWhole()
    {
        using var client = TunnelHarness.NewHttp2Client();
        var content = new GeneratedContent(50L << 20, knownLength: false);
        using var upload = await client.PostAsync(new Uri(H.HttpsIngress, "/upload"), content);
        var sent = JsonDocument.Parse(await upload.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(content.SentHash, sent.GetProperty("sha256").GetString());
        using var download = await client.GetAsync(new Uri(H.HttpsIngress, $"/download?size={50L << 20}"), HttpCompletionOption.ResponseHeadersRead);
        var (hash, length) = await Hashing.Sha256Async(await download.Content.ReadAsStreamAsync());
        Assert.Equal(50L << 20, length);
        Assert.Equal(DemoBackend.DownloadHash(50L << 20), hash);
    }

    [Fact]
    public async Task StreamReset_CancelsOnlyThatRequest()
    {
        using var client = TunnelHarness.NewHttp2Client();
        string id = Guid.NewGuid().ToString("N");
        using var cts = new CancellationTokenSource();
        var hanging = client.GetAsync(new Uri(H.HttpsIngress, $"/hang?id={id}"), cts.Token);
        await H.Backend.StartedSignal(id).Task.Within(TimeSpan.FromSeconds(10));
        // Cancelling an HTTP/2 request sends RST_STREAM on the shared connection.
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => hanging);
        await H.Backend.AbortedSignal(id).Task.Within(TimeSpan.FromSeconds(10));
        using var next = await client.GetAsync(new Uri(H.HttpsIngress, "/hello"));
        Assert.Equal("hello", await next.Content.ReadAsStringAsync());
    }
}

/// <summary>https backends: verified by default, trusted through a CA file, or (opt-in) unverified.</summary>
[Collection("shared harness")]
public sealed class BackendTlsTests(SharedHarness fixture)
{
    private async Task<HttpResponseMessage> GetWithHost(string host)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, fixture.Harness.Url("/hello"));
        request.Headers.Host = host;
        return await fixture.Harness.Client.SendAsync(request);
    }

    [Fact]
    public async Task SelfSignedBackend_IsRefused_ByDefault()
    {
        using var response = await GetWithHost("tls-untrusted.test");
        Assert.True(response.StatusCode == HttpStatusCode.BadGateway,
            $"expected 502, got {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        // The visitor learns the kind of failure; the TLS detail (with the backend's address) is in the request's record.
        Assert.Equal("otun: the backend refused or reset the connection\n", await response.Content.ReadAsStringAsync());
        string id = response.Headers.GetValues("X-Tunnel-Request-Id").Single();
        using var admin = new HttpClient { BaseAddress = fixture.Harness.Admin };
        admin.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", fixture.Harness.AdminToken);
        Assert.Contains("SSL", await admin.GetStringAsync($"api/requests/{id}"), StringComparison.OrdinalIgnoreCase);
    }

    [Theory]
    [InlineData("tls-ca.test")]
    [InlineData("tls-skip.test")]
    public async Task SelfSignedBackend_IsServed_WithItsCa_OrWhenVerificationIsSkipped(string host)
    {
        using var response = await GetWithHost(host);
        Assert.True(response.StatusCode == HttpStatusCode.OK,
            $"expected 200, got {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        Assert.Equal("hello", await response.Content.ReadAsStringAsync());
    }
}
