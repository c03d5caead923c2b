using System.Net;
using Microsoft.Extensions.DependencyInjection;
using OrleansTunnel.Gateway.Ingress;
using OrleansTunnel.Gateway.Tunnel;
using OrleansTunnel.Grains;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;

namespace OrleansTunnel.Tests.FlowControl;

/// <summary>The per-agent budget (BackpressureGrain + the gateway's permit pool) and the gateway-wide caps.</summary>
public sealed class BackpressureTests
{
    private static Action<HarnessOptions> Limit(int perAgent) => o =>
    {
        o.Gateway["Backpressure:MaxConcurrentPerAgent"] = perAgent.ToString();
        o.Gateway["Gateway:PermitBatchSize"] = "4";
        o.Gateway["Gateway:PermitIdleReturn"] = "00:00:00.200";
    };

    private static async Task PermitsAllBack(TunnelHarness h)
    {
        var pool = h.Gateway.Services.GetRequiredService<PermitPool>();
        var grain = h.Gateway.Services.GetRequiredService<IGrainFactory>().GetGrain<IBackpressureGrain>(TunnelHarness.AgentId);
        await Eventually.TrueAsync(() => pool.InUse == 0 && pool.Available == 0, TimeSpan.FromSeconds(20),
            $"the gateway still holds permits (in use {pool.InUse}, idle {pool.Available})");
        BackpressureSnapshot? snapshot = null;
        await Eventually.TrueAsync(() => (snapshot = grain.GetSnapshot().GetAwaiter().GetResult()).Leased == 0, TimeSpan.FromSeconds(20),
            $"the grain still counts leased permits ({snapshot?.Leased})");
        Assert.Equal(0, h.Gateway.Services.GetRequiredService<IngressForwarder>().InFlight);
    }

    [Fact]
    public async Task OverThePerAgentLimit_Is503_WithRetryAfter_NamingTheLimit()
    {
        await using var h = await TunnelHarness.StartAsync(Limit(10));
        using var cts = new CancellationTokenSource();
        var ids = Enumerable.Range(0, 10).Select(_ => Guid.NewGuid().ToString("N")).ToArray();
        var hanging = ids.Select(id => h.Client.GetAsync(h.Url($"/hang?id={id}"), cts.Token)).ToArray();
        foreach (var id in ids)
        {
            await h.Backend.StartedSignal(id).Task.Within(TimeSpan.FromSeconds(10));
        }

        using var eleventh = await h.Client.GetAsync(h.Url("/hello"));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, eleventh.StatusCode);
        Assert.NotNull(eleventh.Headers.RetryAfter?.Delta);
        Assert.Equal($"otun: agent '{TunnelHarness.AgentId}' is at its limit of 10 concurrent requests\n", await eleventh.Content.ReadAsStringAsync());

