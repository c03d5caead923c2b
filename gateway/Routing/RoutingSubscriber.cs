using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OrleansTunnel.Grains;

namespace OrleansTunnel.Gateway.Routing;

/// <summary>
/// Seeds configured routes into the routing grain, subscribes the gateway's cache as an observer and
/// renews the subscription (and re-reads the snapshot) periodically, so a lost push or a restarted
/// silo heals by itself.
/// </summary>
public sealed partial class RoutingSubscriber(
    IGrainFactory grains,
    RoutingCache cache,
    IOptions<GatewayOptions> options,
    ILogger<RoutingSubscriber> logger) : BackgroundService
{
    /// <summary>How often the subscription is renewed.</summary>
    public static readonly TimeSpan RenewInterval = TimeSpan.FromSeconds(30);

    private readonly SemaphoreSlim _renew = new(0, 1);
    private readonly TaskCompletionSource _firstSnapshot = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes once routes were seeded and a first snapshot applied.</summary>
    public Task Ready => _firstSnapshot.Task;

    private readonly Lock _referenceLock = new();
    private IRoutingObserver? _reference;
    private bool _stopped;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var delay = TimeSpan.FromMilliseconds(200);
        bool seeded = false;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                var routing = grains.GetGrain<IRoutingGrain>(RoutingGrain.DefaultKey);
                if (!seeded)
                {
                    foreach (var route in options.Value.Routes)
                    {
                        await routing.UpsertRoute(new Route(route.Host, route.PathPrefix, route.Service, route.MaxRequestBodySize,
                            route.Access, route.CredentialSha256?.ToLowerInvariant(), route.AllowedNetworks.Count > 0 ? [.. route.AllowedNetworks] : null, route.Capture.Bytes, route.PathMode,
                            OrleansTunnel.Gateway.Policy.PolicyConfig.ToRewrite(route.Rewrite), OrleansTunnel.Gateway.Policy.PolicyConfig.ToRateLimit(route.RateLimit))
                        {
                            Identity = route.Identity?.ToRecord(),
                            Resilience = OrleansTunnel.Gateway.Health.RouteResilienceConfig.ToRecord(route.Resilience),
                        });
                    }
                    seeded = true;
                }
                var reference = CurrentReference();
                if (reference is null)
                {
                    break;
                }
                cache.Apply(await routing.Subscribe(reference));
                if (Volatile.Read(ref _stopped))
                {
                    // Pushes were stopped while this subscription was on its way: take it back, so the
                    // grain does not push to the deleted reference until the subscription expires.
                    await routing.Unsubscribe(reference).WaitAsync(TimeSpan.FromSeconds(2), CancellationToken.None);
                    break;
                }
                if (_firstSnapshot.TrySetResult())
                {
                    LogSubscribed(logger, cache.Current.Routes.Count);
                }
                delay = TimeSpan.FromMilliseconds(200);
                await _renew.WaitAsync(RenewInterval, stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex)
            {
                LogSubscribeFailed(logger, ex.Message, delay.TotalMilliseconds);
                await Task.Delay(delay, stoppingToken).ContinueWith(_ => { }, TaskScheduler.Default);
                delay = TimeSpan.FromMilliseconds(Math.Min(delay.TotalMilliseconds * 2, 5000));
            }
        }
        await StopPushesAsync();
    }

    /// <summary>The observer reference, made on first use; null once pushes were stopped.</summary>
    private IRoutingObserver? CurrentReference()
    {
        lock (_referenceLock)
        {
            return _stopped ? null : _reference ??= grains.CreateObjectReference<IRoutingObserver>(cache);
        }
    }

    /// <summary>
    /// Stops the routing grain's pushes to this gateway for good: unsubscribes and deletes the
    /// observer reference, so no push can reach an observer whose Orleans client is being disposed
    /// (Orleans rejects such a call on a thread-pool thread through the disposed client, which kills
    /// the process). Call it before this gateway leaves the directory; idempotent.
    /// </summary>
    public async Task StopPushesAsync()
    {
        IRoutingObserver? reference;
        lock (_referenceLock)
        {
            _stopped = true;
            reference = _reference;
            _reference = null;
        }
        if (reference is null)
        {
            return;
        }
        try
        {
            await grains.GetGrain<IRoutingGrain>(RoutingGrain.DefaultKey).Unsubscribe(reference).WaitAsync(TimeSpan.FromSeconds(2));
        }
        catch (Exception ex)
        {
            // The grain's observer list expires us; deleting the reference below already makes late pushes harmless.
            LogUnsubscribeFailed(logger, ex.Message);
        }
        try
        {
            // Late pushes now find no local object and are dropped instead of being invoked or rejected.
            grains.DeleteObjectReference<IRoutingObserver>(reference);
        }
        catch (ObjectDisposedException)
        {
            // The client is already gone, and its observers with it.
        }
    }

    private readonly SemaphoreSlim _refreshGate = new(1, 1);
    private long _lastRefreshTicks = long.MinValue / 2;

    /// <summary>
    /// Re-reads the snapshot from the routing grain, one read at a time and at most one a second (callers
    /// triggered by unauthenticated input cannot flood the grain).
    /// </summary>
    public async Task RefreshAsync()
    {
        await _refreshGate.WaitAsync();
        try
        {
            if (Environment.TickCount64 - _lastRefreshTicks < 1000)
            {
                return;
            }
            _lastRefreshTicks = Environment.TickCount64;
            cache.Apply(await grains.GetGrain<IRoutingGrain>(RoutingGrain.DefaultKey).GetSnapshot());
        }
        finally
        {
            _refreshGate.Release();
        }
    }

    /// <summary>Renews the subscription now (the routing grain may have been re-activated without it).</summary>
    public void Renew()
    {
        try
        {
            _renew.Release();
        }
        catch (SemaphoreFullException)
        {
            // A renewal is already due.
        }
    }

    [LoggerMessage(EventId = 300, EventName = "RoutingSubscribed", Level = LogLevel.Information,
        Message = "Routing table loaded from the cluster ({Routes} routes); changes are pushed to this gateway.")]
    private static partial void LogSubscribed(ILogger logger, int routes);

    [LoggerMessage(EventId = 301, EventName = "RoutingSubscribeFailed", Level = LogLevel.Warning,
        Message = "Could not read the routing table from the cluster ({Error}); retrying in {DelayMs} ms. Check that a silo is up and reachable.")]
    private static partial void LogSubscribeFailed(ILogger logger, string error, double delayMs);

    [LoggerMessage(EventId = 302, EventName = "RoutingUnsubscribeFailed", Level = LogLevel.Information,
        Message = "Stopping: could not unsubscribe from routing pushes ({Error}); the routing grain drops this gateway's observer when its subscription expires. Nothing to do.")]
    private static partial void LogUnsubscribeFailed(ILogger logger, string error);
}
