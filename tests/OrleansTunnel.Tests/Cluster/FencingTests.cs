using Microsoft.Extensions.DependencyInjection;
using OrleansTunnel.Grains;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;

namespace OrleansTunnel.Tests.Cluster;

/// <summary>
/// Fencing in the grains of a real (in-process) silo: the gateway directory declares a silent gateway
/// dead and refuses its old incarnation; superseded sessions are never routed to; a request's grain
/// accepts an ending only from the gateways and incarnations it recorded.
/// </summary>
public sealed class FencingTests
{
    [Fact]
    public async Task ASilentGateway_IsDeclaredDead_ItsSessionsLeaveTheRouting_AndItsIncarnationIsRefused()
    {
        await using var h = await TunnelHarness.StartAsync(o =>
        {
            o.Gateway["Directory:GatewayTimeToLive"] = "00:00:01";
            o.Gateway["Gateway:ClusterHeartbeatInterval"] = "00:00:00.200";
        });
        var routing = h.Gateway.Services.GetRequiredService<IGrainFactory>().GetGrain<IRoutingGrain>(RoutingGrain.DefaultKey);
        var ghost = new GatewayInfo("gw-ghost", 1, "http://127.0.0.1:1", new string('0', 64), DateTimeOffset.UtcNow);
        var accepted = await routing.ReportGateway(new GatewayReport(ghost, [new HeldSession("ghost-agent", "ghost-session", ["ghost"])]));
        Assert.True(accepted.Accepted);
        Assert.Contains((await routing.GetSnapshot()).Endpoints["ghost"], e => e.GatewayId == "gw-ghost");

        // It stops reporting: within the time-to-live (plus a timer tick) it is gone, with its session.
        await Eventually.TrueAsync(() => !routing.GetSnapshot().GetAwaiter().GetResult().Gateways.Any(g => g.GatewayId == "gw-ghost"),
            TimeSpan.FromSeconds(10), "the silent gateway was never declared dead");
        var snapshot = await routing.GetSnapshot();
        Assert.False(snapshot.Endpoints.ContainsKey("ghost"));
        // The live gateway is still there: it kept reporting.
        Assert.Contains(snapshot.Gateways, g => g.GatewayId == "gw-test");

        var stale = await routing.ReportGateway(new GatewayReport(ghost, [new HeldSession("ghost-agent", "ghost-session", ["ghost"])]));
        Assert.False(stale.Accepted);
        Assert.Contains("declared dead", stale.Reason);
        var rejoined = await routing.ReportGateway(new GatewayReport(ghost with { Incarnation = 2 }, []));
        Assert.True(rejoined.Accepted);
    }

    [Fact]
    public async Task ASupersededSession_IsNeverRoutedTo_EvenIfItsGatewayStillReportsIt()
    {
        await using var h = await TunnelHarness.StartAsync();
        var routing = h.Gateway.Services.GetRequiredService<IGrainFactory>().GetGrain<IRoutingGrain>(RoutingGrain.DefaultKey);
        var other = new GatewayInfo("gw-other", 1, "", new string('0', 64), DateTimeOffset.UtcNow);
        HeldSession[] sessions = [new("a", "old-session", ["svc"]), new("a", "new-session", ["svc"])];
        await routing.ReportGateway(new GatewayReport(other, sessions));
        Assert.Equal(2, (await routing.GetSnapshot()).Endpoints["svc"].Length);

        await routing.FenceSessions(["old-session"]);
        Assert.Equal(["new-session"], (await routing.GetSnapshot()).Endpoints["svc"].Select(e => e.SessionId));
        // The gateway has not closed it yet and reports it again: still not routed.
        await routing.ReportGateway(new GatewayReport(other, sessions));
        Assert.Equal(["new-session"], (await routing.GetSnapshot()).Endpoints["svc"].Select(e => e.SessionId));
    }

