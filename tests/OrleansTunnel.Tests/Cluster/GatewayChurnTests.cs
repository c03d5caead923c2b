using System.Diagnostics;
using System.Net;
using Microsoft.Extensions.DependencyInjection;
using OrleansTunnel.Gateway.Routing;
using OrleansTunnel.Grains;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace OrleansTunnel.Tests.Cluster;

/// <summary>
/// A gateway is stopped and started 50 times (gracefully and abruptly, in turn) in this test host while
/// the routing grain changes routes many times a second and pushes every change to each gateway's
/// observer, and requests keep flowing through a stable gateway. The test host must survive (a push
/// reaching a stopped gateway's disposed Orleans client once killed it) and every request must get an
/// answer within its timeout.
/// </summary>
public sealed class GatewayChurnTests(ITestOutputHelper output)
{
    private const int Restarts = 50;
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task StoppingAndStartingAGateway50Times_WhileRoutesChange_KillsNothing_AndEveryRequestIsAnswered()
    {
        await using var h = await TunnelHarness.StartAsync();
        var grains = h.Gateway.Services.GetRequiredService<IGrainFactory>();
        var routing = grains.GetGrain<IRoutingGrain>(RoutingGrain.DefaultKey);
        using var stop = new CancellationTokenSource();
        var clock = Stopwatch.StartNew();

        var changed = new ChangeCount();
        var routeChanges = ChangeRoutesAsync(routing, changed, stop.Token);
        var tally = new Tally();
        var requests = Enumerable.Range(0, 4).Select(_ => SendRequestsAsync(h, tally, stop.Token)).ToArray();

        for (int i = 0; i < Restarts; i++)
        {
            var before = tally.Snapshot();
            var step = Stopwatch.StartNew();
            var churned = await h.StartPeerGatewayAsync("gw-churn").Within(TimeSpan.FromSeconds(30));
            var started = step.Elapsed;
            // Route changes land while this gateway lives (a fast restart would otherwise see none):
            // five more are pushed to it before it stops.
            int target = changed.Value + 5;
            await Eventually.TrueAsync(() => changed.Value >= target, TimeSpan.FromSeconds(30), $"route changes stalled during restart {i + 1}");
            if (i % 2 == 0)
            {
                await churned.DisposeAsync().AsTask().Within(TimeSpan.FromSeconds(30));
            }
            else
            {
                // No grace period: the client goes while pushes may still be on their way to it.
                try
                {
                    await churned.App.StopAsync(new CancellationToken(canceled: true)).Within(TimeSpan.FromSeconds(30));
                }
                catch (OperationCanceledException)
                {
                    // The stop was told not to wait: the Orleans client may report that it gave up
                    // its graceful part (OutsideRuntimeClient.StopAsync throws on the cancelled token).
                }
                await churned.App.DisposeAsync().AsTask().Within(TimeSpan.FromSeconds(30));
            }
            var after = tally.Snapshot();
            output.WriteLine($"restart {i + 1} ({(i % 2 == 0 ? "graceful" : "abrupt")} stop): started and ready in {started.TotalSeconds:0.0} s, "
                + $"stopped in {(step.Elapsed - started).TotalSeconds:0.0} s; requests meanwhile {after.Ok - before.Ok} ok, {after.Failed - before.Failed} failed, {after.Hung - before.Hung} hung");
        }

        stop.Cancel();
        int changes = await routeChanges.Within(TimeSpan.FromSeconds(30));
        var counts = await Task.WhenAll(requests).Within(RequestTimeout + TimeSpan.FromSeconds(10));
        var sent = counts.Sum(c => c.Sent);
        var ok = counts.Sum(c => c.Ok);
        var failures = counts.SelectMany(c => c.Failures).ToArray();
        output.WriteLine($"{Restarts} restarts, {changes} route changes, {sent} requests ({ok} answered 200) in {clock.Elapsed.TotalSeconds:0.0} s");

        Assert.True(changes > Restarts * 5, $"only {changes} route changes happened during the churn");
        Assert.True(sent > 0, "no request was sent");
        Assert.True(failures.Length == 0, $"{failures.Length} of {sent} requests got no good answer: {string.Join("; ", failures.Distinct().Take(5))}");
        Assert.Equal(sent, ok);

        // The stable gateway still receives pushes: a route added now reaches its cache.
        var cache = h.Gateway.Services.GetRequiredService<RoutingCache>();
        var seen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        void OnChanged(RoutingSnapshot s)
        {
            if (s.Routes.Any(r => r.Host == "after-churn.test"))
            {
                seen.TrySetResult();
            }
        }
        cache.Changed += OnChanged;
        try
        {
            await routing.UpsertRoute(new Route("after-churn.test", null, "backend"));
            await seen.Task.Within(TimeSpan.FromSeconds(10));
        }
        finally
        {
            cache.Changed -= OnChanged;
        }
    }

