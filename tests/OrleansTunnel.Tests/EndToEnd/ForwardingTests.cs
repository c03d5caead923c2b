using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using OrleansTunnel.Demo;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;

namespace OrleansTunnel.Tests.EndToEnd;

/// <summary>One harness shared by the forwarding tests (they do not disturb each other).</summary>
public sealed class SharedHarness : IAsyncLifetime
{
    public TunnelHarness Harness { get; private set; } = null!;

    // Many tests here make handshakes of their own (refused hellos): the per-source limit is tested apart (TunnelSideTests).
    // WebSocketTests holds a thousand sockets through the one agent: above the default per-agent and per-service
    // shares of a gateway.
    public async Task InitializeAsync() => Harness = await TunnelHarness.StartAsync(o =>
    {
        o.Gateway["Gateway:HandshakesPerSecondPerSource"] = "1000";
        o.Gateway["Gateway:MaxInFlightPerAgent"] = "2000";
        o.Gateway["Gateway:MaxInFlightPerService"] = "2000";
        // The thousand-socket test holds 1000 receive windows of 1 MiB: room beside them for the others.
        o.Gateway["Gateway:MaxTunnelBufferBytes"] = "4294967296";
    });

    public async Task DisposeAsync() => await Harness.DisposeAsync();
}

[CollectionDefinition("shared harness")]
public sealed class SharedHarnessCollection : ICollectionFixture<SharedHarness>;

/// <summary>Visitor HttpClient -> gateway -> agent -> Kestrel backend, over real loopback sockets.</summary>
[Collection("shared harness")]
public sealed class ForwardingTests(SharedHarness fixture)
{
    private TunnelHarness H => fixture.Harness;

    private sealed record Echo(string Method, string Target, string Host, string[][] Headers, string BodySha256, long BodyLength)
    {
        public IEnumerable<string> Values(string name) => Headers.Where(h => h[0].Equals(name, StringComparison.OrdinalIgnoreCase)).Select(h => h[1]);
    }

