using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using OrleansTunnel.Gateway.Ingress;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;

namespace OrleansTunnel.Tests.Security;

/// <summary>Routes with visitor access settings (basic, bearer, network allow-lists).</summary>
public sealed class AccessHarness : IAsyncLifetime
{
    public const string BasicUser = "alice", BasicPassword = "s3cret:with-colon", Token = "tok-0123456789";

    public TunnelHarness Harness { get; private set; } = null!;

    public async Task InitializeAsync() => Harness = await TunnelHarness.StartAsync(o =>
    {
        o.Gateway["Gateway:Routes:10:Host"] = "basic.test";
        o.Gateway["Gateway:Routes:10:Service"] = "backend";
        o.Gateway["Gateway:Routes:10:Access"] = "basic";
        o.Gateway["Gateway:Routes:10:CredentialSha256"] = VisitorAccess.Hash($"{BasicUser}:{BasicPassword}");
        o.Gateway["Gateway:Routes:11:Host"] = "bearer.test";
        o.Gateway["Gateway:Routes:11:Service"] = "backend";
        o.Gateway["Gateway:Routes:11:Access"] = "bearer";
        o.Gateway["Gateway:Routes:11:CredentialSha256"] = VisitorAccess.Hash(Token);
        o.Gateway["Gateway:Routes:12:Host"] = "deny.test";
        o.Gateway["Gateway:Routes:12:Service"] = "backend";
        o.Gateway["Gateway:Routes:12:AllowedNetworks:0"] = "10.0.0.0/8";
        o.Gateway["Gateway:Routes:13:Host"] = "allow.test";
        o.Gateway["Gateway:Routes:13:Service"] = "backend";
        o.Gateway["Gateway:Routes:13:AllowedNetworks:0"] = "192.0.2.0/24";
        o.Gateway["Gateway:Routes:13:AllowedNetworks:1"] = "127.0.0.0/8";
        // A protected path under an open host: access follows the route routing matched.
        o.Gateway["Gateway:Routes:14:Host"] = "mixed.test";
        o.Gateway["Gateway:Routes:14:Service"] = "backend";
        o.Gateway["Gateway:Routes:15:Host"] = "mixed.test";
        o.Gateway["Gateway:Routes:15:PathPrefix"] = "/echo/admin";
        o.Gateway["Gateway:Routes:15:Service"] = "backend";
        o.Gateway["Gateway:Routes:15:Access"] = "bearer";
        o.Gateway["Gateway:Routes:15:CredentialSha256"] = VisitorAccess.Hash(Token);
    });

    public async Task DisposeAsync() => await Harness.DisposeAsync();
}

public sealed class AccessTests(AccessHarness fixture) : IClassFixture<AccessHarness>
{
    private TunnelHarness H => fixture.Harness;

