using System.Net;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;

namespace OrleansTunnel.Tests.EndToEnd;

/// <summary>Errors a visitor can act on: status and a one-line body naming the cause.</summary>
[Collection("shared harness")]
public sealed class ErrorTests(SharedHarness fixture)
{
    private TunnelHarness H => fixture.Harness;

    private async Task<HttpResponseMessage> GetWithHost(string host, string path)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, H.Url(path));
        request.Headers.Host = host;
        return await H.Client.SendAsync(request);
    }

    [Fact]
    public async Task UnknownHost_Is404_NamingTheHost()
    {
        using var response = await GetWithHost("nobody.test", "/");
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal("otun: no route for host 'nobody.test'\n", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task ServiceWithoutAgent_Is503_WithRetryAfter()
    {
        using var response = await GetWithHost("orphan.test", "/");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal("otun: no agent is connected for service 'orphan'\n", await response.Content.ReadAsStringAsync());
        Assert.NotNull(response.Headers.RetryAfter?.Delta);
    }

    [Fact]
    public async Task BackendRefusingConnections_Is502_TheBackendsAddressOnlyInTheRecord()
    {
        using var response = await GetWithHost("refused.test", "/");
        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        var body = await response.Content.ReadAsStringAsync();
        Assert.Equal("otun: the backend refused or reset the connection\n", body);
        // The detail (which names the backend's address) is for operators: the request's record has it.
        string id = response.Headers.GetValues("X-Tunnel-Request-Id").Single();
        using var admin = new HttpClient { BaseAddress = H.Admin };
        admin.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", H.AdminToken);
        string record = await admin.GetStringAsync($"api/requests/{id}");
        Assert.Contains("the backend refused or reset the connection: connection refused by 127.0.0.1:", record);
    }

    [Fact]
    public async Task BackendBreakingOffMidBody_AbortsTheVisitorsResponse()
    {
        // 10 MiB were announced, 1 MiB sent: the visitor must see an error, never a short "complete" body.
        // The reset may reach the visitor before the head was flushed (relays flush once per burst) or after.
        await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            using var response = await H.Client.GetAsync(H.Url("/break-mid-body"), HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            await Hashing.Sha256Async(await response.Content.ReadAsStreamAsync());
        });
    }
}

/// <summary>Errors that need their own harness (short timeouts, losing the agent).</summary>
public sealed class IsolatedErrorTests
{
    [Fact]
    public async Task BackendTooSlow_Is504_AfterTheResponseTimeout()
    {
        await using var h = await TunnelHarness.StartAsync(o => o.ResponseTimeout = TimeSpan.FromSeconds(1));
        string id = Guid.NewGuid().ToString("N");
        using var response = await h.Client.GetAsync(h.Url($"/hang?id={id}"));
        Assert.Equal(HttpStatusCode.GatewayTimeout, response.StatusCode);
        Assert.Equal("otun: the backend did not answer within 1 s\n", await response.Content.ReadAsStringAsync());
        // The gateway's give-up reaches the backend as a cancellation.
        await h.Backend.AbortedSignal(id).Task.Within(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task DeclaredBodyOverTheLimit_Is413_BeforeAnyByteIsSent()
    {
        await using var h = await TunnelHarness.StartAsync(o => o.Gateway["Gateway:MaxRequestBodySize"] = "100000");
        // Only the head: the gateway must refuse on the declared length without waiting for the body.
        var response = await RawHttp.SendAsync(h.Ingress.Port, "POST /upload HTTP/1.1\r\nHost: backend.test\r\nContent-Length: 150000\r\n\r\n");
        Assert.Equal(413, response.Status);
        Assert.StartsWith("otun: the request body was rejected: Request body too large.", response.Text);
        using var small = await h.Client.PostAsync(h.Url("/upload"), new ByteArrayContent(new byte[1000]));
        Assert.Equal(HttpStatusCode.OK, small.StatusCode);
    }

    [Fact]
    public async Task StreamedBodyOverTheLimit_Is413()
    {
        await using var h = await TunnelHarness.StartAsync(o => o.Gateway["Gateway:MaxRequestBodySize"] = "100000");
        using var response = await h.Client.PostAsync(h.Url("/upload"), new GeneratedContent(150_000, knownLength: false));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.StartsWith("otun: the request body was rejected: Request body too large.", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task AgentLostMidResponse_AbortsTheVisitorsResponse()
    {
        await using var h = await TunnelHarness.StartAsync();
        string id = Guid.NewGuid().ToString("N");
        // Two chunks may go (the backend sends its head with the first), the other 98 wait for the gate.
        h.Backend.Gate(id).Release(2);
        using var response = await h.Client.GetAsync(h.Url($"/slow-download?id={id}&chunks=100"), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var stream = await response.Content.ReadAsStreamAsync();
        var buffer = new byte[65536];
        int got = 0;
        while (got < 65536)
        {
            got += await stream.ReadAsync(buffer).AsTask().Within(TimeSpan.FromSeconds(10));
        }
        await h.StopAgentAsync();
        await Assert.ThrowsAnyAsync<IOException>(async () =>
        {
            while (await stream.ReadAsync(buffer).AsTask().Within(TimeSpan.FromSeconds(10)) > 0)
            {
            }
        });
    }
}
