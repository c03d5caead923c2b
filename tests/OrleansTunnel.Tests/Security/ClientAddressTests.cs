using System.Net;
using System.Text.Json;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;

namespace OrleansTunnel.Tests.Security;

/// <summary>
/// Where the visitor comes from (issue 12, section 6): behind a trusted proxy (here loopback itself is
/// the trusted load balancer) route allow-lists judge the right-most X-Forwarded-For entry that is not a
/// trusted proxy; client-address headers a backend may trust are removed unless kept by name.
/// </summary>
public sealed class ClientAddressHarness : IAsyncLifetime
{
    public TunnelHarness Harness { get; private set; } = null!;

    public async Task InitializeAsync() => Harness = await TunnelHarness.StartAsync(o =>
    {
        o.Gateway["Gateway:TrustedProxies:0"] = "127.0.0.0/8";
        o.Gateway["Gateway:KeepClientHeaders:0"] = "x-real-ip";
        o.Gateway["Gateway:Routes:30:Host"] = "office.test";
        o.Gateway["Gateway:Routes:30:Service"] = "backend";
        o.Gateway["Gateway:Routes:30:AllowedNetworks:0"] = "203.0.113.0/24";
    });

    public async Task DisposeAsync() => await Harness.DisposeAsync();
}

public sealed class ClientAddressTests(ClientAddressHarness fixture) : IClassFixture<ClientAddressHarness>
{
    private TunnelHarness H => fixture.Harness;

    private async Task<RawHttp.Response> GetAsync(string host, string path, params string[] headers) =>
        await RawHttp.SendAsync(H.Ingress.Port,
            $"GET {path} HTTP/1.1\r\nHost: {host}\r\n{string.Concat(headers.Select(h => h + "\r\n"))}Connection: close\r\n\r\n");

    [Theory]
    [InlineData(200, "X-Forwarded-For: 203.0.113.7")]
    [InlineData(200, "X-Forwarded-For: 198.51.100.1, 203.0.113.7")]
    [InlineData(200, "X-Forwarded-For: 203.0.113.7, 127.0.0.5")]
    [InlineData(200, "X-Forwarded-For: 198.51.100.1", "X-Forwarded-For: 203.0.113.7")]
    [InlineData(403, "X-Forwarded-For: 198.51.100.1")]
    // The visitor wrote the left entry; the proxy appended the address it saw.
    [InlineData(403, "X-Forwarded-For: 203.0.113.7, 198.51.100.1")]
    [InlineData(403, "X-Forwarded-For: 198.51.100.1, 127.0.0.5")]
    // An entry that is not an address fails closed.
    [InlineData(403, "X-Forwarded-For: 203.0.113.7, not-an-address")]
    // No header: the peer (the proxy itself, 127.0.0.1) is judged.
    [InlineData(403)]
    public async Task AllowList_BehindATrustedProxy_JudgesTheForwardedAddress(int status, params string[] headers)
    {
        long forwarded = H.Forwarder().Forwarded;
        var response = await GetAsync("office.test", "/echo", headers);
        Assert.Equal(status, response.Status);
        if (status == 403)
        {
            Assert.Equal("otun: your address is not allowed on this route\n", response.Text);
            Assert.Equal(forwarded, H.Forwarder().Forwarded);
        }
    }

    [Fact]
    public async Task ClientAddressHeaders_AreRemoved_UnlessKeptByName()
    {
        var response = await GetAsync("backend.test", "/echo",
            "X-Real-IP: 10.9.9.9", "True-Client-IP: 10.9.9.9", "X-Client-IP: 10.9.9.9", "CF-Connecting-IP: 10.9.9.9",
            "X-Forwarded-Port: 8443", "X-Forwarded-Prefix: /admin", "X-Original-URL: /admin/delete", "X-Rewrite-URL: /admin",
            "X-Visible: kept");
        Assert.Equal(200, response.Status);
        using var echo = JsonDocument.Parse(response.Text);
        var names = echo.RootElement.GetProperty("headers").EnumerateArray().Select(h => h[0].GetString()!).ToHashSet(StringComparer.OrdinalIgnoreCase);
        Assert.Contains("X-Visible", names);
        Assert.Contains("X-Real-IP", names); // Gateway:KeepClientHeaders names it
        foreach (var dropped in new[] { "True-Client-IP", "X-Client-IP", "CF-Connecting-IP", "X-Forwarded-Port", "X-Forwarded-Prefix", "X-Original-URL", "X-Rewrite-URL" })
        {
            Assert.DoesNotContain(dropped, names);
        }
    }
}
