using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using OrleansTunnel.Gateway.Health;
using OrleansTunnel.Gateway.Tunnel;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace OrleansTunnel.Tests.Resilience;

/// <summary>
/// Health checks, retries and circuit breaking end to end: visitor -> gateway -> agent -> backend over
/// real sockets, with agents whose backend refuses connections, a health endpoint that flaps, and an
/// agent process killed with SIGKILL under load.
/// </summary>
public sealed partial class ResilienceTests(ResilienceHarness fixture, ITestOutputHelper output) : IClassFixture<ResilienceHarness>
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    private TunnelHarness H => fixture.Harness;

    private CircuitBreakers Circuits => H.Gateway.Services.GetRequiredService<CircuitBreakers>();

    private ConnectionRegistry Registry => H.Gateway.Services.GetRequiredService<ConnectionRegistry>();

    private static async Task<(HttpStatusCode Status, string Body, HttpResponseMessage Response)> SendAsync(HttpClient client, Uri ingress, HttpMethod method, string host, string path, byte[]? body = null)
    {
        var request = new HttpRequestMessage(method, new Uri(ingress, path));
        request.Headers.Host = host;
        if (body is not null)
        {
            request.Content = new ByteArrayContent(body);
        }
        var response = await client.SendAsync(request);
        return (response.StatusCode, await response.Content.ReadAsStringAsync(), response);
    }

    private Task<(HttpStatusCode Status, string Body, HttpResponseMessage Response)> SendAsync(HttpMethod method, string host, string path, byte[]? body = null) =>
        SendAsync(H.Client, H.Ingress, method, host, path, body);

    private async Task<JsonElement> AdminJsonAsync(string path)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(H.Admin, path));
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", H.AdminToken);
        using var response = await H.Client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone();
    }

    [Fact]
    public async Task BackendRefusingOnOneAgent_EveryIdempotentRequestSucceedsViaTheOther_AndItsCircuitOpensInAdmin()
    {
        long retriesBefore = Circuits.RetriesTotal;
        var body = Encoding.UTF8.GetBytes("put-body-" + Guid.NewGuid());
        for (int i = 0; i < 30; i++)
        {
            // GETs and a PUT with a small body (buffered, so it can be sent again).
            var (method, payload) = i % 3 == 2 ? (HttpMethod.Put, body) : (HttpMethod.Get, (byte[]?)null);
            var (status, text, _) = await SendAsync(method, "half.test", $"/half/{i}", payload);
            Assert.True(status == HttpStatusCode.OK, $"request {i} ({method}) answered {(int)status}: {text}");
            Assert.Equal(ResilienceBackend.Expected(method.Method, $"/half/{i}", payload ?? []), text);
        }
        long retried = Circuits.RetriesTotal - retriesBefore;
        output.WriteLine($"refusing backend on res-a: 30 requests, 0 failed, {retried} retried");
        // At most CircuitFailures (3) requests reached res-a before its circuit opened (and a probe per cool-down).
        Assert.InRange(retried, 1, 30);
        var circuits = await AdminJsonAsync("/api/circuits");
        Assert.Contains(circuits.GetProperty("local").EnumerateArray(), c => c.GetProperty("service").GetString() == "half"
            && c.GetProperty("agentId").GetString() == "res-a" && c.GetProperty("state").GetString() != "closed");
        Assert.DoesNotContain(circuits.GetProperty("local").EnumerateArray(), c => c.GetProperty("service").GetString() == "half" && c.GetProperty("agentId").GetString() == "res-b");
        // The circuit is shared with the cluster: the cluster view names the gateway that opened it.
        await Eventually.TrueAsync(() => H.Gateway.Services.GetRequiredService<SharedCircuits>().All.Any(c => c.Service == "half" && c.AgentId == "res-a"), Wait,
            "the circuit of 'half' on res-a never reached the cluster's table");
        circuits = await AdminJsonAsync("/api/circuits");
        Assert.Contains(circuits.GetProperty("cluster").EnumerateArray(), c => c.GetProperty("service").GetString() == "half"
            && c.GetProperty("agentId").GetString() == "res-a" && c.GetProperty("openedBy").GetString() == circuits.GetProperty("gateway").GetString());
        Assert.True(circuits.GetProperty("counters").GetProperty("opened").GetInt64() >= 1, "the local counters are missing: " + circuits);
        var services = await AdminJsonAsync("/api/services");
        var half = services.EnumerateArray().Single(s => s.GetProperty("service").GetString() == "half");
        Assert.Contains(half.GetProperty("openCircuits").EnumerateArray(), c => c.GetProperty("agentId").GetString() == "res-a");
    }

    [Fact]
    public async Task PostWhoseHeadWasDelivered_IsNotRetried_TheVisitorSeesTheError()
    {
        long retriesBefore = Circuits.RetriesTotal;
        long postsBefore = fixture.Backend.Posts;
        int ok = 0;
        string? failedId = null;
        // Each POST goes to res-a (refusing backend) or res-b; one that went to res-a must fail, not be retried.
        for (int i = 0; i < 40 && failedId is null; i++)
        {
            var (status, text, response) = await SendAsync(HttpMethod.Post, "post.test", $"/post/{i}", Encoding.UTF8.GetBytes("order " + i));
            if (status == HttpStatusCode.OK)
            {
                ok++;
                continue;
            }
            Assert.Equal(HttpStatusCode.BadGateway, status);
            Assert.Contains("the backend refused or reset the connection", text);
            failedId = response.Headers.GetValues("X-Tunnel-Request-Id").Single();
        }
        Assert.NotNull(failedId);
        Assert.Equal(retriesBefore, Circuits.RetriesTotal);
        Assert.Equal(ok, fixture.Backend.Posts - postsBefore);
        var entry = await AdminJsonAsync("/api/requests/" + failedId);
        Assert.Equal("res-a", entry.GetProperty("agent").GetString());
        Assert.Equal(502, entry.GetProperty("status").GetInt32());
        Assert.True(entry.GetProperty("note").ValueKind == JsonValueKind.Null, "the failed POST's journal entry says it was retried: " + entry);
    }

    [Fact]
    public async Task NoHealthyPath_503NamesTheOpenCircuit_ThenOneProbeAfterTheCooldown()
    {
        // "dead" is served only by res-a, whose backend refuses: three 502s open the circuit.
        for (int i = 0; i < 3; i++)
        {
            var (status, text, _) = await SendAsync(HttpMethod.Get, "dead.test", "/dead");
            Assert.True(status == HttpStatusCode.BadGateway, $"attempt {i}: {(int)status} {text}");
        }
        var (open, message, response) = await SendAsync(HttpMethod.Get, "dead.test", "/dead");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, open);
        Assert.Contains("no healthy path for service 'dead': circuit open for agent 'res-a'", message);
        Assert.True(response.Headers.RetryAfter is not null, "the 503 has no Retry-After");
        // After the cool-down one request probes the session (it fails again: 502), and the circuit opens again.
        await Eventually.TrueAsync(() => Circuits.OpenFor("dead").Any(c => c.State == "half-open (probe due)"), Wait, "the circuit of 'dead' never became due for a probe");
        var (probe, probeText, _) = await SendAsync(HttpMethod.Get, "dead.test", "/dead");
        Assert.True(probe == HttpStatusCode.BadGateway, $"the probe answered {(int)probe}: {probeText}");
        Assert.Contains(Circuits.OpenFor("dead"), c => c.State == "open");
        var (again, againText, _) = await SendAsync(HttpMethod.Get, "dead.test", "/dead");
        Assert.True(again == HttpStatusCode.ServiceUnavailable, $"after the failed probe: {(int)again} {againText}");
    }

    [Fact]
    public async Task FlappingHealthEndpoint_ServiceLeavesDispatchOnEveryGateway_AndComesBack_AdminShowsHealth()
    {
        await using var peer = await H.StartPeerGatewayAsync("gw-health-peer", new() { ["Resilience:CircuitFailures"] = "3" });
        using var peerClient = TunnelHarness.NewClient();
        try
        {
            Assert.Equal(HttpStatusCode.OK, (await SendAsync(HttpMethod.Get, "flap.test", "/flap")).Status);
            await EventuallyAsync(async () => (await SendAsync(peerClient, peer.Ingress, HttpMethod.Get, "flap.test", "/flap")).Status == HttpStatusCode.OK,
                "the peer gateway never reached 'flap' through gw-test");
            for (int round = 0; round < 2; round++)
            {
                fixture.Flapping.Healthy = false;
                await EventuallyAsync(async () => (await SendAsync(HttpMethod.Get, "flap.test", "/flap")).Status == HttpStatusCode.ServiceUnavailable,
                    "'flap' never left this gateway's dispatch after its health endpoint failed");
                await EventuallyAsync(async () => (await SendAsync(peerClient, peer.Ingress, HttpMethod.Get, "flap.test", "/flap")).Status == HttpStatusCode.ServiceUnavailable,
                    "'flap' never left the peer gateway's dispatch (directory) after its health endpoint failed");
                var tunnels = await TunnelsAsync();
                var health = tunnels.EnumerateArray().Single(t => t.GetProperty("agent").GetString() == "res-b").GetProperty("health").GetProperty("flap");
                Assert.False(health.GetProperty("healthy").GetBoolean());
                Assert.Contains("503", health.GetProperty("detail").GetString());
                var services = await AdminJsonAsync("/api/services");
                Assert.Contains(services.EnumerateArray().Single(s => s.GetProperty("service").GetString() == "flap").GetProperty("unhealthy").EnumerateArray(),
                    e => e.GetProperty("agentId").GetString() == "res-b");

                fixture.Flapping.Healthy = true;
                await EventuallyAsync(async () => (await SendAsync(HttpMethod.Get, "flap.test", "/flap")).Status == HttpStatusCode.OK,
                    "'flap' never came back to this gateway's dispatch after its health endpoint recovered");
                await EventuallyAsync(async () => (await SendAsync(peerClient, peer.Ingress, HttpMethod.Get, "flap.test", "/flap")).Status == HttpStatusCode.OK,
                    "'flap' never came back to the peer gateway's dispatch");
                tunnels = await TunnelsAsync();
                Assert.True(tunnels.EnumerateArray().Single(t => t.GetProperty("agent").GetString() == "res-b").GetProperty("health").GetProperty("flap").GetProperty("healthy").GetBoolean());
            }
        }
        finally
        {
            fixture.Flapping.Healthy = true;
        }
    }

    [Fact]
    public async Task KillingOneOfTwoAgentProcessesUnderLoad_FailsNoIdempotentRequest()
    {
        await using var a = new AgentProcess("kill-a", ResilienceHarness.TokenKillA, H.TunnelUrl, fixture.Backend.Url, "kill", connections: 2);
        await using var b = new AgentProcess("kill-b", ResilienceHarness.TokenKillB, H.TunnelUrl, fixture.Backend.Url, "kill", connections: 2);
        await Task.WhenAll(a.Ready, b.Ready).Within(TimeSpan.FromSeconds(60));
        await Eventually.TrueAsync(() => Sessions("kill-a") == 2 && Sessions("kill-b") == 2, Wait, "the gateway never held two sessions of each agent for 'kill'");

        long retriesBefore = Circuits.RetriesTotal;
        int sent = 0, failed = 0, afterKill = -1;
        var failures = new ConcurrentQueue<string>();
        using var stop = new CancellationTokenSource();
        // Six visitors in a loop; the backend holds each request 20 ms, so some are always in flight on kill-a.
        var workers = Enumerable.Range(0, 6).Select(w => Task.Run(async () =>
        {
            for (int i = 0; !stop.IsCancellationRequested; i++)
            {
                string path = $"/kill/{w}/{i}";
                try
                {
                    var (status, text, _) = await SendAsync(HttpMethod.Get, "kill.test", path + "?delay=20");
                    if (status != HttpStatusCode.OK || text != ResilienceBackend.Expected("GET", path, []))
                    {
                        Interlocked.Increment(ref failed);
                        failures.Enqueue($"{path}: {(int)status} {text}");
                    }
                }
                catch (HttpRequestException ex)
                {
                    Interlocked.Increment(ref failed);
                    failures.Enqueue($"{path}: {ex.Message}");
                }
                Interlocked.Increment(ref sent);
            }
        })).ToArray();
        await Eventually.TrueAsync(() => Volatile.Read(ref sent) >= 150, Wait, "the load never reached 150 requests");
        a.Kill();
        afterKill = Volatile.Read(ref sent);
        // Keep the load on until the gateway dropped the killed agent's sessions and 300 more requests went through.
        await Eventually.TrueAsync(() => Sessions("kill-a") == 0 && Volatile.Read(ref sent) >= afterKill + 300, Wait,
            "the gateway never dropped kill-a's sessions or the load stalled after the kill");
        stop.Cancel();
        await Task.WhenAll(workers).Within(Wait);
        long retried = Circuits.RetriesTotal - retriesBefore;
        output.WriteLine($"kill -9 of one of two agents: {sent} requests sent ({afterKill} before the kill), {failed} failed, {retried} retried; circuits opened so far on this gateway: {Circuits.OpenedTotal}");
        Assert.True(failed == 0, $"{failed} of {sent} requests failed:\n{string.Join("\n", failures.Take(10))}");
        Assert.True(retried >= 1, "no request was retried, so none was in flight on the killed agent: the test proved nothing");
    }

    private int Sessions(string agentId) => Registry.All.Count(c => c.AgentId == agentId && !c.Mux.Closed.IsCancellationRequested);

    private async Task<JsonElement> TunnelsAsync()
    {
        using var response = await H.Client.GetAsync(new Uri(H.Admin, "/tunnels"));
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone();
    }

    private static async Task EventuallyAsync(Func<Task<bool>> condition, string message)
    {
        var deadline = DateTime.UtcNow + Wait;
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"{message} (waited {Wait.TotalSeconds:0} s)");
            }
            await Task.Delay(50);
        }
    }
}
