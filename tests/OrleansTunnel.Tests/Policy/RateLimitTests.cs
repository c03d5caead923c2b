using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using OrleansTunnel.Gateway.Policy;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace OrleansTunnel.Tests.Policy;

/// <summary>Cluster-wide rate limits: two gateways lease from one limiter; the budget holds across both.</summary>
[Collection("policy")]
public sealed class RateLimitTests(PolicyFixture fixture, ITestOutputHelper output)
{
    /// <summary>
    /// The documented worst case over the limit while the limiter grain lives (README "Rate limits"): 0.
    /// A grant counts for per + ttl and tokens are spent within ttl of the lease request.
    /// </summary>
    private const int DocumentedBound = 0;

    private TunnelHarness H => fixture.Harness;

    private static HttpRequestMessage Get(Uri gateway, string host, string path = "/hello", string? apiKey = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, new Uri(gateway, path));
        request.Headers.Host = host;
        if (apiKey is not null)
        {
            request.Headers.Add("X-Api-Key", apiKey);
        }
        return request;
    }

    [Fact]
    public async Task AThousandRequestsInTenSecondsAcrossTwoGateways_AdmitTheLimit_AndPassAgainAfterTheWindow()
    {
        await fixture.SetRouteAsync(new { host = "rl.test", service = "backend", rateLimit = new { requests = 100, per = "10s", key = "ip" } },
            "rl.test", r => r.RateLimit is { Requests: 100 });
        var gateways = new[] { H.Ingress, fixture.B.Ingress };
        var limiters = new[] { (RateLimiter)H.Gateway.Services.GetService(typeof(RateLimiter))!, fixture.B.Service<RateLimiter>() };
        long leasesBefore = limiters.Sum(l => l.Leases);
        var results = new ConcurrentBag<(int Status, long DoneMs, int Gateway)>();
        var clock = Stopwatch.StartNew();
        using var gate = new SemaphoreSlim(64);
        var tasks = new List<Task>();
        for (int i = 0; i < 1000; i++)
        {
            // Paced: request i leaves at i * 9 ms (the thousand within 9 s), alternating gateways.
            long due = i * 9L;
            if (due > clock.ElapsedMilliseconds)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(due - clock.ElapsedMilliseconds));
            }
            await gate.WaitAsync();
            int g = i % 2;
            tasks.Add(Task.Run(async () =>
            {
                try
                {
                    using var request = Get(gateways[g], "rl.test");
                    using var response = await H.Client.SendAsync(request);
                    await response.Content.ReadAsByteArrayAsync();
                    results.Add(((int)response.StatusCode, clock.ElapsedMilliseconds, g));
                }
                finally
                {
                    gate.Release();
                }
            }));
        }
        await Task.WhenAll(tasks).Within(TimeSpan.FromMinutes(2));
        long lastDone = results.Max(r => r.DoneMs);
        int ok = results.Count(r => r.Status == 200);
        int limited = results.Count(r => r.Status == 429);
        int okInWindow = results.Count(r => r.Status == 200 && r.DoneMs < 10_000);
        long leases = limiters.Sum(l => l.Leases) - leasesBefore;
        output.WriteLine($"1000 requests in {lastDone} ms: {ok} admitted ({okInWindow} completed within 10 s of the first; "
            + $"gw-test {results.Count(r => r.Status == 200 && r.Gateway == 0)}, gw-b {results.Count(r => r.Status == 200 && r.Gateway == 1)}), "
            + $"{limited} answered 429, {leases} lease calls, {limiters.Sum(l => l.Wasted)} leased tokens expired unspent");

        Assert.Equal(1000, results.Count);
        Assert.Equal(1000, ok + limited);
        // Nothing completed within 10 s of the first request can have used a second window's tokens.
        Assert.InRange(okInWindow, 0, 100 + DocumentedBound);
        Assert.True(ok >= 100, $"only {ok} requests were admitted under a limit of 100");
        if (lastDone < 10_000)
        {
            Assert.InRange(ok, 100, 100 + DocumentedBound);
        }
        Assert.True(leases < ok, $"{leases} lease calls for {ok} admitted requests: tokens were not leased in batches");

        // After the window the budget is back, on both gateways.
        foreach (var gateway in gateways)
        {
            await Eventually.TrueAsync(() =>
            {
                using var request = Get(gateway, "rl.test");
                using var response = H.Client.Send(request);
                return response.StatusCode == HttpStatusCode.OK;
            }, TimeSpan.FromSeconds(60), "requests were still refused long after the window");
        }
    }

    [Fact]
    public async Task TheRefusalCarriesRetryAfterAndRateLimitHeaders_AndAHeaderKeySeparatesCallers()
    {
        await fixture.SetRouteAsync(new { host = "rlh.test", service = "backend", rateLimit = new { requests = 3, per = "1m", key = "header:X-Api-Key" } },
            "rlh.test", r => r.RateLimit is { Requests: 3 });
        for (int i = 0; i < 3; i++)
        {
            using var request = Get(i % 2 == 0 ? H.Ingress : fixture.B.Ingress, "rlh.test", apiKey: "alice");
            using var admitted = await H.Client.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, admitted.StatusCode);
        }
        using var over = Get(fixture.B.Ingress, "rlh.test", apiKey: "alice");
        using var refused = await H.Client.SendAsync(over);
        string text = await refused.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        Assert.Contains("rate limit of 3 requests per 1m reached for this X-Api-Key value on this route; retry in", text);
        long retryAfter = (long)refused.Headers.RetryAfter!.Delta!.Value.TotalSeconds;
        Assert.InRange(retryAfter, 1, 61);
        Assert.Equal(["3"], refused.Headers.GetValues("RateLimit-Limit"));
        Assert.Equal(["0"], refused.Headers.GetValues("RateLimit-Remaining"));
        Assert.Equal([retryAfter.ToString()], refused.Headers.GetValues("RateLimit-Reset"));
        Assert.Equal(["3;w=60"], refused.Headers.GetValues("RateLimit-Policy"));

        // Another key has its own budget, on either gateway; requests without the header share one.
        for (int i = 0; i < 3; i++)
        {
            using var request = Get(i % 2 == 0 ? fixture.B.Ingress : H.Ingress, "rlh.test", apiKey: "bob");
            using var bob = await H.Client.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, bob.StatusCode);
        }
        var anonymous = new List<HttpStatusCode>();
        for (int i = 0; i < 4; i++)
        {
            using var request = Get(H.Ingress, "rlh.test");
            using var response = await H.Client.SendAsync(request);
            anonymous.Add(response.StatusCode);
        }
        Assert.Equal([HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.TooManyRequests], anonymous);
        using var stillOver = Get(H.Ingress, "rlh.test", apiKey: "alice");
        using var stillRefused = await H.Client.SendAsync(stillOver);
        Assert.Equal(HttpStatusCode.TooManyRequests, stillRefused.StatusCode);
    }

    [Fact]
    public async Task AGrpcCallerOverTheLimit_GetsResourceExhaustedWithAMessage()
    {
        await fixture.SetRouteAsync(new { host = "grpc-rl.test", service = "grpc", rateLimit = new { requests = 1, per = "1m", key = "route" } },
            "grpc-rl.test", r => r.RateLimit is { Requests: 1 });
        using var client = new HttpClient(new SocketsHttpHandler());
        var statuses = new List<string>();
        string? message = null;
        for (int i = 0; i < 2; i++)
        {
            // An empty EchoRequest, framed: compressed flag 0, length 0.
            using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(H.H2cIngress, "/orleanstunnel.tests.Echo/Unary"))
            {
                Version = HttpVersion.Version20,
                VersionPolicy = HttpVersionPolicy.RequestVersionExact,
                Content = new ByteArrayContent(new byte[5]),
            };
            request.Headers.Host = "grpc-rl.test";
            request.Headers.TryAddWithoutValidation("te", "trailers");
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/grpc");
            using var response = await client.SendAsync(request);
            await response.Content.ReadAsByteArrayAsync();
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            string status = response.Headers.TryGetValues("grpc-status", out var s) ? s.Single()
                : response.TrailingHeaders.TryGetValues("grpc-status", out var t) ? t.Single() : "(none)";
            statuses.Add(status);
            if (response.Headers.TryGetValues("grpc-message", out var m))
            {
                message = Uri.UnescapeDataString(m.Single());
            }
        }
        Assert.Equal(["0", "8"], statuses);
        Assert.Contains("rate limit of 1 requests per 1m reached for this route", message);
    }

    public static TheoryData<string, string> BadLimits => new()
    {
        { """{"host":"v.test","service":"backend","rateLimit":{"requests":0,"per":"1m"}}""", "RateLimit:Requests 0 must be between 1 and 1000000" },
        { """{"host":"v.test","service":"backend","rateLimit":{"requests":10,"per":"ten"}}""", "RateLimit:Per 'ten' must be a duration like 10s, 1m, 1h or 00:01:00" },
        { """{"host":"v.test","service":"backend","rateLimit":{"requests":10,"per":"100ms"}}""", "RateLimit:Per '100ms' must be between 1s and 1d" },
        { """{"host":"v.test","service":"backend","rateLimit":{"requests":10,"per":"1m","key":"cookie:sid"}}""", "RateLimit:Key 'cookie:sid' must be ip, route, header:NAME" },
        // A route's own retry and circuit settings (README "Health checks, retries and circuit breaking").
        { """{"host":"v.test","service":"backend","resilience":{"circuitFailureRatio":1.5}}""", "Resilience:CircuitFailureRatio 1.5 must be between 0 (off) and 1" },
        { """{"host":"v.test","service":"backend","resilience":{"circuitCooldown":"soon"}}""", "Resilience:CircuitCooldown 'soon' must be a duration between 100ms and 1d, like 30s" },
        { """{"host":"v.test","service":"backend","resilience":{"retryBufferBytes":-1}}""", "Resilience:RetryBufferBytes -1 must be between 0 and 16777216" },
    };

    [Theory]
    [MemberData(nameof(BadLimits))]
    public async Task TheAdminApiRefusesABadRateLimit_NamingTheKeyAndTheFix(string json, string expected)
    {
        using var content = new StringContent(json, System.Text.Encoding.UTF8, "application/json");
        using var response = await fixture.Admin.PutAsync("api/routes", content);
        string body = await response.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains(expected, body);
    }
}