    /// <summary>Route changes made so far: written by the changing loop only, read by the restarts.</summary>
    private sealed class ChangeCount
    {
        private int _value;

        public int Value => Volatile.Read(ref _value);

        public void Add() => Interlocked.Increment(ref _value);
    }

    /// <summary>Adds and removes a route as fast as the grain takes it; every change is pushed to every gateway.</summary>
    private static async Task<int> ChangeRoutesAsync(IRoutingGrain routing, ChangeCount changed, CancellationToken stop)
    {
        using var tick = new PeriodicTimer(TimeSpan.FromMilliseconds(20));
        while (!stop.IsCancellationRequested)
        {
            int n = changed.Value;
            string host = $"churn-{n % 8}.test";
            if (n % 2 == 0)
            {
                await routing.UpsertRoute(new Route(host, null, "backend"));
            }
            else
            {
                await routing.RemoveRoute(host, null);
            }
            changed.Add();
            try
            {
                await tick.WaitForNextTickAsync(stop);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
        return changed.Value;
    }

    private sealed record Counts(int Sent, int Ok, List<string> Failures);

    /// <summary>Answers of every request loop so far (ok, failed, no answer within the timeout).</summary>
    private sealed class Tally
    {
        private int _ok;
        private int _failed;
        private int _hung;

        public void Ok() => Interlocked.Increment(ref _ok);

        public void Failed() => Interlocked.Increment(ref _failed);

        public void Hung() => Interlocked.Increment(ref _hung);

        public (int Ok, int Failed, int Hung) Snapshot() => (Volatile.Read(ref _ok), Volatile.Read(ref _failed), Volatile.Read(ref _hung));
    }

    /// <summary>
    /// Requests through the stable gateway, one after another (at most one per 10 ms per loop, so the load
    /// does not starve the gateways being started on a 2-core machine), each bounded by a timeout.
    /// </summary>
    private static async Task<Counts> SendRequestsAsync(TunnelHarness h, Tally tally, CancellationToken stop)
    {
        int sent = 0, ok = 0;
        var failures = new List<string>();
        using var pace = new PeriodicTimer(TimeSpan.FromMilliseconds(10));
        while (!stop.IsCancellationRequested)
        {
            try
            {
                await pace.WaitForNextTickAsync(stop);
            }
            catch (OperationCanceledException)
            {
                break;
            }
            sent++;
            using var timeout = new CancellationTokenSource(RequestTimeout);
            try
            {
                using var response = await h.Client.GetAsync(h.Url("/hello"), timeout.Token);
                string body = await response.Content.ReadAsStringAsync(timeout.Token);
                if (response.StatusCode == HttpStatusCode.OK && body == "hello")
                {
                    ok++;
                    tally.Ok();
                }
                else
                {
                    tally.Failed();
                    failures.Add($"{(int)response.StatusCode}: {body[..Math.Min(body.Length, 200)]}");
                }
            }
            catch (OperationCanceledException) when (timeout.IsCancellationRequested)
            {
                tally.Hung();
                failures.Add($"no answer within {RequestTimeout.TotalSeconds} s");
            }
            catch (HttpRequestException ex)
            {
                tally.Failed();
                failures.Add(ex.Message);
            }
        }
        return new Counts(sent, ok, failures);
    }
}
