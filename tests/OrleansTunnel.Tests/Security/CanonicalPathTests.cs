using OrleansTunnel.Gateway.Ingress;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;

namespace OrleansTunnel.Tests.Security;

/// <summary>
/// One path for routing, access and the backend (issue 12, section 1). Each host has an open route and
/// a bearer-protected <c>/admin</c> prefix, in front of a Kestrel backend and of a real nginx, which
/// merges slashes, decodes escapes and resolves dot segments before it picks a location.
/// </summary>
public sealed class CanonicalPathHarness : IAsyncLifetime
{
    public const string Token = "canonical-tok-0123456789";

    public TunnelHarness Harness { get; private set; } = null!;

    public NginxBackend Nginx { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        // $uri is nginx's normalised path (what it routes on), $request_uri the raw target it received.
        Nginx = await NginxBackend.StartAsync("""
                location / { return 200 "open $uri $request_uri\n"; }
                location /admin/ { return 200 "ADMIN $uri\n"; }
                location /app/ { return 200 "APP $uri\n"; }
            """);
        Harness = await TunnelHarness.StartAsync(o =>
        {
            int i = 20;
            void Route(string host, string? prefix, string service, bool guarded = false, string? mode = null)
            {
                o.Gateway[$"Gateway:Routes:{i}:Host"] = host;
                o.Gateway[$"Gateway:Routes:{i}:PathPrefix"] = prefix;
                o.Gateway[$"Gateway:Routes:{i}:Service"] = service;
                o.Gateway[$"Gateway:Routes:{i}:PathMode"] = mode;
                if (guarded)
                {
                    o.Gateway[$"Gateway:Routes:{i}:Access"] = "bearer";
                    o.Gateway[$"Gateway:Routes:{i}:CredentialSha256"] = VisitorAccess.Hash(Token);
                }
                i++;
            }
            Route("kestrel.test", null, "backend");
            Route("kestrel.test", "/admin", "backend", guarded: true);
            Route("nginx.test", null, "nginx");
            Route("nginx.test", "/admin", "nginx", guarded: true);
            Route("raw.test", null, "nginx", mode: "Raw");
            Route("rawguarded.test", null, "nginx", mode: "Raw");
            Route("rawguarded.test", "/admin", "nginx", guarded: true);
            Route("based.test", null, "nginx-app", mode: "Raw");
            Route("basedcanon.test", null, "nginx-app");
            o.Gateway["Gateway:Agents:0:Services:6"] = "nginx";
            o.Gateway["Gateway:Agents:0:Services:7"] = "nginx-app";
            o.Agent["Agent:Services:10:Name"] = "nginx";
            o.Agent["Agent:Services:10:Url"] = Nginx.Url;
            o.Agent["Agent:Services:11:Name"] = "nginx-app";
            o.Agent["Agent:Services:11:Url"] = Nginx.Url + "/app";
        });
    }

    public async Task DisposeAsync()
    {
        await Harness.DisposeAsync();
        await Nginx.DisposeAsync();
    }
}

public sealed class CanonicalPathTests(CanonicalPathHarness fixture) : IClassFixture<CanonicalPathHarness>
{
    private TunnelHarness H => fixture.Harness;

    /// <summary>Targets that reach /admin/x on a normalising backend through the open route, and the reverse.</summary>
    public static TheoryData<string, string> Confusions => new()
    {
        { "//admin/x", "an empty segment ('//')" },
        { "/;x/admin/x", "';' (a path parameter)" },
        { "/admin;x/y", "';' (a path parameter)" },
        { "/a/..%2Fadmin/x", "an encoded slash (%2F)" },
        { "/a/..%2fadmin/x", "an encoded slash (%2F)" },
        { "/a/%2e%2e/admin/x", "a dot segment" },
        { "/a/.%2E/admin/x", "a dot segment" },
        { "/a/..%5Cadmin/x", "an encoded backslash (%5C)" },
        { "/a/..\\admin/x", "a backslash" },
        { "/a/%252e%252e/admin/x", "a double-encoded character (%25XX)" },
        { "/a/..%252Fadmin/x", "a double-encoded character (%25XX)" },
        { "/admin/%zz", "a '%' that does not start an escape" },
        // The reverse: judged as the open /public by a gateway that resolves dots, seen as /admin/.. by a backend that does not.
        { "/admin/../public", "a dot segment" },
        { "/admin/./x", "a dot segment" },
    };

