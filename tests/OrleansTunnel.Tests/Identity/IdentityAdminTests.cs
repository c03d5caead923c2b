using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using Microsoft.Extensions.Options;
using OrleansTunnel.Gateway;
using OrleansTunnel.Gateway.Identity;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;

namespace OrleansTunnel.Tests.Identity;

/// <summary>oidc/jwt routes through the admin API and the configuration: validated with the key and the fix; the client secret never shown.</summary>
[Collection(IdentityCollection.Name)]
public sealed class IdentityAdminTests(IdentityFixture fixture)
{
    private TunnelHarness H => fixture.Harness;

    private HttpClient Admin()
    {
        var admin = new HttpClient { BaseAddress = H.Admin };
        admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", H.AdminToken);
        return admin;
    }

    [Fact]
    public async Task AnOidcRouteSetThroughTheAdminApi_Works_AndItsSecretIsNeverAnswered()
    {
        using var admin = Admin();
        string secret = "admin-set-secret-" + Guid.NewGuid().ToString("N");
        using var put = await admin.PutAsJsonAsync("api/routes", new
        {
            host = "admin-oidc.test",
            service = "backend",
            access = "oidc",
            identity = new { issuer = fixture.Issuer, clientId = IdentityFixture.ClientId, clientSecret = secret, requireHttpsMetadata = false, allowedEmails = new[] { "x@example.com" } },
        });
        string answer = await put.Content.ReadAsStringAsync();
        Assert.True(put.StatusCode == HttpStatusCode.OK, answer);
        Assert.DoesNotContain(secret, answer);
        Assert.Contains("(set)", answer);
        string routes = await admin.GetStringAsync("api/routes");
        Assert.Contains("admin-oidc.test", routes);
        Assert.DoesNotContain(secret, routes);

        // Pushed to the gateways: a visit starts a sign-in with these settings; the provider does not know
        // this secret, and the gateway says so (502) rather than failing with a 500.
        using var client = TunnelHarness.NewClient();
        string seen = "";
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!seen.Contains("client authentication failed"))
        {
            Assert.True(DateTime.UtcNow < deadline, $"the route set through the admin API did not start a sign-in: {seen}");
            var request = new HttpRequestMessage(HttpMethod.Get, new Uri(H.Ingress, "/"));
            request.Headers.Host = "admin-oidc.test";
            using var response = await client.SendAsync(request);
            seen = $"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}";
            if (!seen.Contains("client authentication failed"))
            {
                await Task.Delay(200);
            }
        }
        Assert.StartsWith("502 ", seen);
        Assert.DoesNotContain(secret, seen);
        using var removed = await admin.DeleteAsync("api/routes?host=admin-oidc.test");
        Assert.Equal(HttpStatusCode.NoContent, removed.StatusCode);
    }

    [Fact]
    public async Task OtunAdminRouteSet_WithAccessAndIdentity_SetsAJwtRoute_AndNeverPrintsASecret()
    {
        string url = H.Admin.ToString(), token = H.AdminToken;
        string identity = $"{{\"issuer\":\"{IdentityFixture.JwtIssuer}\",\"jwksUri\":\"{fixture.JwksUri}\",\"requireHttpsMetadata\":false,\"audiences\":[\"{IdentityFixture.Audience}\"]}}";
        var set = await OtunAsync("admin", "--url", url, "--token", token, "route", "set", "cli-jwt.test", "backend", "--access", "jwt", "--identity", identity);
        Assert.True(set.Exit == 0, set.Err);
        using var client = TunnelHarness.NewClient();
        HttpStatusCode status = 0;
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (status != HttpStatusCode.OK)
        {
            Assert.True(DateTime.UtcNow < deadline, $"the route set by otun admin did not accept a valid JWT ({status})");
            var request = new HttpRequestMessage(HttpMethod.Get, new Uri(H.Ingress, "/echo"));
            request.Headers.Host = "cli-jwt.test";
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", fixture.Mint());
            using var response = await client.SendAsync(request);
            status = response.StatusCode;
            if (status != HttpStatusCode.OK)
            {
                await Task.Delay(200);
            }
        }

        string secret = "cli-secret-" + Guid.NewGuid().ToString("N");
        var oidc = await OtunAsync("admin", "--url", url, "--token", token, "route", "set", "cli-oidc.test", "backend", "--access", "oidc", "--identity",
            $"{{\"issuer\":\"https://id.example.com\",\"clientId\":\"c\",\"clientSecret\":\"{secret}\"}}");
        Assert.True(oidc.Exit == 0, oidc.Err);
        Assert.DoesNotContain(secret, oidc.Out);
        var routes = await OtunAsync("admin", "--url", url, "--token", token, "routes");
        Assert.Contains("cli-oidc.test", routes.Out);
        Assert.DoesNotContain(secret, routes.Out);
        var bad = await OtunAsync("admin", "--url", url, "--token", token, "route", "set", "cli-bad.test", "backend", "--access", "jwt", "--identity", "{not json");
        Assert.Equal(2, bad.Exit);
        Assert.Contains("--identity is not valid JSON", bad.Err);

        using var admin = Admin();
        (await admin.DeleteAsync("api/routes?host=cli-jwt.test")).Dispose();
        (await admin.DeleteAsync("api/routes?host=cli-oidc.test")).Dispose();
    }

    [Fact]
    public async Task AClientSecretRefSetThroughTheAdminApi_KeepsTheSecretOutOfTheCluster_AndTheGatewayReadsIt()
    {
        using var admin = Admin();
        string reference = "file:" + fixture.SecretFile;
        using var put = await admin.PutAsJsonAsync("api/routes", new
        {
            host = "admin-ref.test",
            service = "backend",
            access = "oidc",
            identity = new { issuer = fixture.Issuer, clientId = IdentityFixture.ClientId, clientSecretRef = reference, requireHttpsMetadata = false },
        });
        string answer = await put.Content.ReadAsStringAsync();
        Assert.True(put.StatusCode == HttpStatusCode.OK, answer);
        string routes = await admin.GetStringAsync("api/routes");
        Assert.Contains(reference, routes);
        Assert.DoesNotContain(fixture.ClientSecret, routes);
        Assert.DoesNotContain(fixture.ClientSecret, answer);

        // Pushed to the gateways: the sign-in starts with the secret read from the file (the provider
        // authenticates the client, then refuses only the redirect URI, which it does not know for this host).
        using var client = TunnelHarness.NewClient();
        string seen = "";
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!seen.StartsWith("502 ", StringComparison.Ordinal))
        {
            Assert.True(DateTime.UtcNow < deadline, $"the route set through the admin API did not start a sign-in: {seen}");
            var request = new HttpRequestMessage(HttpMethod.Get, new Uri(H.Ingress, "/"));
            request.Headers.Host = "admin-ref.test";
            using var response = await client.SendAsync(request);
            seen = $"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}";
            if (!seen.StartsWith("502 ", StringComparison.Ordinal))
            {
                await Task.Delay(200);
            }
        }
        Assert.DoesNotContain("client authentication failed", seen);
        Assert.DoesNotContain(fixture.ClientSecret, seen);
        using var removed = await admin.DeleteAsync("api/routes?host=admin-ref.test");
        Assert.Equal(HttpStatusCode.NoContent, removed.StatusCode);
    }

    private static Task<(int Exit, string Out, string Err)> OtunAsync(params string[] args) => OtunCli.RunAsync(args);

    [Theory]
    [InlineData("oidc", null, "Access 'oidc' needs Identity")]
    [InlineData("oidc", "{\"issuer\":\"https://id.example.com\"}", "Identity:ClientId")]
    [InlineData("oidc", "{\"issuer\":\"https://id.example.com\",\"clientId\":\"c\"}", "Identity:ClientSecret")]
    [InlineData("oidc", "{\"issuer\":\"https://id.example.com\",\"clientId\":\"c\",\"clientSecret\":\"s\",\"clientSecretRef\":\"env:X\"}", "Identity:ClientSecret and Identity:ClientSecretRef are both set; keep only one")]
    [InlineData("oidc", "{\"issuer\":\"https://id.example.com\",\"clientId\":\"c\",\"clientSecretRef\":\"vault:x\"}", "Identity:ClientSecretRef 'vault:x' has an unknown scheme; use env:NAME")]
    [InlineData("oidc", "{\"issuer\":\"https://id.example.com\",\"clientId\":\"c\",\"clientSecretRef\":\"file:rel\"}", "must name an absolute path")]
    [InlineData("oidc", "{\"issuer\":\"http://id.example.com\",\"clientId\":\"c\",\"clientSecret\":\"s\"}", "set Identity:RequireHttpsMetadata false")]
    [InlineData("jwt", "{\"issuer\":\"https://id.example.com\"}", "Identity:Audiences")]
    [InlineData("jwt", "{\"issuer\":\"not a url\",\"audiences\":[\"a\"]}", "Identity:Issuer 'not a url' must be an absolute https:// URL")]
    [InlineData("jwt", "{\"issuer\":\"https://id.example.com\",\"audiences\":[\"a\"],\"userHeader\":\"X Bad\"}", "Identity:UserHeader 'X Bad' is not a valid header name")]
    [InlineData("none", "{\"issuer\":\"https://id.example.com\"}", "Identity is set but Access is 'none'")]
    public async Task ABadIdentitySetting_Gets400_NamingTheKeyAndTheFix(string access, string? identityJson, string expected)
    {
        using var admin = Admin();
        string body = $"{{\"host\":\"bad.test\",\"service\":\"backend\",\"access\":\"{access}\"" + (identityJson is null ? "" : $",\"identity\":{identityJson}") + "}";
        using var put = await admin.PutAsync("api/routes", new StringContent(body, System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, put.StatusCode);
        Assert.Contains(expected, await put.Content.ReadAsStringAsync());
    }

    [Fact]
    public void TheConfigurationValidator_NamesTheRouteAndTheIdentityKey()
    {
        var options = new GatewayOptions();
        options.Routes.Add(new RouteOptions { Host = "a.test", Service = "s", Access = "jwt", Identity = new RouteIdentityOptions { Issuer = "https://id.example.com" } });
        var result = new GatewayOptionsValidator().Validate(null, options);
        Assert.True(result.Failed);
        Assert.Contains(result.Failures!, f => f.StartsWith("Gateway:Routes:0: Access 'jwt' needs Identity:Audiences", StringComparison.Ordinal));
    }
}
