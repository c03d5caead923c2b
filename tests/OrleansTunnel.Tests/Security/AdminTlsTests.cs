using System.Net;
using System.Net.Http.Headers;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;

namespace OrleansTunnel.Tests.Security;

/// <summary>An https:// admin URL is served over TLS (issue 12, section 7): the bearer token never crosses in clear.</summary>
public sealed class AdminTlsTests
{
    [Fact]
    public async Task AnHttpsAdminUrl_IsServedOverTls_AndNotInClear()
    {
        int port = Ports.Free();
        await using var h = await TunnelHarness.StartAsync(o => o.Gateway["Gateway:Admin"] = $"https://127.0.0.1:{port}");
        using var tls = new HttpClient(TunnelHarness.TrustingHandler()) { BaseAddress = new Uri($"https://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(30) };
        Assert.Equal("ok\n", await tls.GetStringAsync("healthz"));
        tls.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", h.AdminToken);
        using (var routes = await tls.GetAsync("api/routes"))
        {
            Assert.Equal(HttpStatusCode.OK, routes.StatusCode);
        }
        // The same port in cleartext gets no HTTP answer: the listener speaks only TLS.
        using var clear = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => clear.GetAsync($"http://127.0.0.1:{port}/healthz"));
    }
}
