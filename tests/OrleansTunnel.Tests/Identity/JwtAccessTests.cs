using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;

namespace OrleansTunnel.Tests.Identity;

/// <summary>
/// Access "jwt": bearer JWTs checked against the issuer's JWKS (served by a Kestrel endpoint of the
/// test), visitor -> gateway -> agent -> echo backend over real sockets.
/// </summary>
[Collection(IdentityCollection.Name)]
public sealed class JwtAccessTests(IdentityFixture fixture)
{
    private TunnelHarness H => fixture.Harness;

    private async Task<(HttpStatusCode Status, string Body, HttpResponseMessage Response)> SendAsync(string? token, Uri? ingress = null, params (string Name, string Value)[] headers)
    {
        using var client = TunnelHarness.NewClient();
        var request = new HttpRequestMessage(HttpMethod.Get, new Uri(ingress ?? H.Ingress, "/echo"));
        request.Headers.Host = IdentityFixture.JwtHost;
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }
        foreach (var (name, value) in headers)
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }
        var response = await client.SendAsync(request);
        return (response.StatusCode, await response.Content.ReadAsStringAsync(), response);
    }

    /// <summary>The values the backend saw for a header (from the echo's JSON).</summary>
    public static string[] Seen(string echo, string name) =>
        [.. JsonDocument.Parse(echo).RootElement.GetProperty("headers").EnumerateArray()
            .Where(h => h[0].GetString()!.Equals(name, StringComparison.OrdinalIgnoreCase)).Select(h => h[1].GetString()!)];

    [Fact]
    public async Task AValidToken_ReachesTheBackend_AsIdentityHeaders_NeverAsTheTokenNorAsWhatTheVisitorForged()
    {
        // The JWKS is cached: valid tokens with a known key id do not read it again.
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(fixture.Mint())).Status);
        int reads = fixture.JwksReads;
        var (status, body, _) = await SendAsync(fixture.Mint(), null, ("X-Otun-User", "admin"), ("X-Otun-Email", "boss@example.com"));
        Assert.True(status == HttpStatusCode.OK, body);
        Assert.Equal(["svc-42"], Seen(body, "X-Otun-User"));
        Assert.Equal(["svc@example.com"], Seen(body, "X-Otun-Email"));
        Assert.Equal(["robots"], Seen(body, "X-Otun-Groups"));
        Assert.Empty(Seen(body, "Authorization"));
        for (int i = 0; i < 5; i++)
        {
            Assert.Equal(HttpStatusCode.OK, (await SendAsync(fixture.Mint())).Status);
        }
        Assert.Equal(reads, fixture.JwksReads);

        // Through the second gateway of the cluster too (it reads the same route and JWKS).
        var (statusB, bodyB, _) = await SendAsync(fixture.Mint(), fixture.B.Ingress);
        Assert.True(statusB == HttpStatusCode.OK, bodyB);
        Assert.Equal(["svc-42"], Seen(bodyB, "X-Otun-User"));
    }

    [Theory]
    [InlineData("none", "this route needs a bearer JWT")]
    [InlineData("expired", "expired at")]
    [InlineData("tampered", "bad signature")]
    [InlineData("other-key-same-kid", "bad signature")]
    [InlineData("unknown-kid", "signed by a key the issuer's JWKS does not have")]
    [InlineData("wrong-audience", "wrong audience")]
    [InlineData("wrong-issuer", "wrong issuer")]
    [InlineData("missing-claim", "missing claim 'tenant'")]
    [InlineData("garbage", "not a well-formed JWT")]
    public async Task ABadToken_Gets401_WithWwwAuthenticate_AndAMessageNamingWhatWasWrong(string kind, string expected)
    {
        string? token = kind switch
        {
            "none" => null,
            "expired" => fixture.Mint(expires: DateTime.UtcNow.AddMinutes(-5)),
            "tampered" => Tamper(fixture.Mint()),
            "other-key-same-kid" => fixture.Mint(key: IdentityFixture.NewKey("k1")),
            "unknown-kid" => fixture.Mint(key: IdentityFixture.NewKey("never-published")),
            "wrong-audience" => fixture.Mint(audience: "someone-else"),
            "wrong-issuer" => fixture.Mint(issuer: "https://evil.test"),
            "missing-claim" => fixture.Mint(claims: new Dictionary<string, object> { ["sub"] = "svc-42" }),
            _ => "not.a.jwt",
        };
        var (status, body, response) = await SendAsync(token, null, ("X-Otun-User", "admin"));
        Assert.Equal(HttpStatusCode.Unauthorized, status);
        Assert.Contains(expected, body);
        Assert.StartsWith("Bearer realm=\"otun\"", response.Headers.WwwAuthenticate.ToString());
        if (kind != "none")
        {
            Assert.Contains("error=\"invalid_token\"", response.Headers.WwwAuthenticate.ToString());
        }
        // The backend saw nothing: the echo's JSON is not in the answer.
        Assert.DoesNotContain("\"headers\"", body);
    }

    [Fact]
    public async Task AKeyTheIssuerStartsUsing_IsFetchedWhenATokenNamesIt()
    {
        var rotated = IdentityFixture.NewKey("k-rotated-" + Guid.NewGuid().ToString("N")[..6]);
        string token = fixture.Mint(key: rotated);
        Assert.Equal(HttpStatusCode.Unauthorized, (await SendAsync(token)).Status);
        fixture.Publish(rotated);
        // The JWKS is re-read on an unknown kid, at most once per Gateway:Identity:JwksRefreshInterval (1 s here).
        var deadline = DateTime.UtcNow.AddSeconds(30);
        HttpStatusCode last;
        while ((last = (await SendAsync(token)).Status) != HttpStatusCode.OK)
        {
            Assert.True(DateTime.UtcNow < deadline, $"a token signed with a newly published key was still refused ({last}) after 30 s");
            await Task.Delay(250);
        }
    }

    private static string Tamper(string jwt)
    {
        var parts = jwt.Split('.');
        var payload = System.Text.Encoding.UTF8.GetString(Microsoft.IdentityModel.Tokens.Base64UrlEncoder.DecodeBytes(parts[1]));
        payload = payload.Replace("svc-42", "svc-99");
        parts[1] = Microsoft.IdentityModel.Tokens.Base64UrlEncoder.Encode(payload);
        return string.Join('.', parts);
    }
}
