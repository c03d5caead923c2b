using Microsoft.Extensions.DependencyInjection;
using OrleansTunnel.Gateway.Requests;
using OrleansTunnel.Grains;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;

namespace OrleansTunnel.Tests.Requests;

/// <summary>Gateway:RequestGrains: which requests get a grain activation.</summary>
public sealed class RequestGrainModeTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(15);

    private static async Task<(string Id, RequestTracker Tracker, IGrainFactory Grains)> HelloAsync(TunnelHarness h)
    {
        using var response = await h.Client.GetAsync(h.Url("/hello"));
        Assert.Equal("hello", await response.Content.ReadAsStringAsync());
        return (response.Headers.GetValues("X-Tunnel-Request-Id").Single(), h.Gateway.Services.GetRequiredService<RequestTracker>(),
            h.Gateway.Services.GetRequiredService<IGrainFactory>());
    }

    [Fact]
    public async Task OnDemand_AShortRequestGetsNoGrain_ALongOneDoes()
    {
        // 3 s: far above any short request here, even the first one of a cold process on a loaded machine.
        await using var h = await TunnelHarness.StartAsync(o => o.Gateway["Gateway:RequestGrainAfter"] = "00:00:03");
        var (_, tracker, _) = await HelloAsync(h);
        for (int i = 0; i < 20; i++)
        {
            await HelloAsync(h);
        }
        Assert.Equal(0, tracker.Promoted);

        string id = Guid.NewGuid().ToString("N");
        using var sse = await h.Client.GetAsync(h.Url($"/sse-gated?id={id}&count=2"), HttpCompletionOption.ResponseHeadersRead);
        await Eventually.TrueAsync(() => tracker.Promoted == 1, Bound, "the long request was never promoted");
        h.Backend.Gate(id).Release();
        Assert.EndsWith("event 1\n\n", await sse.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Always_EveryRequestsGrainHoldsItsRecord()
    {
        // A linger, so the ended record can be read from the activation (by default it goes at once).
        await using var h = await TunnelHarness.StartAsync(o =>
        {
            o.Gateway["Gateway:RequestGrains"] = "always";
            o.Gateway["Requests:EndedLinger"] = "00:00:30";
        });
        var (requestId, tracker, grains) = await HelloAsync(h);
        Assert.Equal(1, tracker.Promoted);
        // The grain holds a record of its own (HasGrain), besides the owner's fresh view it answers with.
        RequestSnapshot? snapshot = null;
        await Eventually.TrueAsync(() => (snapshot = grains.GetGrain<IRequestGrain>(requestId).GetSnapshot().GetAwaiter().GetResult()) is { HasGrain: true, State: RequestState.Completed },
            Bound, "the grain never recorded the request");
        Assert.Equal(200, snapshot!.Outcome!.Status);
    }

    [Fact]
    public async Task AnEndedRequestsActivation_GoesAtOnceByDefault_AndLingersWhenConfigured()
    {
        foreach (var linger in new[] { (string?)null, "00:00:30" })
        {
            await using var h = await TunnelHarness.StartAsync(o =>
            {
                if (linger is not null)
                {
                    o.Gateway["Requests:EndedLinger"] = linger;
                }
            });
            var grains = h.Gateway.Services.GetRequiredService<IGrainFactory>();
            // An id that names no gateway: once the activation is gone, nothing answers for it ("none").
            var grain = grains.GetGrain<IRequestGrain>(Guid.NewGuid().ToString("N"));
            var now = DateTimeOffset.UtcNow;
            var open = new RequestOpen("gw-owner", "agent", "session", "svc", "GET", "h", "/", "http1", now, now.AddMinutes(1));
            await grain.Open(open);
            await Eventually.TrueAsync(() => grain.GetSnapshot().GetAwaiter().GetResult().State == RequestState.Open, Bound, "the open never landed");
            Assert.True(await grain.Complete(new RequestOutcome(RequestState.Completed, 200, null, 0, 5, DateTimeOffset.UtcNow)));
            if (linger is null)
            {
                // The very next call: a message for a deactivating activation waits for a fresh one.
                var snapshot = await grain.GetSnapshot();
                Assert.True(snapshot.Source == "none", $"the ended request's activation stayed (Requests:EndedLinger defaults to zero): {snapshot}");
            }
            else
            {
                var snapshot = await grain.GetSnapshot();
                Assert.Equal((RequestState.Completed, "grain"), (snapshot.State, snapshot.Source));
            }
        }
    }

    [Fact]
    public async Task Off_NoRequestIsPromoted_ButLookupsStillWork()
    {
        await using var h = await TunnelHarness.StartAsync(o =>
        {
            o.Gateway["Gateway:RequestGrains"] = "off";
            o.Gateway["Gateway:RequestGrainAfter"] = "00:00:00.1";
        });
        string id = Guid.NewGuid().ToString("N");
        using var sse = await h.Client.GetAsync(h.Url($"/sse-gated?id={id}&count=2"), HttpCompletionOption.ResponseHeadersRead);
        string requestId = sse.Headers.GetValues("X-Tunnel-Request-Id").Single();
        var tracker = h.Gateway.Services.GetRequiredService<RequestTracker>();
        var grains = h.Gateway.Services.GetRequiredService<IGrainFactory>();
        // Several sweep periods pass (the journal sees the entry age) without a promotion.
        var journal = h.Gateway.Services.GetRequiredService<RequestJournal>();
        await Eventually.TrueAsync(() => journal.Find(requestId)!.Age > TimeSpan.FromSeconds(1), Bound, "time stood still");
        Assert.Equal(0, tracker.Promoted);
        var live = await grains.GetGrain<IRequestGrain>(requestId).GetSnapshot();
        Assert.Equal(RequestState.Streaming, live.State);
        Assert.False(live.HasGrain);
        h.Backend.Gate(id).Release();
        await sse.Content.ReadAsStringAsync();
    }
}

/// <summary>The journal's list at the inspector's scale.</summary>
public sealed class RequestPagingTests
{
    [Fact]
    public async Task TenThousandRequests_PageThroughWhole_NewestFirst_WithoutGapsOrRepeats()
    {
        await using var h = await TunnelHarness.StartAsync(o => o.Gateway["Inspector:Capacity"] = "16384");
        var sent = new System.Collections.Concurrent.ConcurrentBag<string>();
        await Parallel.ForAsync(0, 10_000, new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (i, ct) =>
        {
            using var r = await h.Client.GetAsync(h.Url($"/hello?n={i}"), ct);
            sent.Add(r.Headers.GetValues("X-Tunnel-Request-Id").Single());
        });
        using var admin = new HttpClient { BaseAddress = h.Admin };
        admin.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", h.AdminToken);
        var seen = new List<string>();
        string url = "api/requests?path=/hello%3Fn%3D&limit=1000";
        int pages = 0;
        while (true)
        {
            var page = System.Text.Json.JsonDocument.Parse(await admin.GetStringAsync(url)).RootElement;
            pages++;
            seen.AddRange(page.GetProperty("items").EnumerateArray().Select(r => r.GetProperty("requestId").GetString()!));
            if (page.GetProperty("next").ValueKind == System.Text.Json.JsonValueKind.Null)
            {
                break;
            }
            var next = page.GetProperty("next");
            url = "api/requests?path=/hello%3Fn%3D&limit=1000&before=" + Uri.EscapeDataString(next.GetProperty("before").GetString()!)
                + "&beforeId=" + Uri.EscapeDataString(next.GetProperty("beforeId").GetString()!);
        }
        Assert.Equal(10_000, seen.Count);
        Assert.Equal(10_000, seen.Distinct().Count());
        Assert.Empty(sent.Except(seen));
        Assert.Equal(10, pages);
    }
}
