using System.Diagnostics;
using System.Net;
using System.Text.Json;
using OrleansTunnel.Tests.Cluster;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace OrleansTunnel.Tests.Requests;

/// <summary>
/// The gateway that owns a request (the visitor's connection) is killed with SIGKILL while the request
/// runs: the other gateway still answers for it, from its grain, marked lost, within a bounded time.
/// Real processes (redis, 2 silos, 2 gateways, 2 agents), shared with the failover tests.
/// </summary>
[Collection("failover")]
public sealed class OwnerLossTests(FailoverFixture fixture, ITestOutputHelper output)
{
    private ClusterRig Rig => fixture.Rig;

    [Fact]
    public async Task WhenTheOwningGatewayIsKilled_TheRequestIsAnsweredFromItsGrain_MarkedLost()
    {
        await FailoverTests.RestoreAsync(Rig);
        string id = Guid.NewGuid().ToString("N");
        var started = Rig.Backend.StartedSignal(id);
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(Rig.GatewayIngressUrl(0), $"/hang?id={id}"));
        request.Headers.Host = FailoverFixture.Host;
        var call = Rig.Client.SendAsync(request);
        await started.Task.Within(TimeSpan.FromSeconds(15));

        using var owner = Rig.AdminClient(0);
        using var other = Rig.AdminClient(1);
        string? requestId = null;
        await Eventually.TrueAsync(() =>
        {
            var list = JsonDocument.Parse(owner.GetStringAsync("/api/requests?scope=local&live=true").GetAwaiter().GetResult()).RootElement;
            requestId = list.GetProperty("items").EnumerateArray().Where(r => r.GetProperty("path").GetString()!.StartsWith("/hang?", StringComparison.Ordinal))
                .Select(r => r.GetProperty("requestId").GetString()).FirstOrDefault();
            return requestId is not null;
        }, TimeSpan.FromSeconds(15), "gateway-1 never listed the request");
        // Older than Gateway:RequestGrainAfter (1 s): the owner gave it its grain, and the grain holds the record.
        await Eventually.TrueAsync(() => View(other, requestId!) is { } v && v.GetProperty("hasGrain").GetBoolean(), TimeSpan.FromSeconds(15), "the request never got its grain");

        Rig.KillGateway(0);
        var clock = Stopwatch.StartNew();
        JsonElement view = default;
        await Eventually.TrueAsync(() => View(other, requestId!) is { } v && (view = v).GetProperty("state").GetString() == "lost",
            TimeSpan.FromSeconds(30), "the request was never shown lost after its gateway died");
        output.WriteLine($"shown lost {clock.Elapsed.TotalSeconds:0.0} s after kill -9 of gateway-1: {view}");
        Assert.Equal("gateway-1", view.GetProperty("gateway").GetString());
        Assert.Equal("/hang", view.GetProperty("path").GetString());
        Assert.Equal("grain", view.GetProperty("source").GetString());
        Assert.Contains("gone", view.GetProperty("error").GetString());
        // The visitor's connection died with its gateway. (The next failover test restores the cluster.)
        await Assert.ThrowsAnyAsync<Exception>(() => call);
    }

    /// <summary>The request's view; null (and the answer logged) while the cluster answers 503 (it is still detecting the death).</summary>
    private JsonElement? View(HttpClient admin, string requestId)
    {
        using var response = admin.GetAsync($"/api/requests/{requestId}").GetAwaiter().GetResult();
        string text = response.Content.ReadAsStringAsync().GetAwaiter().GetResult();
        if (response.StatusCode == HttpStatusCode.ServiceUnavailable)
        {
            output.WriteLine($"503 {text.Trim()}");
            return null;
        }
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{(int)response.StatusCode} {text}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }
}
