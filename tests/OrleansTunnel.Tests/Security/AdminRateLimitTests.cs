using System.Net;
using System.Net.Http.Headers;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;

namespace OrleansTunnel.Tests.Security;

/// <summary>Failed admin token attempts are rate-limited per source address (Gateway:AdminFailuresPerMinute).</summary>
public sealed class AdminRateLimitTests
{
    [Fact]
    public async Task FailedAdminTokens_AreRateLimitedPerSource_With429AndRetryAfter()
    {
        await using var h = await TunnelHarness.StartAsync();
        using var wrong = new HttpClient { BaseAddress = h.Admin };
        wrong.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "guess");
        for (int i = 0; i < 10; i++)
        {
            using var r = await wrong.GetAsync("/api/routes");
            Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode);
        }
        using (var r = await wrong.GetAsync("/api/routes"))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, r.StatusCode);
            Assert.InRange(r.Headers.RetryAfter?.Delta?.TotalSeconds ?? 0, 1, 60);
            Assert.Contains("too many failed admin token attempts", await r.Content.ReadAsStringAsync());
        }
        // The limit holds for the source even with the right token, until the minute ends.
        using var right = new HttpClient { BaseAddress = h.Admin };
        right.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", h.AdminToken);
        using (var r = await right.GetAsync("/api/routes"))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, r.StatusCode);
        }
        // Endpoints without a token are unaffected.
        using (var r = await right.GetAsync("/healthz"))
        {
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        }
    }
}