    private static async Task<Echo> ReadEcho(HttpResponseMessage response)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"status {(int)response.StatusCode}: {text}");
        return JsonSerializer.Deserialize<Echo>(text, new JsonSerializerOptions(JsonSerializerDefaults.Web))!;
    }

    [Theory]
    [InlineData("GET", false)]
    [InlineData("POST", true)]
    [InlineData("PUT", true)]
    [InlineData("PATCH", true)]
    [InlineData("DELETE", false)]
    [InlineData("OPTIONS", false)]
    [InlineData("PROPFIND", true)]
    public async Task EveryMethod_ReachesTheBackend_WithItsBody(string method, bool withBody)
    {
        var body = Hashing.Bytes(1000, seed: method.Length);
        using var request = new HttpRequestMessage(new HttpMethod(method), H.Url("/echo"));
        if (withBody)
        {
            request.Content = new ByteArrayContent(body);
        }
        using var response = await H.Client.SendAsync(request);
        var echo = await ReadEcho(response);
        Assert.Equal(method, echo.Method);
        Assert.Equal(withBody ? Hashing.Sha256(body) : Hashing.Sha256([]), echo.BodySha256);
        Assert.True(response.Headers.Contains("X-Tunnel-Request-Id"));
    }

    [Fact]
    public async Task Head_KeepsContentLength_AndSendsNoBody()
    {
        using var request = new HttpRequestMessage(HttpMethod.Head, H.Url("/download?size=12345"));
        using var response = await H.Client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(12345, response.Content.Headers.ContentLength);
        Assert.Empty(await response.Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task NoContent_And_NotModified_PassThrough()
    {
        using var noContent = await H.Client.GetAsync(H.Url("/nocontent"));
        Assert.Equal(HttpStatusCode.NoContent, noContent.StatusCode);
        Assert.Empty(await noContent.Content.ReadAsByteArrayAsync());

        using var notModified = await H.Client.GetAsync(H.Url("/notmodified"));
        Assert.Equal(HttpStatusCode.NotModified, notModified.StatusCode);
        Assert.Equal("\"v1\"", notModified.Headers.ETag?.Tag);
        Assert.Empty(await notModified.Content.ReadAsByteArrayAsync());
    }

    [Theory]
    [InlineData(201)]
    [InlineData(404)]
    [InlineData(418)]
    [InlineData(500)]
    [InlineData(503)]
    public async Task BackendStatus_AndBody_PassThrough(int status)
    {
        using var response = await H.Client.GetAsync(H.Url($"/status/{status}"));
        Assert.Equal(status, (int)response.StatusCode);
        Assert.Equal($"status {status}\n", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task RequestHeaders_DuplicateAndMultiValue_KeptInOrder()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, H.Url("/echo"));
        request.Headers.TryAddWithoutValidation("X-Multi", "one");
        request.Headers.TryAddWithoutValidation("X-Multi", "two");
        request.Headers.TryAddWithoutValidation("X-Multi", "three");
        request.Headers.TryAddWithoutValidation("X-List", "a, b");
        using var response = await H.Client.SendAsync(request);
        var echo = await ReadEcho(response);
        // A repeated request field reaches the backend as one comma-joined field (RFC 9110 5.3), in order.
        var values = echo.Values("X-Multi").SelectMany(v => v.Split(',', StringSplitOptions.TrimEntries)).ToArray();
        Assert.Equal(["one", "two", "three"], values);
        Assert.Equal(["a, b"], echo.Values("X-List").ToArray());
    }

    [Fact]
    public async Task ResponseHeaders_DuplicatesKeptInOrder_HopByHopStripped()
    {
        var response = await RawHttp.SendAsync(H.Ingress.Port, "GET /headers-out HTTP/1.1\r\nHost: backend.test\r\nConnection: close\r\n\r\n");
        Assert.Equal(200, response.Status);
        Assert.Equal(["a=1; Path=/", "b=2; Path=/"], response.Values("Set-Cookie").ToArray());
        Assert.Equal(["first", "second"], response.Values("X-Multi").SelectMany(v => v.Split(',', StringSplitOptions.TrimEntries)).ToArray());
        Assert.Empty(response.Values("Keep-Alive"));
        Assert.Empty(response.Values("Proxy-Authenticate"));
        Assert.Empty(response.Values("X-Hop"));
        var id = Assert.Single(response.Values("X-Tunnel-Request-Id"));
        Assert.NotEqual("forged-by-backend", id);
    }

    [Fact]
    public async Task RequestHopByHopHeaders_AreStripped()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, H.Url("/echo"));
        request.Headers.Connection.Add("X-Secret");
        request.Headers.TryAddWithoutValidation("X-Secret", "s");
        request.Headers.TryAddWithoutValidation("Keep-Alive", "timeout=5");
        request.Headers.TryAddWithoutValidation("Proxy-Authorization", "Basic eDp5");
        request.Headers.TryAddWithoutValidation("Proxy-Connection", "keep-alive");
        request.Headers.TryAddWithoutValidation("TE", "gzip");
        request.Headers.TryAddWithoutValidation("X-Kept", "yes");
        using var response = await H.Client.SendAsync(request);
        var echo = await ReadEcho(response);
        foreach (var name in new[] { "Connection", "X-Secret", "Keep-Alive", "Proxy-Authorization", "Proxy-Connection", "TE" })
        {
            Assert.Empty(echo.Values(name));
        }
        Assert.Equal(["yes"], echo.Values("X-Kept").ToArray());
    }

    [Fact]
    public async Task ForwardedHeaders_ComeFromThePeer_AndCannotBeSpoofed()
    {
        var response = await RawHttp.SendAsync(H.Ingress.Port,
            "GET /echo HTTP/1.1\r\nHost: backend.test\r\nConnection: close\r\nX-Forwarded-For: 6.6.6.6\r\n" +
            "X-Forwarded-Host: evil.example\r\nX-Forwarded-Proto: https\r\nForwarded: for=6.6.6.6;proto=https\r\n\r\n");
        Assert.Equal(200, response.Status);
        var echo = JsonSerializer.Deserialize<Echo>(response.Text, new JsonSerializerOptions(JsonSerializerDefaults.Web))!;
        Assert.Equal(["127.0.0.1"], echo.Values("X-Forwarded-For").ToArray());
        Assert.Equal(["backend.test"], echo.Values("X-Forwarded-Host").ToArray());
        Assert.Equal(["http"], echo.Values("X-Forwarded-Proto").ToArray());
        Assert.Empty(echo.Values("Forwarded"));
        Assert.Equal("backend.test", echo.Host);
    }

    [Theory]
    [InlineData("/echo", "backend.test")]
    [InlineData("/echo/a%2Cb/%7E/c%20d?q=%20+x&y=%zz&&z/../%2F", "backend.test")]
    [InlineData("/echo/caf%C3%A9/%E2%82%AC?name=%C3%BC", "backend.test")]
    [InlineData("/echo?empty=&=&a=b=c", "backend.test")]
    // Non-canonical paths pass only on a route in Raw mode (Canonical routes refuse them: CanonicalPathTests).
    [InlineData("/echo/a%2Fb/%7E/c%20d?q=%20+x&y=%zz&&z", "raw.backend.test")]
    [InlineData("/echo/./x/../y?a=1;b=2", "raw.backend.test")]
    public async Task PathAndQuery_ReachTheBackend_ByteForByte(string target, string host)
    {
        var response = await RawHttp.SendAsync(H.Ingress.Port, $"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        Assert.Equal(200, response.Status);
        var echo = JsonSerializer.Deserialize<Echo>(response.Text, new JsonSerializerOptions(JsonSerializerDefaults.Web))!;
        Assert.Equal(target, echo.Target);
    }

    [Fact]
    public async Task RawNonAsciiBytesInTheTarget_Are400_AndTheNextRequestIsServed()
    {
        // RFC 9112 allows only ASCII in the request-target; Kestrel refuses raw UTF-8 there (percent-encoded
        // non-ASCII passes unchanged, see above). The refusal must not disturb anything else.
        var request = Encoding.UTF8.GetBytes("GET /echo/café HTTP/1.1\r\nHost: backend.test\r\nConnection: close\r\n\r\n");
        var response = await RawHttp.SendAsync(H.Ingress.Port, request);
        Assert.Equal(400, response.Status);
        using var next = await H.Client.GetAsync(H.Url("/hello"));
        Assert.Equal("hello", await next.Content.ReadAsStringAsync());
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(65535)]
    [InlineData(65536)]
    [InlineData(65537)]
    [InlineData(300_000)]
    public async Task Bodies_RoundTrip_ByHash(int size)
    {
        var body = Hashing.Bytes(size, seed: size);
        using var upload = await H.Client.PostAsync(H.Url("/upload"), new ByteArrayContent(body));
        var sent = JsonDocument.Parse(await upload.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(Hashing.Sha256(body), sent.GetProperty("sha256").GetString());
        Assert.Equal(size, sent.GetProperty("length").GetInt64());

        using var download = await H.Client.GetAsync(H.Url($"/download?size={size}"), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(size, download.Content.Headers.ContentLength);
        var (hash, length) = await Hashing.Sha256Async(await download.Content.ReadAsStreamAsync());
        Assert.Equal(size, length);
        Assert.Equal(DemoBackend.DownloadHash(size), hash);
    }

    [Fact]
    public async Task HundredMiB_Download_ArrivesWhole()
    {
        const long size = 100L * 1024 * 1024;
        using var download = await H.Client.GetAsync(H.Url($"/download?size={size}"), HttpCompletionOption.ResponseHeadersRead);
        var (hash, length) = await Hashing.Sha256Async(await download.Content.ReadAsStreamAsync());
        Assert.Equal(size, length);
        Assert.Equal(DemoBackend.DownloadHash(size), hash);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task HundredMiB_Upload_ArrivesWhole_WithOrWithoutContentLength(bool knownLength)
    {
        const long size = 100L * 1024 * 1024;
        var content = new GeneratedContent(size, knownLength);
        using var upload = await H.Client.PostAsync(H.Url("/upload"), content);
        var sent = JsonDocument.Parse(await upload.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(size, sent.GetProperty("length").GetInt64());
        Assert.Equal(content.SentHash, sent.GetProperty("sha256").GetString());
    }

    [Fact]
    public async Task ChunkedRequest_WithoutContentLength_IsForwarded()
    {
        var body = Hashing.Bytes(200_000, seed: 7);
        var content = new StreamContent(new NonSeekableStream(body));
        using var request = new HttpRequestMessage(HttpMethod.Post, H.Url("/echo")) { Content = content };
        request.Headers.TransferEncodingChunked = true;
        using var response = await H.Client.SendAsync(request);
        var echo = await ReadEcho(response);
        Assert.Equal(Hashing.Sha256(body), echo.BodySha256);
        Assert.Empty(echo.Values("Content-Length"));
    }

    [Fact]
    public async Task ServerSentEvents_ArriveEachBeforeTheNextIsProduced()
    {
        string id = Guid.NewGuid().ToString("N");
        const int count = 5;
        using var response = await H.Client.GetAsync(H.Url($"/sse-gated?id={id}&count={count}"), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var gate = H.Backend.Gate(id);
        for (int i = 0; i < count; i++)
        {
            // The backend produces event i+1 only after we release it, so event i must arrive on its own.
            string? line = await reader.ReadLineAsync().Within(TimeSpan.FromSeconds(10));
            Assert.Equal($"data: event {i}", line);
            Assert.Equal("", await reader.ReadLineAsync().Within(TimeSpan.FromSeconds(10)));
            gate.Release();
        }
        Assert.Null(await reader.ReadLineAsync().Within(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task VisitorAbort_CancelsTheBackendRequest()
    {
        string id = Guid.NewGuid().ToString("N");
        using var cts = new CancellationTokenSource();
        var call = H.Client.GetAsync(H.Url($"/hang?id={id}"), cts.Token);
        await H.Backend.StartedSignal(id).Task.Within(TimeSpan.FromSeconds(10));
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call);
        await H.Backend.AbortedSignal(id).Task.Within(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task ManyConcurrentRequests_DoNotWaitForSlowOnes()
    {
        const int total = 500, slow = 5;
        using var client = TunnelHarness.NewClient();
        var slowCalls = Enumerable.Range(0, slow).Select(_ => client.GetAsync(H.Url("/sleep?ms=5000"))).ToArray();
        var fastCalls = Enumerable.Range(0, total - slow).Select(async i =>
        {
            using var response = await client.GetAsync(H.Url($"/echo?i={i}"));
            var echo = await ReadEcho(response);
            Assert.Equal($"/echo?i={i}", echo.Target);
        }).ToArray();
        await Task.WhenAll(fastCalls).Within(TimeSpan.FromSeconds(60));
        // Every fast request finished while the slow ones were still sleeping at the backend.
        Assert.All(slowCalls, c => Assert.False(c.IsCompleted, "a slow request finished before the fast ones"));
        foreach (var response in await Task.WhenAll(slowCalls).Within(TimeSpan.FromSeconds(30)))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("slept\n", await response.Content.ReadAsStringAsync());
            response.Dispose();
        }
    }

    private sealed class NonSeekableStream(byte[] data) : MemoryStream(data)
    {
        public override bool CanSeek => false;
    }
}
