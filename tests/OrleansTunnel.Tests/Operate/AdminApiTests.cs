using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using OrleansTunnel.Agent;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace OrleansTunnel.Tests.Operate;

/// <summary>The admin API on the admin port: token, listings, runtime routes and agent tokens.</summary>
public sealed class AdminApiTests(ITestOutputHelper output)
{
    private static HttpClient AdminClient(TunnelHarness h, string? token)
    {
        var client = new HttpClient { BaseAddress = h.Admin };
        if (token is not null)
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }
        return client;
    }

    private static async Task<HttpResponseMessage> GetWithHost(TunnelHarness h, string host, string path = "/hello")
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, h.Url(path));
        request.Headers.Host = host;
        return await h.Client.SendAsync(request);
    }

    [Fact]
    public async Task TheAdminApi_NeedsItsToken_AndIsNotOnTheIngressOrTunnel()
    {
        await using var h = await TunnelHarness.StartAsync();
        using (var none = AdminClient(h, null))
        using (var r = await none.GetAsync("/api/routes"))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode);
            Assert.Equal("otun admin: missing bearer token\n", await r.Content.ReadAsStringAsync());
        }
        using (var wrong = AdminClient(h, "not-the-token"))
        using (var r = await wrong.GetAsync("/api/routes"))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode);
            Assert.Equal("otun admin: invalid admin token\n", await r.Content.ReadAsStringAsync());
        }
        // On the public ingress the path is just a visitor's path routed to the backend.
        using (var r = await h.Client.GetAsync(h.Url("/api/routes")))
        {
            Assert.DoesNotContain("\"service\"", await r.Content.ReadAsStringAsync());
        }
        using (var tunnel = new HttpClient())
        using (var r = await tunnel.SendAsync(new HttpRequestMessage(HttpMethod.Get, h.TunnelUrl + "/api/routes") { Version = HttpVersion.Version20, VersionPolicy = HttpVersionPolicy.RequestVersionExact }))
        {
            Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
        }
        using (var ok = AdminClient(h, h.AdminToken))
        using (var r = await ok.GetAsync("/api/routes"))
        {
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        }
    }

    [Fact]
    public async Task Listings_ShowAgentsServicesRoutesAndInFlightRequests()
    {
        await using var h = await TunnelHarness.StartAsync();
        using var admin = AdminClient(h, h.AdminToken);
        string id = Guid.NewGuid().ToString("N");
        using var cts = new CancellationTokenSource();
        var hanging = h.Client.GetAsync(h.Url($"/hang?id={id}"), cts.Token);
        await h.Backend.StartedSignal(id).Task.Within(TimeSpan.FromSeconds(10));

        var agents = await admin.GetFromJsonAsync<JsonElement>("/api/agents");
        var agent = agents.EnumerateArray().Single(a => a.GetProperty("agentId").GetString() == TunnelHarness.AgentId);
        Assert.Equal(1, agent.GetProperty("connections").GetArrayLength());
        Assert.Contains("backend", agent.GetProperty("services").EnumerateArray().Select(s => s.GetString()));
        Assert.True(agent.GetProperty("inFlight").GetInt32() >= 1);

        var services = await admin.GetFromJsonAsync<JsonElement>("/api/services");
        var backend = services.EnumerateArray().Single(s => s.GetProperty("service").GetString() == "backend");
        Assert.Contains("backend.test", backend.GetProperty("routes").EnumerateArray().Select(r => r.GetString()));

        var requests = await admin.GetFromJsonAsync<JsonElement>("/api/requests");
        Assert.Contains(requests.GetProperty("items").EnumerateArray(), r => r.GetProperty("path").GetString()!.StartsWith("/hang?", StringComparison.Ordinal));

        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => hanging);
    }

    [Fact]
    public async Task RoutesChangedAtRuntime_AreServedWithinASecond_AndRemovedAgain()
    {
        await using var h = await TunnelHarness.StartAsync();
        using var admin = AdminClient(h, h.AdminToken);
        using (var before = await GetWithHost(h, "new.test"))
        {
            Assert.Equal(HttpStatusCode.NotFound, before.StatusCode);
        }
        var sw = Stopwatch.StartNew();
        using (var put = await admin.PutAsJsonAsync("/api/routes", new { host = "new.test", service = "backend" }))
        {
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        }
        await Eventually.TrueAsync(() => GetWithHost(h, "new.test").GetAwaiter().GetResult().StatusCode == HttpStatusCode.OK, TimeSpan.FromSeconds(5), "the new route was never served");
        output.WriteLine($"route served {sw.ElapsedMilliseconds} ms after the PUT");

        using (var bad = await admin.PutAsJsonAsync("/api/routes", new { host = "x.*.test", service = "backend" }))
        {
            Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
            Assert.Contains("a wildcard is only allowed as the first label", await bad.Content.ReadAsStringAsync());
        }
        using (var del = await admin.DeleteAsync("/api/routes?host=new.test"))
        {
            Assert.Equal(HttpStatusCode.NoContent, del.StatusCode);
        }
        await Eventually.TrueAsync(() => GetWithHost(h, "new.test").GetAwaiter().GetResult().StatusCode == HttpStatusCode.NotFound, TimeSpan.FromSeconds(5), "the removed route was still served");
    }

    [Fact]
    public async Task TokensAddedAtRuntime_LetAnAgentIn_AndRevocationClosesItsLiveSession()
    {
        await using var h = await TunnelHarness.StartAsync();
        using var admin = AdminClient(h, h.AdminToken);
        const string agentId = "runtime-agent", token = "runtime-token-value";
        using (var put = await admin.PutAsJsonAsync("/api/tokens", new { agentId, token, services = new[] { "runtime" } }))
        {
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        }
        using (var put = await admin.PutAsJsonAsync("/api/routes", new { host = "runtime.test", service = "runtime" }))
        {
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        }
        using var agent = await h.StartExtraAgentAsync(agentId, token, "runtime");
        var status = agent.Services.GetRequiredService<AgentStatus>();
        await status.AnyUp.Within(TimeSpan.FromSeconds(15));
        await Eventually.TrueAsync(() => GetWithHost(h, "runtime.test").GetAwaiter().GetResult().StatusCode == HttpStatusCode.OK, TimeSpan.FromSeconds(10), "the runtime agent never served");
        var tokens = await admin.GetFromJsonAsync<JsonElement>("/api/tokens");
        Assert.DoesNotContain(token, tokens.GetRawText());

        long connects = status.Connects;
        var sw = Stopwatch.StartNew();
        using (var del = await admin.DeleteAsync($"/api/tokens/{agentId}"))
        {
            Assert.Equal(HttpStatusCode.NoContent, del.StatusCode);
        }
        // The live session is closed within seconds, and reconnecting is refused.
        await Eventually.TrueAsync(() => status.Tunnels.Count == 0, TimeSpan.FromSeconds(5), "the revoked agent's session stayed up");
        output.WriteLine($"revoked session closed {sw.ElapsedMilliseconds} ms after the DELETE");
        using (var after = await GetWithHost(h, "runtime.test"))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, after.StatusCode);
        }
        Assert.Equal(connects, status.Connects);
        await agent.StopAsync();
    }
}
