using System.Globalization;
using System.Net;
using System.Text.RegularExpressions;
using OrleansTunnel.Gateway.Policy;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace OrleansTunnel.Tests.Policy;

/// <summary>
/// What a rate-limited route tells admitted callers (RateLimit-* headers), what the limiter counts on
/// /metrics, and the bound on the (route, key) entries one gateway keeps.
/// </summary>
[Collection("policy")]
public sealed partial class RateLimitHeadersTests(PolicyFixture fixture, ITestOutputHelper output)
{
    private TunnelHarness H => fixture.Harness;

    private async Task<HttpResponseMessage> SendAsync(Uri gateway, string host, string apiKey)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(gateway, "/hello"));
        request.Headers.Host = host;
        request.Headers.Add("X-Api-Key", apiKey);
        var response = await H.Client.SendAsync(request);
        await response.Content.LoadIntoBufferAsync();
        return response;
    }

    [Fact]
    public async Task AdmittedResponsesCarryRateLimitHeaders_CountingDownAcrossGateways_AndMetricsCountEachDecision()
    {
        await fixture.SetRouteAsync(new { host = "rla.test", service = "backend", rateLimit = new { requests = 5, per = "1m", key = "header:X-Api-Key" } },
            "rla.test", r => r.RateLimit is { Requests: 5 });
        // A limit of 5 leases one token at a time (MaxLeaseShare 0.1), so each lease sees every earlier
        // grant, whichever gateway took it: Remaining counts down exactly, alternating gateways.
        var gateways = new[] { H.Ingress, fixture.B.Ingress };
        var remaining = new List<string>();
        for (int i = 0; i < 5; i++)
        {
            using var admitted = await SendAsync(gateways[i % 2], "rla.test", "carol");
            Assert.Equal(HttpStatusCode.OK, admitted.StatusCode);
            Assert.Equal("hello", await admitted.Content.ReadAsStringAsync());
            Assert.Equal(["5"], admitted.Headers.GetValues("RateLimit-Limit"));
            Assert.Equal(["5;w=60"], admitted.Headers.GetValues("RateLimit-Policy"));
            // The whole budget is back at the latest per + lease ttl (1 s by default) after this request.
            Assert.Equal(["61"], admitted.Headers.GetValues("RateLimit-Reset"));
            remaining.Add(admitted.Headers.GetValues("RateLimit-Remaining").Single());
        }
        Assert.Equal(["4", "3", "2", "1", "0"], remaining);
        using (var refused = await SendAsync(H.Ingress, "rla.test", "carol"))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
            Assert.Equal(["0"], refused.Headers.GetValues("RateLimit-Remaining"));
        }
        // A route without a rate limit sends none of these headers.
        using (var plain = await SendAsync(H.Ingress, "backend.test", "carol"))
        {
            Assert.Equal(HttpStatusCode.OK, plain.StatusCode);
            Assert.False(plain.Headers.Contains("RateLimit-Limit"));
        }

        // One test process hosts both gateways, and gw-test's metrics listener sees every instrument of the
        // gateway meter in the process (in production each gateway is its own process and counts its own
        // decisions): the sample is the route's total over gw-test and gw-b, 5 admitted and 1 refused.
        string text = "";
        var scraped = Eventually.TrueAsync(() =>
        {
            using var scrape = H.Client.Send(new HttpRequestMessage(HttpMethod.Get, new Uri(H.Admin, "/metrics")));
            text = scrape.Content.ReadAsStringAsync().GetAwaiter().GetResult();
            return Sample(text, "otun_gateway_ratelimit_decisions_total", "rla.test", "admitted") == 5
                && Sample(text, "otun_gateway_ratelimit_decisions_total", "rla.test", "limited") == 1;
        }, TimeSpan.FromSeconds(30), "/metrics never showed 5 admitted and 1 limited decisions of rla.test");
        try
        {
            await scraped;
        }
        catch (TimeoutException ex)
        {
            throw new TimeoutException(ex.Message + "; its rate-limit lines:\n" + RateLimitLines(text), ex);
        }
        output.WriteLine(RateLimitLines(text));
        // Observable instruments with equal tags from two gateways in one process: the exporter shows one of
        // them (gw-test leased 3 times, gw-b 2), so at least 2.
        Assert.True(Sample(text, "otun_gateway_ratelimit_leases_total") >= 2, "the lease calls are not on /metrics");
        Assert.NotNull(Sample(text, "otun_gateway_ratelimit_keys"));
        Assert.NotNull(Sample(text, "otun_gateway_ratelimit_degraded_total", "mode=\"open\""));
        Assert.NotNull(Sample(text, "otun_gateway_ratelimit_degraded_total", "mode=\"closed\""));
        Assert.NotNull(Sample(text, "otun_gateway_ratelimit_keys_evicted_total"));
    }

    [Fact]
    public async Task AGatewayKeepsAtMostMaxKeysPerGateway_AndADroppedKeyIsStillLimitedByTheCluster()
    {
        await using var capped = await H.StartPeerGatewayAsync("gw-keys", new() { ["RateLimits:MaxKeysPerGateway"] = "4" });
        await fixture.SetRouteAsync(new { host = "rlk.test", service = "backend", rateLimit = new { requests = 2, per = "1m", key = "header:X-Api-Key" } },
            "rlk.test", r => r.RateLimit is { Requests: 2 });
        await Eventually.TrueAsync(() => capped.Service<Gateway.Routing.RoutingCache>().Current.Snapshot.Routes.Any(r => r.Host == "rlk.test"),
            TimeSpan.FromSeconds(30), "gw-keys never received the route of rlk.test");
        var limiter = capped.Service<RateLimiter>();

        // k0 spends its whole budget; then twelve other keys push it (idle: no tokens, no refusal) out of the gateway.
        for (int i = 0; i < 2; i++)
        {
            using var admitted = await SendAsync(capped.Ingress, "rlk.test", "k0");
            Assert.Equal(HttpStatusCode.OK, admitted.StatusCode);
        }
        for (int k = 1; k <= 12; k++)
        {
            using var other = await SendAsync(capped.Ingress, "rlk.test", $"k{k}");
            Assert.Equal(HttpStatusCode.OK, other.StatusCode);
            Assert.True(limiter.Keys <= 4, $"gw-keys holds {limiter.Keys} keys with RateLimits:MaxKeysPerGateway = 4");
        }
        Assert.True(limiter.Evicted >= 9, $"only {limiter.Evicted} keys were dropped for 13 distinct keys under a bound of 4");

        // The gateway forgot k0, the cluster did not: its third request is refused by the limiter grain.
        using var again = await SendAsync(capped.Ingress, "rlk.test", "k0");
        Assert.Equal(HttpStatusCode.TooManyRequests, again.StatusCode);
        Assert.Contains("rate limit of 2 requests per 1m reached for this X-Api-Key value on this route", await again.Content.ReadAsStringAsync());
    }

    private static string RateLimitLines(string text) =>
        string.Join('\n', text.Split('\n').Where(l => l.Contains("ratelimit", StringComparison.Ordinal)));

    /// <summary>The sum of the samples of <paramref name="name"/> whose labels contain every fragment; null if none.</summary>
    private static double? Sample(string text, string name, params string[] fragments)
    {
        var values = text.Split('\n')
            .Select(l => SampleLine().Match(l))
            .Where(m => m.Success && m.Groups["name"].Value == name && fragments.All(f => m.Groups["labels"].Value.Contains(f, StringComparison.Ordinal)))
            .Select(m => double.Parse(m.Groups["value"].Value, CultureInfo.InvariantCulture))
            .ToList();
        return values.Count > 0 ? values.Sum() : null;
    }

    [GeneratedRegex("""^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?<labels>.*)\})? (?<value>\S+)""")]
    private static partial Regex SampleLine();
}
