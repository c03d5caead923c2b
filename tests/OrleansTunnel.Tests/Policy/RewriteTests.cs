using System.Net;
using System.Text.Json;
using OrleansTunnel.Gateway.Ingress;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;

namespace OrleansTunnel.Tests.Policy;

/// <summary>Route rewrites, seen from both ends: the backend echoes what it got, the visitor reads the response headers.</summary>
[Collection("policy")]
public sealed class RewriteTests(PolicyFixture fixture)
{
    private TunnelHarness H => fixture.Harness;

    private sealed record Echo(string Method, string Target, string Host, string[][] Headers)
    {
        public string[] Values(string name) => [.. Headers.Where(h => h[0].Equals(name, StringComparison.OrdinalIgnoreCase)).Select(h => h[1])];
    }

    private static object RewriteRoute(string host) => new
    {
        host,
        pathPrefix = "/api",
        service = "backend",
        rewrite = new
        {
            stripPrefix = true,
            addPrefix = "/echo",
            hostRewrite = "internal.example:8081",
            requestHeaders = new
            {
                set = new Dictionary<string, string> { ["X-Visitor"] = "ip={client_ip} host={host} id={request_id} who=[{identity}]" },
                append = new Dictionary<string, string> { ["X-Tag"] = "added" },
                remove = new[] { "X-Secret" },
            },
            responseHeaders = new
            {
                set = new Dictionary<string, string> { ["X-Frame-Options"] = "DENY", ["X-Seen-Id"] = "{request_id}" },
                append = new Dictionary<string, string> { ["Cache-Control"] = "private" },
                remove = new[] { "Content-Type" },
            },
        },
    };

    [Fact]
    public async Task TheBackendSeesTheRewrittenTargetHostAndHeaders_AndTheVisitorTheRewrittenResponseHeaders()
    {
        await fixture.SetRouteAsync(RewriteRoute("rw.test"), "rw.test", r => r.Rewrite is { StripPrefix: true });
        foreach (var (gateway, target, expected) in new[]
        {
            (H.Ingress, "/api/items/7?q=1&r=%20x", "/echo/items/7?q=1&r=%20x"),
            (fixture.B.Ingress, "/API/items", "/echo/items"),
            (H.Ingress, "/api", "/echo/"),
            (fixture.B.Ingress, "/api/", "/echo/"),
        })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(gateway, target));
            request.Headers.Host = "rw.test";
            request.Headers.Add("X-Secret", "must-not-reach");
            request.Headers.Add("X-Visitor", "forged");
            request.Headers.Add("X-Tag", "visitor");
            using var response = await H.Client.SendAsync(request);
            string text = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"{target}: status {(int)response.StatusCode}: {text}");
            var echo = JsonSerializer.Deserialize<Echo>(text, new JsonSerializerOptions(JsonSerializerDefaults.Web))!;
            string id = response.Headers.GetValues(IngressForwarder.RequestIdHeader).Single();

            Assert.Equal("GET", echo.Method);
            Assert.Equal(expected, echo.Target);
            Assert.Equal("internal.example:8081", echo.Host);
            Assert.Equal(["rw.test"], echo.Values("X-Forwarded-Host"));
            Assert.Equal([$"ip=127.0.0.1 host=rw.test id={id} who=[]"], echo.Values("X-Visitor"));
            // The backend's client may fold the two values into one line.
            Assert.Equal("visitor, added", string.Join(", ", echo.Values("X-Tag")));
            Assert.Empty(echo.Values("X-Secret"));

            Assert.Equal(["DENY"], response.Headers.GetValues("X-Frame-Options"));
            Assert.Equal([id], response.Headers.GetValues("X-Seen-Id"));
            Assert.Contains("private", response.Headers.CacheControl?.ToString() ?? "");
            Assert.Null(response.Content.Headers.ContentType);
        }
    }

    [Fact]
    public async Task ARewriteNeverForwardsANonCanonicalTarget()
    {
        // A Raw route forwards odd targets as sent, but not through a path rewrite: segments could not be counted.
        await fixture.SetRouteAsync(new { host = "rw-raw.test", pathPrefix = "/api", service = "backend", pathMode = "Raw", rewrite = new { stripPrefix = true } },
            "rw-raw.test", r => r.Rewrite is { StripPrefix: true });
        var raw = await RawHttp.SendAsync(H.Ingress.Port, "GET /api/a//b HTTP/1.1\r\nHost: rw-raw.test\r\nConnection: close\r\n\r\n");
        Assert.True(raw.Status == 400, $"status {raw.Status}: {raw.Text}");
        Assert.Contains("this route rewrites the path, which needs a canonical request target", raw.Text);
        // A canonical route already refuses encoded dot segments before any rewrite: nothing can climb out of AddPrefix.
        await fixture.SetRouteAsync(RewriteRoute("rw.test"), "rw.test", r => r.Rewrite is { StripPrefix: true });
        var escape = await RawHttp.SendAsync(H.Ingress.Port, "GET /api/%2e%2e/%2e%2e/secret HTTP/1.1\r\nHost: rw.test\r\nConnection: close\r\n\r\n");
        // Kestrel resolves the encoded dot segments ("/secret"): outside the route's prefix, so the gateway answers itself.
        Assert.True(escape.Status is 400 or 404, $"status {escape.Status}: {escape.Text}");
        Assert.StartsWith("otun: ", escape.Text);
    }

    public static TheoryData<string, string> BadRewrites => new()
    {
        { """{"host":"v.test","service":"backend","rewrite":{"stripPrefix":true}}""", "Rewrite:StripPrefix is true but the route has no PathPrefix" },
        { """{"host":"v.test","service":"backend","rewrite":{"addPrefix":"v1/"}}""", "Rewrite:AddPrefix 'v1/' must be a canonical path like /v1" },
        { """{"host":"v.test","service":"backend","rewrite":{"addPrefix":"/a/../b"}}""", "Rewrite:AddPrefix '/a/../b' must be a canonical path" },
        { """{"host":"v.test","service":"backend","rewrite":{"hostRewrite":"bad host!"}}""", "Rewrite:HostRewrite 'bad host!' is not a host name" },
        { """{"host":"v.test","service":"backend","rewrite":{"requestHeaders":{"set":{"Content-Length":"1"}}}}""", "Rewrite:RequestHeaders:Set header 'Content-Length' frames the message" },
        { """{"host":"v.test","service":"backend","rewrite":{"requestHeaders":{"remove":["Host"]}}}""", "use Rewrite:HostRewrite" },
        { """{"host":"v.test","service":"backend","rewrite":{"responseHeaders":{"set":{"X-A":"{nope}"}}}}""", "unknown placeholder '{nope}'" },
        { """{"host":"v.test","service":"backend","rewrite":{"responseHeaders":{"append":{"X-A":"a\r\nb"}}}}""", "without control characters" },
    };

    [Theory]
    [MemberData(nameof(BadRewrites))]
    public async Task TheAdminApiRefusesABadRewrite_NamingTheKeyAndTheFix(string json, string expected)
    {
        using var content = new StringContent(json, System.Text.Encoding.UTF8, "application/json");
        using var response = await fixture.Admin.PutAsync("api/routes", content);
        string body = await response.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains(expected, body);
    }
}
