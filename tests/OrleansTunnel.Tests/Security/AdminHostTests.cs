using System.Net;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;

namespace OrleansTunnel.Tests.Security;

/// <summary>DNS rebinding: the admin listener answers only to IP literals, localhost and Gateway:AdminHosts.</summary>
public sealed class AdminHostTests
{
    [Fact]
    public async Task AdminListener_RefusesForeignHost_With421()
    {
        await using var h = await TunnelHarness.StartAsync();

        foreach (var path in new[] { "/tunnels", "/metrics", "/healthz" })
        {
            using var rebound = new HttpRequestMessage(HttpMethod.Get, new Uri(h.Admin, path));
            rebound.Headers.Host = "attacker.example";
            using var refused = await h.Client.SendAsync(rebound);
            Assert.Equal(HttpStatusCode.MisdirectedRequest, refused.StatusCode);
            Assert.Contains("Gateway:AdminHosts", await refused.Content.ReadAsStringAsync());
        }

        using var byIp = await h.Client.GetAsync(new Uri(h.Admin, "/tunnels"));
        Assert.Equal(HttpStatusCode.OK, byIp.StatusCode);
        using var byName = new HttpRequestMessage(HttpMethod.Get, new Uri(h.Admin, "/healthz"));
        byName.Headers.Host = "localhost";
        using var ok = await h.Client.SendAsync(byName);
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
    }
}