    [Fact]
    public async Task ARequestGrain_AcceptsAnEndingOnlyFromTheGatewaysAndIncarnationsItRecorded()
    {
        // The owner refines the agent-side gateway's ending while the activation lingers after the first
        // one (the default, zero, lets it go at once: later look-ups then ask the owner's journal).
        await using var h = await TunnelHarness.StartAsync(o => o.Gateway["Requests:EndedLinger"] = "00:00:30");
        var grain = h.Gateway.Services.GetRequiredService<IGrainFactory>().GetGrain<IRequestGrain>(Guid.NewGuid().ToString("N"));
        var now = DateTimeOffset.UtcNow;
        await grain.Open(new RequestOpen("gw-owner", "agent", "session", "svc", "GET", "h", "/", "http1", now, now.AddMinutes(1),
            GatewayIncarnation: 5, ViaGatewayId: "gw-via", ViaIncarnation: 7));
        // Open is one-way: wait until the grain has it (an ending that overtakes the open cannot be checked).
        await Eventually.TrueAsync(() => grain.GetSnapshot().GetAwaiter().GetResult().Open is not null, TimeSpan.FromSeconds(10), "the open never landed");

        // The agent-side gateway from before its restart (incarnation 6), and a stranger: refused.
        Assert.False(await grain.Complete(new RequestOutcome(RequestState.Completed, 200, null, 0, 1, now, "gw-via", 6)));
        Assert.False(await grain.Complete(new RequestOutcome(RequestState.Completed, 200, null, 0, 1, now, "gw-stranger", 5)));
        Assert.Equal(RequestState.Open, (await grain.GetSnapshot()).State);

        // The agent-side gateway in its recorded incarnation completes it; the owner's account then refines it.
        Assert.True(await grain.Complete(new RequestOutcome(RequestState.Completed, 200, null, 0, 1, now, "gw-via", 7)));
        Assert.True(await grain.Complete(new RequestOutcome(RequestState.Cancelled, 200, "the visitor left", 0, 1, now, "gw-owner", 5)));
        var snapshot = await grain.GetSnapshot();
        Assert.Equal(RequestState.Cancelled, snapshot.State);
        Assert.Equal("gw-owner", snapshot.Outcome!.ReportedBy);
        Assert.Equal(2, snapshot.FencedCompletions);
        // After the owner's ending, nothing changes it.
        Assert.False(await grain.Complete(new RequestOutcome(RequestState.Failed, 502, "late", 0, 1, now, "gw-via", 7)));
    }

    [Fact]
    public async Task AnOlderIncarnationOfALiveGateway_IsRefused_WithAnIncarnationThatWouldBeAccepted()
    {
        await using var h = await TunnelHarness.StartAsync();
        var routing = h.Gateway.Services.GetRequiredService<IGrainFactory>().GetGrain<IRoutingGrain>(RoutingGrain.DefaultKey);
        var info = new GatewayInfo("gw-twice", 500, "", new string('0', 64), DateTimeOffset.UtcNow);
        Assert.True((await routing.ReportGateway(new GatewayReport(info, []))).Accepted);

        // A restart on a host whose clock is behind (or a second process with the same id).
        var older = await routing.ReportGateway(new GatewayReport(info with { Incarnation = 300 }, []));
        Assert.False(older.Accepted);
        Assert.True(older.NewerIncarnationExists);
        Assert.Equal(501, older.NextIncarnation);
        Assert.True((await routing.ReportGateway(new GatewayReport(info with { Incarnation = older.NextIncarnation }, []))).Accepted);
    }

    [Fact]
    public void AFreshRoutingGrainsIncompleteDirectory_DoesNotMakeGatewaysForgetTheOthers()
    {
        var cache = new Gateway.Routing.RoutingCache();
        GatewayInfo A(long v) => new("gw-a", 1, "http://a", "", DateTimeOffset.UnixEpoch);
        var b = new GatewayInfo("gw-b", 1, "http://b", "", DateTimeOffset.UnixEpoch);
        var onB = new ServiceEndpoint("agent", "s-b", "gw-b");
        cache.Apply(new RoutingSnapshot(1, [], new() { ["svc"] = [onB] }, [], [A(1), b]));

        // The routing grain's silo died: the new activation has heard from gw-a only so far.
        cache.Apply(new RoutingSnapshot(2, [], new(), [], [A(2)], GatewaysIncomplete: true));
        Assert.Equal(["gw-a", "gw-b"], cache.Current.Snapshot.Gateways.Select(g => g.GatewayId).Order());
        Assert.Equal([onB], cache.Current.Snapshot.Endpoints["svc"]);

        // Complete again (every live gateway had its time to report): gw-b did not, so it is gone.
        cache.Apply(new RoutingSnapshot(3, [], new(), [], [A(3)]));
        Assert.Equal(["gw-a"], cache.Current.Snapshot.Gateways.Select(g => g.GatewayId));
        Assert.False(cache.Current.Snapshot.Endpoints.ContainsKey("svc"));
    }
}