    [Theory]
    [MemberData(nameof(Confusions))]
    public async Task NonCanonicalTarget_IsRefusedWith400_InFrontOfKestrelAndNginx_NothingForwarded(string target, string named)
    {
        foreach (var host in new[] { "kestrel.test", "nginx.test" })
        {
            long forwarded = H.Forwarder().Forwarded;
            var response = await RawHttp.SendAsync(H.Ingress.Port, $"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
            Assert.Equal(400, response.Status);
            Assert.StartsWith("otun: the request target is not canonical: the path holds " + named, response.Text);
            Assert.Equal(forwarded, H.Forwarder().Forwarded);
        }
    }

    [Fact]
    public async Task EncodedNul_IsRefusedByKestrelBeforeRouting_NothingForwarded()
    {
        long forwarded = H.Forwarder().Forwarded;
        var response = await RawHttp.SendAsync(H.Ingress.Port, "GET /admin%00/x HTTP/1.1\r\nHost: nginx.test\r\nConnection: close\r\n\r\n");
        Assert.Equal(400, response.Status);
        Assert.Equal(forwarded, H.Forwarder().Forwarded);
        // The gateway's own check names it too (a target Kestrel let through would get this message).
        Assert.Equal("the path holds an encoded NUL (%00)", OrleansTunnel.Mux.CanonicalPath.Problem("/admin%00/x"));
    }

    [Fact]
    public async Task WithoutTheFix_NginxWouldServeAdmin_TheCanonicalFormIsGuarded()
    {
        // The control: nginx really maps the confusing target onto /admin/ (so the 400s above matter),
        // reached here directly, without the gateway.
        var direct = await RawHttp.SendAsync(fixture.Nginx.Port, "GET //admin/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        Assert.Equal("ADMIN /admin/x\n", direct.Text);
        var encoded = await RawHttp.SendAsync(fixture.Nginx.Port, "GET /a/..%2Fadmin/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        Assert.Equal("ADMIN /admin/x\n", encoded.Text);

        // Through the gateway the canonical form meets the credential check, letters escaped or in any case.
        foreach (var target in new[] { "/admin/x", "/%61dmin/x", "/ADMIN/x", "/Admin" })
        {
            var refused = await RawHttp.SendAsync(H.Ingress.Port, $"GET {target} HTTP/1.1\r\nHost: nginx.test\r\nConnection: close\r\n\r\n");
            Assert.Equal(401, refused.Status);
        }
        var served = await RawHttp.SendAsync(H.Ingress.Port, $"GET /admin/x HTTP/1.1\r\nHost: nginx.test\r\nAuthorization: Bearer {CanonicalPathHarness.Token}\r\nConnection: close\r\n\r\n");
        Assert.Equal(200, served.Status);
        Assert.Equal("ADMIN /admin/x\n", served.Text);
        // Canonical paths with dots inside names, escapes and queries pass untouched.
        var open = await RawHttp.SendAsync(H.Ingress.Port, "GET /pub/a.b/c..d/%41?x=/../%2F HTTP/1.1\r\nHost: nginx.test\r\nConnection: close\r\n\r\n");
        Assert.Equal(200, open.Status);
        Assert.Equal("open /pub/a.b/c..d/A /pub/a.b/c..d/%41?x=/../%2F\n", open.Text);
    }

    [Fact]
    public async Task RawRoute_ForwardsTheTargetByteForByte()
    {
        const string target = "//x;v=1/%2e%2e/y%2Fz";
        var response = await RawHttp.SendAsync(H.Ingress.Port, $"GET {target} HTTP/1.1\r\nHost: raw.test\r\nConnection: close\r\n\r\n");
        Assert.Equal(200, response.Status);
        Assert.EndsWith($" {target}\n", response.Text);
    }

    [Fact]
    public async Task RawRoute_OnAHostWithGuardedRoutes_RefusesWhatItCannotDecide()
    {
        long forwarded = H.Forwarder().Forwarded;
        var response = await RawHttp.SendAsync(H.Ingress.Port, "GET //admin/x HTTP/1.1\r\nHost: rawguarded.test\r\nConnection: close\r\n\r\n");
        Assert.Equal(400, response.Status);
        Assert.Equal("otun: the request target is not canonical (the path holds an empty segment ('//')) and host 'rawguarded.test' has routes that check access, which cannot be decided on such a path\n", response.Text);
        Assert.Equal(forwarded, H.Forwarder().Forwarded);
        // Canonical targets on that host still work.
        var open = await RawHttp.SendAsync(H.Ingress.Port, "GET /pub HTTP/1.1\r\nHost: rawguarded.test\r\nConnection: close\r\n\r\n");
        Assert.Equal(200, open.Status);
    }

    [Theory]
    [InlineData("based.test", "the agent refused the request: the request target could leave the service's base path /app: the path holds a dot segment")]
    [InlineData("basedcanon.test", "the request target is not canonical: the path holds a dot segment")]
    public async Task ServiceBasePath_CannotBeEscaped(string host, string message)
    {
        var inside = await RawHttp.SendAsync(H.Ingress.Port, $"GET /x HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        Assert.Equal("APP /app/x\n", inside.Text);
        foreach (var target in new[] { "/../x", "/%2e%2e/x", "/a/../../x" })
        {
            var escape = await RawHttp.SendAsync(H.Ingress.Port, $"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
            Assert.Equal(400, escape.Status);
            Assert.StartsWith("otun: " + message, escape.Text);
        }
    }
}
