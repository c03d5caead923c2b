using System.Net;
using System.Security.Claims;
using System.Text.Json;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using OrleansTunnel.Gateway.Identity;
using OrleansTunnel.Gateway.Routing;
using OrleansTunnel.Tests.Deploy;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace OrleansTunnel.Tests.Identity;

/// <summary>
/// Access "oidc" against a real OpenID Provider (npm oidc-provider), signed in by Debian's chromium
/// through the tunnel; session cookies checked on both gateways of the cluster.
/// </summary>
[Collection(IdentityCollection.Name)]
public sealed class OidcAccessTests(IdentityFixture fixture, ITestOutputHelper output)
{
    private TunnelHarness H => fixture.Harness;

    private static async Task<HttpResponseMessage> SendAsync(Uri ingress, string host, string? cookie, HttpMethod? method = null, params (string Name, string Value)[] headers)
    {
        using var client = TunnelHarness.NewClient();
        var request = new HttpRequestMessage(method ?? HttpMethod.Get, new Uri(ingress, "/echo"));
        // The port too, as a browser sends it: the redirect URI registered at the provider names it.
        request.Headers.Host = $"{host}:{ingress.Port}";
        if (cookie is not null)
        {
            request.Headers.Add("Cookie", cookie);
        }
        foreach (var (name, value) in headers)
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }
        return await client.SendAsync(request);
    }

    [Fact]
    public async Task APersonSignsInThroughTheTunnel_TheBackendSeesWho_OnBothGateways_AndARouteThatDoesNotAllowThemSays403()
    {
        var install = await ProcessRunner.RunAsync("bash", [Path.Combine(RepoRoot.Path, "scripts", "install-playwright.sh")], RepoRoot.Path, TimeSpan.FromMinutes(5));
        Assert.True(install.ExitCode == 0, "scripts/install-playwright.sh failed: " + install.Describe());
        string shots = Path.Combine(RepoRoot.Path, ".build", "test-results", "screenshots");
        Directory.CreateDirectory(shots);
        const string login = "alice@example.com";
        var run = await ProcessRunner.RunAsync("node", [Path.Combine(RepoRoot.Path, "tests", "OrleansTunnel.Tests", "Identity", "oidc-e2e.mjs")],
            RepoRoot.Path, TimeSpan.FromMinutes(3), environment: new Dictionary<string, string?>
            {
                ["GATEWAY_A"] = H.Ingress.Port.ToString(),
                ["GATEWAY_B"] = fixture.B.Ingress.Port.ToString(),
                ["HOST_OK"] = IdentityFixture.OkHost,
                ["HOST_DENIED"] = IdentityFixture.DeniedHost,
                ["HOST_FILE_REF"] = IdentityFixture.FileRefHost,
                ["HOST_ENV_REF"] = IdentityFixture.EnvRefHost,
                ["LOGIN"] = login,
                ["ISSUER"] = fixture.Issuer,
                ["SHOTS"] = shots,
                ["PLAYWRIGHT"] = install.StandardOutput.Trim().Split('\n')[^1].Trim(),
            });
        output.WriteLine(run.StandardOutput);
        Assert.True(run.ExitCode == 0, "the browser script failed: " + run.Describe() + "\nprovider: " + fixture.ProviderLog);
        var steps = run.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => l.StartsWith('{'))
            .Select(l => JsonDocument.Parse(l).RootElement).ToDictionary(e => e.GetProperty("step").GetString()!);

        Assert.StartsWith(fixture.Issuer + "/", steps["redirected-to-provider"].GetProperty("url").GetString());
        var signedIn = steps["signed-in"];
        Assert.Equal(login, signedIn.GetProperty("user").GetString());
        Assert.Equal(login, signedIn.GetProperty("email").GetString());
        Assert.Equal("staff", signedIn.GetProperty("groups").GetString());
        Assert.True(signedIn.GetProperty("httpOnly").GetBoolean());
        Assert.Equal("Lax", signedIn.GetProperty("sameSite").GetString());
        string cookie = signedIn.GetProperty("cookie").GetString()!;

        var second = steps["second-gateway"];
        Assert.Equal(login, second.GetProperty("email").GetString());
        Assert.False(second.GetProperty("visitedProvider").GetBoolean(), "gateway B sent the browser to the provider again");

        var denied = steps["denied"];
        Assert.Equal(403, denied.GetProperty("status").GetInt32());
        Assert.Contains("alice@example.com is signed in but not allowed on this route", denied.GetProperty("text").GetString());

        foreach (var step in new[] { "file-ref", "env-ref" })
        {
            Assert.Equal(login, steps[step].GetProperty("email").GetString());
            Assert.True(steps[step].GetProperty("visitedProvider").GetBoolean(), $"{step}: the route did not sign in at the provider");
        }

        // RP-initiated logout: to the provider's end_session_endpoint with the id token as hint and the
        // route's signed-out path as post_logout_redirect_uri; then the provider's session is gone too.
        var signedOut = steps["signed-out"];
        string endSession = signedOut.GetProperty("endSession").GetString()!;
        Assert.StartsWith(fixture.Issuer + "/", endSession);
        Assert.Contains("id_token_hint=", endSession);
        Assert.Contains("post_logout_redirect_uri=" + Uri.EscapeDataString($"http://{IdentityFixture.OkHost}:{H.Ingress.Port}/.otun/oidc/signed-out"), endSession);
        Assert.StartsWith($"http://{IdentityFixture.OkHost}:{H.Ingress.Port}/.otun/oidc/signed-out", signedOut.GetProperty("url").GetString());
        Assert.Contains("signed out of this site and of the issuer", signedOut.GetProperty("text").GetString());
        Assert.False(signedOut.GetProperty("cookieLeft").GetBoolean());
        var after = steps["after-sign-out"];
        Assert.StartsWith(fixture.Issuer + "/", after.GetProperty("url").GetString());
        Assert.True(after.GetProperty("visitedProvider").GetBoolean());

        // The browser's cookie, sent by another client to either gateway: the identity, never a forged one.
        foreach (var ingress in new[] { H.Ingress, fixture.B.Ingress })
        {
            using var response = await SendAsync(ingress, IdentityFixture.OkHost, cookie + "; theme=dark", null, ("X-Otun-Email", "boss@example.com"), ("X-Otun-User", "boss"));
            string body = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.OK, body);
            Assert.Equal([login], JwtAccessTests.Seen(body, "X-Otun-Email"));
            Assert.Equal([login], JwtAccessTests.Seen(body, "X-Otun-User"));
            // The backend never sees the session cookie, only the visitor's other cookies.
            Assert.Equal(["theme=dark"], JwtAccessTests.Seen(body, "Cookie"));
        }
    }

    [Fact]
    public async Task WithoutASession_AGetIsSentToTheProvider_AndAPostGets401()
    {
        using var get = await SendAsync(H.Ingress, IdentityFixture.OkHost, null);
        Assert.Equal(HttpStatusCode.Found, get.StatusCode);
        var location = get.Headers.Location!;
        Assert.StartsWith(fixture.Issuer + "/", location.ToString());
        // The provider advertises pushed authorization requests, so the handler pushed the request (with
        // its PKCE challenge: the provider demands PKCE) and the browser carries only its reference.
        Assert.Contains("client_id=" + IdentityFixture.ClientId, location.Query);
        Assert.DoesNotContain(fixture.ClientSecret, location.ToString());

        // A host whose redirect URI the provider does not know (denied.test on gateway B): a 502 naming the fix, not a 500.
        using var unregistered = await SendAsync(fixture.B.Ingress, IdentityFixture.DeniedHost, null);
        Assert.Equal(HttpStatusCode.BadGateway, unregistered.StatusCode);
        Assert.Contains("redirect URI registered at the issuer", await unregistered.Content.ReadAsStringAsync());

        // A callback that this browser did not start (no correlation cookie): 401 with the reason, not a 500.
        using var client = TunnelHarness.NewClient();
        var callback = new HttpRequestMessage(HttpMethod.Get, new Uri(H.Ingress, "/.otun/oidc/callback?code=made-up&state=made-up"));
        callback.Headers.Host = $"{IdentityFixture.OkHost}:{H.Ingress.Port}";
        using var refusedCallback = await client.SendAsync(callback);
        Assert.Equal(HttpStatusCode.Unauthorized, refusedCallback.StatusCode);
        Assert.Contains("sign-in failed", await refusedCallback.Content.ReadAsStringAsync());

        // Only the ingress's gate runs the handlers: the same callback on the admin listener is not an OIDC callback
        // (WebApplication's automatic authentication middleware, which would run it on every listener, is off).
        using var onAdmin = await client.GetAsync(new Uri(H.Admin, "/.otun/oidc/callback?code=made-up&state=made-up"));
        Assert.Equal(HttpStatusCode.NotFound, onAdmin.StatusCode);
        Assert.Contains("unknown path", await onAdmin.Content.ReadAsStringAsync());

        using var post = await SendAsync(H.Ingress, IdentityFixture.OkHost, null, HttpMethod.Post);
        Assert.Equal(HttpStatusCode.Unauthorized, post.StatusCode);
        Assert.Contains("needs a signed-in session", await post.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task TheLogoutPath_WithoutASession_OrWithoutAnEndSessionEndpoint_SaysSo_AndAClientSecretRefThatCannotBeRead_Answers503NamingIt()
    {
        using var client = TunnelHarness.NewClient();
        var logout = new HttpRequestMessage(HttpMethod.Get, new Uri(H.Ingress, "/.otun/oidc/logout"));
        logout.Headers.Host = $"{IdentityFixture.OkHost}:{H.Ingress.Port}";
        using var noSession = await client.SendAsync(logout);
        Assert.Equal(HttpStatusCode.OK, noSession.StatusCode);
        Assert.Contains("not signed in on this site", await noSession.Content.ReadAsStringAsync());

        // An issuer without end_session_endpoint: a session's logout clears the cookie only, and says so.
        var (name, format) = CookieFormat(H.Gateway.Services, IdentityFixture.NoLogoutHost);
        string ticket = format.Protect(new AuthenticationTicket(new ClaimsPrincipal(new ClaimsIdentity([new Claim("sub", "dave")], "test")),
            new AuthenticationProperties { IssuedUtc = DateTimeOffset.UtcNow, ExpiresUtc = DateTimeOffset.UtcNow.AddHours(1) }, "cookie"));
        var local = new HttpRequestMessage(HttpMethod.Get, new Uri(H.Ingress, "/.otun/oidc/logout"));
        local.Headers.Host = $"{IdentityFixture.NoLogoutHost}:{H.Ingress.Port}";
        local.Headers.Add("Cookie", $"{name}={ticket}");
        using var localOnly = await client.SendAsync(local);
        string localText = await localOnly.Content.ReadAsStringAsync();
        Assert.True(localOnly.StatusCode == HttpStatusCode.OK, localText);
        Assert.Contains("signed out of this site (the issuer offers no end_session_endpoint", localText);
        Assert.Contains(localOnly.Headers.GetValues("Set-Cookie"), c => c.StartsWith(name + "=;", StringComparison.Ordinal) && c.Contains("expires=Thu, 01 Jan 1970", StringComparison.OrdinalIgnoreCase));

        var secrets = H.Gateway.Services.GetRequiredService<ClientSecrets>();
        long before = secrets.Unresolved;
        foreach (var ingress in new[] { H.Ingress, fixture.B.Ingress })
        {
            using var get = await SendAsync(ingress, IdentityFixture.BadRefHost, null);
            string body = await get.Content.ReadAsStringAsync();
            Assert.True(get.StatusCode == HttpStatusCode.ServiceUnavailable, body);
            Assert.Contains($"Identity:ClientSecretRef file:{fixture.MissingSecretFile} cannot be resolved", body);
            Assert.Contains("cannot be read on this gateway", body);
        }
        Assert.True(secrets.Unresolved > before);
    }

    [Fact]
    public void ASecretReference_IsReadFromTheEnvironmentOrAFile_WithTheProblemNamed()
    {
        var environment = new Dictionary<string, string?> { ["SET"] = "s3cret" };
        Assert.Equal("s3cret", ClientSecrets.Read("env:SET", n => environment.GetValueOrDefault(n), out var none));
        Assert.Null(none);
        Assert.Null(ClientSecrets.Read("env:UNSET", n => environment.GetValueOrDefault(n), out var unset));
        Assert.Contains("environment variable UNSET is not set", unset);
        Assert.Equal(fixture.ClientSecret, ClientSecrets.Read("file:" + fixture.SecretFile, _ => null, out _));
        Assert.Null(ClientSecrets.Read("file:" + fixture.MissingSecretFile, _ => null, out var missing));
        Assert.Contains($"the file {fixture.MissingSecretFile} cannot be read", missing);
        Assert.Contains("unknown scheme", ClientSecrets.FormProblem("vault:x"));
        Assert.Contains("absolute path", ClientSecrets.FormProblem("file:relative/secret"));
        Assert.Null(ClientSecrets.FormProblem("env:OTUN_OIDC_SECRET"));
    }

    [Fact]
    public async Task ACookieOfTheCluster_IsAcceptedByBothGateways_ButNotOnceExpiredOrTampered()
    {
        var (name, format) = CookieFormat(H.Gateway.Services);
        string Protect(DateTimeOffset expires) => format.Protect(new AuthenticationTicket(
            new ClaimsPrincipal(new ClaimsIdentity([new Claim("sub", "carol"), new Claim("email", "carol@example.com"), new Claim("groups", "staff")], "test")),
            new AuthenticationProperties { IssuedUtc = expires.AddHours(-8), ExpiresUtc = expires }, "cookie"));

        string valid = Protect(DateTimeOffset.UtcNow.AddHours(1));
        foreach (var ingress in new[] { H.Ingress, fixture.B.Ingress })
        {
            using var ok = await SendAsync(ingress, IdentityFixture.OkHost, $"{name}={valid}");
            string body = await ok.Content.ReadAsStringAsync();
            Assert.True(ok.StatusCode == HttpStatusCode.OK, body);
            Assert.Equal(["carol"], JwtAccessTests.Seen(body, "X-Otun-User"));
        }

        string expired = Protect(DateTimeOffset.UtcNow.AddMinutes(-1));
        char[] chars = valid.ToCharArray();
        chars[chars.Length / 2] = chars[chars.Length / 2] == 'A' ? 'B' : 'A';
        string tampered = new(chars);
        foreach (var (what, value) in new[] { ("expired", expired), ("tampered", tampered) })
        {
            foreach (var ingress in new[] { H.Ingress, fixture.B.Ingress })
            {
                using var get = await SendAsync(ingress, IdentityFixture.OkHost, $"{name}={value}");
                Assert.True(get.StatusCode == HttpStatusCode.Found, $"{what} cookie: {get.StatusCode}");
                Assert.StartsWith(fixture.Issuer + "/", get.Headers.Location!.ToString());
                using var post = await SendAsync(ingress, IdentityFixture.OkHost, $"{name}={value}", HttpMethod.Post);
                Assert.Equal(HttpStatusCode.Unauthorized, post.StatusCode);
            }
        }
    }

    [Fact]
    public async Task IdentityHeadersAVisitorSends_AreRemovedOnRoutesWithoutAccessToo()
    {
        using var response = await SendAsync(H.Ingress, "backend.test", null, null, ("X-Otun-User", "admin"), ("X-Otun-Email", "boss@example.com"), ("X-Otun-Groups", "admins"));
        string body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        Assert.Empty(JwtAccessTests.Seen(body, "X-Otun-User"));
        Assert.Empty(JwtAccessTests.Seen(body, "X-Otun-Email"));
        Assert.Empty(JwtAccessTests.Seen(body, "X-Otun-Groups"));
    }

    /// <summary>The cookie name and ticket format of the oidc.test route, as the gateway made them.</summary>
    private static (string Name, ISecureDataFormat<AuthenticationTicket> Format) CookieFormat(IServiceProvider services, string host = IdentityFixture.OkHost)
    {
        var route = services.GetRequiredService<RoutingCache>().Current.Snapshot.Routes.Single(r => r.Host == host);
        var schemes = services.GetRequiredService<IdentitySchemes>().For(route)!;
        var options = services.GetRequiredService<IOptionsMonitor<CookieAuthenticationOptions>>().Get(schemes.Cookie);
        return (options.Cookie.Name!, options.TicketDataFormat);
    }
}