        cts.Cancel();
        foreach (var call in hanging)
        {
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call);
        }
        await PermitsAllBack(h);
        using var after = await h.Client.GetAsync(h.Url("/hello"));
        Assert.Equal("hello", await after.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task WaitingForAPermit_IsBounded_AndServedWhenOneFrees()
    {
        await using var h = await TunnelHarness.StartAsync(o =>
        {
            Limit(1)(o);
            o.Gateway["Gateway:QueueTimeout"] = "00:00:30";
        });
        string id = Guid.NewGuid().ToString("N");
        using var cts = new CancellationTokenSource();
        var holder = h.Client.GetAsync(h.Url($"/hang?id={id}"), cts.Token);
        await h.Backend.StartedSignal(id).Task.Within(TimeSpan.FromSeconds(10));
        var waiter = h.Client.GetAsync(h.Url("/hello"));
        Assert.False(waiter.IsCompleted);
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => holder);
        using var served = await waiter.Within(TimeSpan.FromSeconds(10));
        Assert.Equal("hello", await served.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task IdlePermitsKeptForOneService_DoNotRefuseAnotherServiceOfTheSameAgent()
    {
        await using var h = await TunnelHarness.StartAsync(o =>
        {
            Limit(10)(o);
            // Idle permits stay with the gateway for the whole test: only the refused lease can give them back.
            o.Gateway["Gateway:PermitIdleReturn"] = "00:10:00";
            o.Gateway["Gateway:PermitRenewInterval"] = "00:10:00";
        });
        var pool = h.Gateway.Services.GetRequiredService<PermitPool>();
        var grain = h.Gateway.Services.GetRequiredService<IGrainFactory>().GetGrain<IBackpressureGrain>(TunnelHarness.AgentId);
        using var cts = new CancellationTokenSource();
        var ids = Enumerable.Range(0, 10).Select(_ => Guid.NewGuid().ToString("N")).ToArray();
        var hanging = ids.Select(id => h.Client.GetAsync(h.Url($"/hang?id={id}"), cts.Token)).ToArray();
        foreach (var id in ids)
        {
            await h.Backend.StartedSignal(id).Task.Within(TimeSpan.FromSeconds(10));
        }
        cts.Cancel();
        foreach (var call in hanging)
        {
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call);
        }
        // The burst's permits are idle on this gateway, and the grain still counts all ten as leased.
        await Eventually.TrueAsync(() => pool.Counts(TunnelHarness.AgentId, "backend") == (0, 10), TimeSpan.FromSeconds(20),
            $"expected 10 idle permits of 'backend', got {pool.Counts(TunnelHarness.AgentId, "backend")}");
        Assert.Equal(10, (await grain.GetSnapshot()).Leased);

        using var request = new HttpRequestMessage(HttpMethod.Get, h.Url("/hello"));
        request.Headers.Host = "tls-skip.test";
        using var other = await h.Client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, other.StatusCode);
        Assert.Equal("hello", await other.Content.ReadAsStringAsync());
        Assert.Equal((0, 0), pool.Counts(TunnelHarness.AgentId, "backend"));
    }

    [Fact]
    public async Task AfterTenThousandRequests_WithAbortsAndFailures_EveryPermitIsBack()
    {
        await using var h = await TunnelHarness.StartAsync(Limit(1000));
        var random = new Random(12345);
        using var client = TunnelHarness.NewClient();
        var outcomes = new int[6];
        int plain = 0;
        using var gate = new SemaphoreSlim(64);
        var tasks = new List<Task>();
        for (int i = 0; i < 10_000; i++)
        {
            int kind = random.Next(100) switch { < 70 => 0, < 78 => 1, < 86 => 2, < 94 => 3, _ => 4 };
            int delay = random.Next(1, 20);
            if (kind == 0)
            {
                plain++;
            }
            await gate.WaitAsync();
            tasks.Add(Task.Run(async () =>
            {
                try
                {
                    switch (kind)
                    {
                        case 0:
                            using (var r = await client.GetAsync(h.Url("/hello")))
                            {
                                // At most 64 visitors against a limit of 1000: a plain request is never refused, even while aborted requests still hold permits.
                                Assert.Equal("hello", await r.Content.ReadAsStringAsync());
                            }
                            break;
                        case 1: // visitor aborts while the backend works
                            using (var cts = new CancellationTokenSource(delay))
                            {
                                await client.GetAsync(h.Url($"/sleep?ms=200"), cts.Token);
                            }
                            break;
                        case 2: // backend refuses connections
                            using (var req = new HttpRequestMessage(HttpMethod.Get, h.Url("/")))
                            {
                                req.Headers.Host = "refused.test";
                                using var r = await client.SendAsync(req);
                                await r.Content.ReadAsStringAsync();
                            }
                            break;
                        case 3: // backend breaks off mid-body
                            using (var r = await client.GetAsync(h.Url("/break-mid-body"), HttpCompletionOption.ResponseHeadersRead))
                            {
                                await Hashing.Sha256Async(await r.Content.ReadAsStreamAsync());
                            }
                            break;
                        default: // visitor aborts mid-upload
                            using (var cts = new CancellationTokenSource(delay))
                            {
                                await client.PostAsync(h.Url("/upload"), new GeneratedContent(50_000_000, knownLength: true), cts.Token);
                            }
                            break;
                    }
                    Interlocked.Increment(ref outcomes[kind]);
                }
                catch (Exception ex) when (ex is OperationCanceledException or HttpRequestException or IOException)
                {
                    Interlocked.Increment(ref outcomes[5]);
                }
                finally
                {
                    gate.Release();
                }
            }));
        }
        await Task.WhenAll(tasks).Within(TimeSpan.FromMinutes(3));
        Assert.Equal(plain, outcomes[0]);
        await PermitsAllBack(h);
    }
}
