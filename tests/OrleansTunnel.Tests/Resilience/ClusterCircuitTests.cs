using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using OrleansTunnel.Gateway.Health;
using OrleansTunnel.Grains;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;

namespace OrleansTunnel.Tests.Resilience;

/// <summary>
/// Counts the requests one in-process agent forwarded for one service (its otun.agent.requests counter,
/// told apart from the other agents' by the agent host's meter factory), whatever their outcome.
/// </summary>
public sealed class AgentRequestCounter : IDisposable
{
    private readonly MeterListener _listener = new();
    private long _count;

    public AgentRequestCounter(IHost agent, string service)
    {
        var factory = agent.Services.GetRequiredService<IMeterFactory>();
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Name == "otun.agent.requests" && ReferenceEquals(instrument.Meter.Scope, factory))
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag.Key == "service" && (string?)tag.Value == service)
                {
                    Interlocked.Add(ref _count, value);
                }
            }
        });
        _listener.Start();
    }

    public long Count => Interlocked.Read(ref _count);

    public void Dispose() => _listener.Dispose();
}

/// <summary>
/// Circuits that hold cluster-wide (issue 17): two gateways in one cluster (gw-test holds both agents'
/// tunnels; the peer reaches them through its peer link). A circuit opened through one gateway is skipped
/// by the other, one probe is sent cluster-wide after the cool-down, and its verdict reaches both.
/// </summary>
public sealed partial class ResilienceTests
{
    private async Task<JsonElement> AdminJsonAsync(Uri admin, string path)
    {
        using var client = TunnelHarness.NewClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(admin, path));
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", H.AdminToken);
        using var response = await client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone();
    }

    private static SharedCircuit? SharedOf(SharedCircuits shared, string service, string agentId) =>
        shared.All.FirstOrDefault(c => c.Service == service && c.AgentId == agentId);

    [Fact]
    public async Task CircuitOpenedThroughOneGateway_OtherGatewaySkipsTheSession_OneProbeClusterWide_ClosesOnBothWhenFixed()
    {
        await using var peer = await H.StartPeerGatewayAsync("gw-circuit-peer", new() { ["Resilience:CircuitFailures"] = "3" });
        using var peerClient = TunnelHarness.NewClient();
        using var brokenAttempts = new AgentRequestCounter(fixture.AgentA, "cwide");
        var here = H.Gateway.Services.GetRequiredService<SharedCircuits>();
        var there = peer.Service<SharedCircuits>();
        async Task<bool> OkAsync(HttpClient client, Uri ingress, string path)
        {
            var (status, text, _) = await SendAsync(client, ingress, HttpMethod.Get, "cwide.test", path);
            Assert.True(status == HttpStatusCode.OK, $"GET {path} via {ingress} answered {(int)status}: {text}");
            Assert.Equal(ResilienceBackend.Expected("GET", path, []), text);
            return true;
        }
        await EventuallyAsync(async () => (await SendAsync(peerClient, peer.Ingress, HttpMethod.Get, "cwide.test", "/cwide/warm")).Status == HttpStatusCode.OK,
            "the peer gateway never reached 'cwide' through gw-test");

        // 1. Requests through gw-test (each succeeds, retried on res-b) open res-a's circuit there.
        await EventuallyAsync(async () => await OkAsync(H.Client, H.Ingress, "/cwide/a") && Circuits.OpenFor("cwide").Any(c => c.AgentId == "res-a" && c.State == "open"),
            "gw-test never opened the circuit of 'cwide' on res-a");
        await Eventually.TrueAsync(() => SharedOf(there, "cwide", "res-a") is not null, Wait, "the peer gateway never learnt of the circuit gw-test opened");
        var opened = SharedOf(there, "cwide", "res-a")!;
        Assert.Equal("gw-test", opened.OpenedBy);

        // 2. Through the peer no request reaches res-a while the circuit is open (the peer never failed there itself).
        long before = brokenAttempts.Count;
        for (int i = 0; i < 10; i++)
        {
            await OkAsync(peerClient, peer.Ingress, $"/cwide/b{i}");
        }
        long reached = brokenAttempts.Count - before;
        // Only if the machine was so slow that the cool-down ended meanwhile may the one probe have gone there.
        Assert.True(DateTimeOffset.UtcNow < opened.OpenUntil ? reached == 0 : reached <= 1, $"{reached} request(s) through the peer reached the broken res-a");
        var peerView = await AdminJsonAsync(peer.Admin, "/api/circuits");
        Assert.Contains(peerView.GetProperty("cluster").EnumerateArray(), c => c.GetProperty("service").GetString() == "cwide"
            && c.GetProperty("agentId").GetString() == "res-a" && c.GetProperty("openedBy").GetString() == "gw-test");

        // 3. After the cool-down exactly one request cluster-wide probes res-a (and fails: the circuit opens again).
        await Eventually.TrueAsync(() => here.ProbeDue(opened.SessionId, "cwide") && there.ProbeDue(opened.SessionId, "cwide"), Wait,
            "the shared circuit never became due for a probe on both gateways");
        long atDue = brokenAttempts.Count;
        int sent = 0;
        await EventuallyAsync(async () =>
        {
            await OkAsync(sent % 2 == 0 ? H.Client : peerClient, sent % 2 == 0 ? H.Ingress : peer.Ingress, $"/cwide/p{sent}");
            sent++;
            return new[] { here, there }.All(s => SharedOf(s, "cwide", "res-a") is { } c && c.OpenUntil > opened.OpenUntil);
        }, "the probe's failure never reopened the circuit on both gateways");
        Assert.Equal(1, brokenAttempts.Count - atDue);
        var reopened = SharedOf(here, "cwide", "res-a")!;

        // 4. With the backend fixed, the next probe closes the circuit on both gateways.
        await using var fixedBackend = await ResilienceBackend.StartAsync(fixture.SwitchPort);
        await Eventually.TrueAsync(() => here.ProbeDue(reopened.SessionId, "cwide") || there.ProbeDue(reopened.SessionId, "cwide"), Wait,
            "the reopened circuit never became due for a probe");
        sent = 0;
        await EventuallyAsync(async () =>
        {
            await OkAsync(sent % 2 == 0 ? H.Client : peerClient, sent % 2 == 0 ? H.Ingress : peer.Ingress, $"/cwide/f{sent}");
            sent++;
            return SharedOf(here, "cwide", "res-a") is null && SharedOf(there, "cwide", "res-a") is null;
        }, "the successful probe never closed the shared circuit");
        Assert.DoesNotContain(Circuits.OpenFor("cwide"), c => c.AgentId == "res-a");
        Assert.DoesNotContain(peer.Service<CircuitBreakers>().OpenFor("cwide"), c => c.AgentId == "res-a");
        // res-a serves again, through either gateway.
        long served = brokenAttempts.Count;
        await EventuallyAsync(async () => await OkAsync(peerClient, peer.Ingress, "/cwide/again") && brokenAttempts.Count > served,
            "no request reached the fixed res-a after the circuit closed");
    }

    [Fact]
    public async Task BothAgentsBroken_503NamesTheOpenCircuitsOnBothGateways()
    {
        await using var peer = await H.StartPeerGatewayAsync("gw-circuit-both", new() { ["Resilience:CircuitFailures"] = "3" });
        using var peerClient = TunnelHarness.NewClient();
        using var attemptsA = new AgentRequestCounter(fixture.AgentA, "cboth");
        using var attemptsB = new AgentRequestCounter(fixture.AgentB, "cboth");
        var there = peer.Service<SharedCircuits>();
        // Through gw-test: 502s (each tried on both agents) until both circuits are open, then a 503.
        await EventuallyAsync(async () => (await SendAsync(HttpMethod.Get, "cboth.test", "/cboth")).Status == HttpStatusCode.ServiceUnavailable,
            "gw-test never answered 503 for 'cboth' with both backends refusing");
        await Eventually.TrueAsync(() => SharedOf(there, "cboth", "res-a") is not null && SharedOf(there, "cboth", "res-b") is not null, Wait,
            "the peer gateway never learnt of both circuits of 'cboth'");
        long before = attemptsA.Count + attemptsB.Count;
        foreach (var (client, ingress) in new[] { (H.Client, H.Ingress), (peerClient, peer.Ingress) })
        {
            var (status, message, response) = await SendAsync(client, ingress, HttpMethod.Get, "cboth.test", "/cboth");
            Assert.True(status == HttpStatusCode.ServiceUnavailable, $"via {ingress}: {(int)status} {message}");
            Assert.Contains("no healthy path for service 'cboth': circuit open for", message);
            Assert.Contains("agent 'res-a'", message);
            Assert.Contains("agent 'res-b'", message);
        }
        Assert.Equal(before, attemptsA.Count + attemptsB.Count);
    }
}
