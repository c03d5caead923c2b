using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OrleansTunnel.Gateway.Routing;
using OrleansTunnel.Gateway.Tunnel;
using OrleansTunnel.Grains;
using OrleansTunnel.Protocol.V1;

namespace OrleansTunnel.Gateway.Cluster;

/// <summary>
/// Keeps this gateway in the cluster's gateway directory: reports itself and the agent sessions it
/// holds every Gateway:ClusterHeartbeatInterval and right after a tunnel opens or closes. If the
/// directory declared it dead (it was cut off longer than Directory:GatewayTimeToLive), it fences
/// itself: closes its agent tunnels and gateway links, takes a new incarnation and rejoins. It also
/// tells its agents the tunnel URLs of the live gateways (config frames), so they spread their
/// connections over distinct gateways.
/// </summary>
public sealed partial class ClusterPresence(
    IGrainFactory grains,
    ConnectionRegistry registry,
    RoutingCache routing,
    PeerLinks peers,
    GatewayIdentity identity,
    GatewayDrain drain,
    RoutingSubscriber subscriber,
    IOptions<GatewayOptions> options,
    ILogger<ClusterPresence> logger) : BackgroundService
{
    private readonly SemaphoreSlim _changed = new(0, 1);
    private DateTimeOffset _joinedAt = DateTimeOffset.UtcNow;
    private string[] _advertisedToAgents = [];
    private bool _reported;
    private bool _acceptedThisIncarnation;
    private bool _failing;

    /// <summary>The agent-facing tunnel URLs of the cluster's live gateways (GatewayInfo.AgentTunnelUrl), as last sent to agents.</summary>
    public string[] GatewayUrls => Volatile.Read(ref _advertisedToAgents);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        registry.Changed += Signal;
        routing.Changed += OnRoutingChanged;
        registry.Added += SendConfig;
        // Draining: report at once without sessions, so the other gateways stop routing here.
        using var draining = drain.DrainStarted.Register(Signal);
        try
        {
            var interval = options.Value.ClusterHeartbeatInterval;
            while (!stoppingToken.IsCancellationRequested)
            {
                await ReportAsync(stoppingToken);
                // Coalesce bursts of tunnel changes: wait for the next change or the next heartbeat.
                try
                {
                    await _changed.WaitAsync(interval, stoppingToken);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
        }
        finally
        {
            registry.Changed -= Signal;
            routing.Changed -= OnRoutingChanged;
            registry.Added -= SendConfig;
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        // Unsubscribe before leaving: the leave's change push must not reach this stopping gateway.
        await subscriber.StopPushesAsync();
        if (_reported)
        {
            try
            {
                await grains.GetGrain<IRoutingGrain>(RoutingGrain.DefaultKey).LeaveGateway(identity.GatewayId, identity.Incarnation).WaitAsync(TimeSpan.FromSeconds(2), cancellationToken);
            }
            catch (Exception ex)
            {
                LogLeaveFailed(logger, ex.Message);
            }
        }
    }

    private void Signal()
    {
        try
        {
            _changed.Release();
        }
        catch (SemaphoreFullException)
        {
            // A report is already due.
        }
    }

    private async Task ReportAsync(CancellationToken cancellationToken)
    {
        // A draining gateway stops offering its sessions: the others route around it at once.
        var sessions = drain.Draining ? [] : registry.All
            // Open and not going away; a connection momentarily at its stream limit stays listed (no churn).
            .Where(c => !c.Draining && !c.Mux.GoAwayReceived && !c.Mux.Closed.IsCancellationRequested)
            .Select(c => new HeldSession(c.AgentId, c.Session.SessionId, c.Session.Services, c.Health.Unhealthy is { Length: > 0 } u ? u : null))
            .OrderBy(s => s.SessionId, StringComparer.Ordinal)
            .ToArray();
        try
        {
            // Inside the try: before the Orleans client connected, even resolving the grain type fails.
            var routingGrain = grains.GetGrain<IRoutingGrain>(RoutingGrain.DefaultKey);
            var result = await routingGrain.ReportGateway(new GatewayReport(identity.Info(_joinedAt), sessions)).WaitAsync(cancellationToken);
            if (!result.Accepted)
            {
                if (result.NewerIncarnationExists && _acceptedThisIncarnation)
                {
                    // Another live process reports with this gateway id: do not fight it (each would fence the other).
                    LogDuplicateId(logger, identity.GatewayId, result.Reason ?? "refused");
                    return;
                }
                if (result.NewerIncarnationExists)
                {
                    // A restart on a host whose clock is behind the previous incarnation's: take a newer one.
                    identity.Renew(result.NextIncarnation);
                }
                else
                {
                    LogFenced(logger, identity.GatewayId, result.Reason ?? "refused");
                    foreach (var connection in registry.All)
                    {
                        connection.Mux.Close("the cluster declared this gateway dead; reconnect");
                    }
                    peers.CloseAll("this gateway was fenced");
                    identity.Renew(result.NextIncarnation);
                }
                _acceptedThisIncarnation = false;
                _joinedAt = DateTimeOffset.UtcNow;
                await Task.Delay(TimeSpan.FromMilliseconds(200), cancellationToken);
                Signal();
                return;
            }
            _reported = true;
            _acceptedThisIncarnation = true;
            identity.MarkJoined();
            if (_failing)
            {
                _failing = false;
                LogReportRecovered(logger);
            }
            if (result.Version > routing.Current.Snapshot.Version)
            {
                // A missed push, or the routing grain was re-activated (its silo died) and lost this
                // gateway's subscription: subscribe again, which also applies the current snapshot.
                subscriber.Renew();
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        catch (Exception ex)
        {
            if (!_failing)
            {
                _failing = true;
                LogReportFailed(logger, ex.Message);
            }
        }
    }

    private void OnRoutingChanged(RoutingSnapshot snapshot)
    {
        var urls = snapshot.Gateways.Select(g => g.AgentTunnelUrl).Where(u => !string.IsNullOrEmpty(u)).Order(StringComparer.Ordinal).ToArray();
        if (urls.SequenceEqual(Volatile.Read(ref _advertisedToAgents)))
        {
            return;
        }
        Volatile.Write(ref _advertisedToAgents, urls);
        foreach (var connection in registry.All)
        {
            SendConfig(connection);
        }
    }

    private void SendConfig(AgentConnection connection)
    {
        var urls = Volatile.Read(ref _advertisedToAgents);
        if (urls.Length == 0)
        {
            return;
        }
        var config = new Config();
        config.Gateways.AddRange(urls);
        connection.Mux.SendConnectionFrame(new Frame { Config = config });
    }

    [LoggerMessage(EventId = 620, EventName = "GatewayFenced", Level = LogLevel.Warning,
        Message = "The cluster refused this gateway's report ('{GatewayId}': {Reason}). Closing its agent tunnels and gateway links and rejoining with a new incarnation; agents reconnect by themselves.")]
    private static partial void LogFenced(ILogger logger, string gatewayId, string reason);

    [LoggerMessage(EventId = 624, EventName = "GatewayDuplicateId", Level = LogLevel.Error,
        Message = "The cluster refused this gateway's report ('{GatewayId}': {Reason}). Give every gateway its own Gateway:GatewayId; this one keeps serving its own tunnels but other gateways route by the other process's report.")]
    private static partial void LogDuplicateId(ILogger logger, string gatewayId, string reason);

    [LoggerMessage(EventId = 621, EventName = "GatewayReportFailed", Level = LogLevel.Warning,
        Message = "Could not report this gateway to the cluster's directory: {Error}. Retrying every heartbeat; if this lasts longer than Directory:GatewayTimeToLive the other gateways stop routing through this one. Check the silos.")]
    private static partial void LogReportFailed(ILogger logger, string error);

    [LoggerMessage(EventId = 622, EventName = "GatewayReportRecovered", Level = LogLevel.Information,
        Message = "Reports to the cluster's directory succeed again.")]
    private static partial void LogReportRecovered(ILogger logger);

    [LoggerMessage(EventId = 623, EventName = "GatewayLeaveFailed", Level = LogLevel.Debug,
        Message = "Could not tell the directory this gateway left ({Error}); it is declared dead after Directory:GatewayTimeToLive.")]
    private static partial void LogLeaveFailed(ILogger logger, string error);
}