    private async Task<(HttpStatusCode Status, string Body, HttpResponseMessage Response)> GetAsync(string host, string path = "/echo", AuthenticationHeaderValue? auth = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, H.Url(path));
        request.Headers.Host = host;
        request.Headers.Authorization = auth;
        var response = await H.Client.SendAsync(request);
        return (response.StatusCode, await response.Content.ReadAsStringAsync(), response);
    }

    private static AuthenticationHeaderValue Basic(string user, string password) =>
        new("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{user}:{password}")));

    [Fact]
    public async Task Basic_RightCredentials_Served_AndTheBackendNeverSeesThem()
    {
        var (status, body, _) = await GetAsync("basic.test", auth: Basic(AccessHarness.BasicUser, AccessHarness.BasicPassword));
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Empty(SecurityKit.EchoHeader(body, "Authorization"));
    }

    [Fact]
    public async Task Basic_WrongOrMissingCredentials_Are401WithChallenge_NothingForwarded()
    {
        long before = H.Forwarder().Forwarded;
        foreach (var auth in new[] { Basic(AccessHarness.BasicUser, "wrong"), Basic("bob", AccessHarness.BasicPassword), null, new AuthenticationHeaderValue("Basic", "%%%not-base64"), new AuthenticationHeaderValue("Bearer", AccessHarness.Token) })
        {
            var (status, body, response) = await GetAsync("basic.test", auth: auth);
            Assert.Equal(HttpStatusCode.Unauthorized, status);
            Assert.StartsWith("otun: ", body);
            Assert.Equal("Basic realm=\"otun\", charset=\"UTF-8\"", response.Headers.WwwAuthenticate.ToString());
        }
        Assert.Equal(before, H.Forwarder().Forwarded);
    }

    [Fact]
    public async Task Bearer_RightToken_Served_WrongOrMissing_401()
    {
        var (ok, body, _) = await GetAsync("bearer.test", auth: new AuthenticationHeaderValue("Bearer", AccessHarness.Token));
        Assert.Equal(HttpStatusCode.OK, ok);
        Assert.Empty(SecurityKit.EchoHeader(body, "Authorization"));
        long before = H.Forwarder().Forwarded;
        foreach (var auth in new[] { new AuthenticationHeaderValue("Bearer", AccessHarness.Token + "x"), null })
        {
            var (status, _, response) = await GetAsync("bearer.test", auth: auth);
            Assert.Equal(HttpStatusCode.Unauthorized, status);
            Assert.Equal("Bearer realm=\"otun\"", response.Headers.WwwAuthenticate.ToString());
        }
        Assert.Equal(before, H.Forwarder().Forwarded);
    }

    [Fact]
    public async Task Bearer_DuplicateAuthorizationHeaders_Are401()
    {
        var r = await SecurityKit.ExchangeAsync(H.Ingress.Port,
            $"GET /echo HTTP/1.1\r\nHost: bearer.test\r\nAuthorization: Bearer {AccessHarness.Token}\r\nAuthorization: Bearer other\r\nConnection: close\r\n\r\n");
        Assert.Equal([401], r.Statuses);
    }

    [Fact]
    public async Task AllowList_LoopbackOutsideTheList_Is403_InsideIsServed()
    {
        long before = H.Forwarder().Forwarded;
        var (denied, body, _) = await GetAsync("deny.test");
        Assert.Equal(HttpStatusCode.Forbidden, denied);
        Assert.Equal("otun: your address is not allowed on this route\n", body);
        Assert.Equal(before, H.Forwarder().Forwarded);
        var (allowed, _, _) = await GetAsync("allow.test");
        Assert.Equal(HttpStatusCode.OK, allowed);
    }

    [Fact]
    public async Task Access_FollowsTheMatchedRoute_HostAndPathNormalisedOnce()
    {
        // Open part of the host.
        Assert.Equal(HttpStatusCode.OK, (await GetAsync("mixed.test", "/echo/public")).Status);
        // The protected prefix, whatever the Host's case, trailing dot or port.
        foreach (var host in new[] { "mixed.test", "MIXED.test.", "mixed.test:8080" })
        {
            Assert.Equal(HttpStatusCode.Unauthorized, (await GetAsync(host, "/echo/admin")).Status);
            Assert.Equal(HttpStatusCode.Unauthorized, (await GetAsync(host, "/echo/admin/x")).Status);
        }
        Assert.Equal(HttpStatusCode.OK, (await GetAsync("mixed.test", "/echo/admin", new AuthenticationHeaderValue("Bearer", AccessHarness.Token))).Status);
    }

    [Fact]
    public async Task AdminApi_RouteWithAccess_IsEnforced_AndTheHashIsNotListed()
    {
        using var admin = new HttpClient { BaseAddress = H.Admin };
        admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", H.AdminToken);
        using (var bad = await admin.PutAsJsonAsync("/api/routes", new { host = "api-bad.test", service = "backend", access = "bearer" }))
        {
            Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        }
        using (var bad = await admin.PutAsJsonAsync("/api/routes", new { host = "api-bad.test", service = "backend", allowedNetworks = new[] { "not-a-net" } }))
        {
            Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        }
        using (var put = await admin.PutAsJsonAsync("/api/routes", new { host = "api-auth.test", service = "backend", access = "bearer", credential = "runtime-token", maxRequestBodySize = 10 }))
        {
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
            Assert.DoesNotContain(VisitorAccess.Hash("runtime-token"), await put.Content.ReadAsStringAsync());
        }
        var routing = H.Gateway.Services.GetService(typeof(OrleansTunnel.Gateway.Routing.RoutingCache)) as OrleansTunnel.Gateway.Routing.RoutingCache;
        await Eventually.TrueAsync(() => routing!.Current.Routes.Match("api-auth.test", "/") is not null, TimeSpan.FromSeconds(10), "the runtime route never reached the gateway");
        Assert.Equal(HttpStatusCode.Unauthorized, (await GetAsync("api-auth.test")).Status);
        Assert.Equal(HttpStatusCode.OK, (await GetAsync("api-auth.test", auth: new AuthenticationHeaderValue("Bearer", "runtime-token"))).Status);
        using (var big = new HttpRequestMessage(HttpMethod.Post, H.Url("/echo")) { Content = new ByteArrayContent(new byte[11]) })
        {
            big.Headers.Host = "api-auth.test";
            big.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "runtime-token");
            using var response = await H.Client.SendAsync(big);
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        }
        var listed = await admin.GetStringAsync("/api/routes");
        Assert.Contains("api-auth.test", listed);
        Assert.DoesNotContain(VisitorAccess.Hash("runtime-token"), listed);
    }

    [Fact]
    public async Task AllowList_IgnoresXForwardedFor_FromAPeerThatIsNotATrustedProxy()
    {
        // deny.test allows only 10.0.0.0/8; no Gateway:TrustedProxies here, so the header proves nothing.
        var request = new HttpRequestMessage(HttpMethod.Get, H.Url("/echo"));
        request.Headers.Host = "deny.test";
        request.Headers.TryAddWithoutValidation("X-Forwarded-For", "10.1.2.3");
        request.Headers.TryAddWithoutValidation("X-Real-IP", "10.1.2.3");
        using var response = await H.Client.SendAsync(request);
        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
    }
}
