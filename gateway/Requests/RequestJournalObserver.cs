using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OrleansTunnel.Grains;

namespace OrleansTunnel.Gateway.Requests;

/// <summary>
/// Makes this gateway's <see cref="RequestJournal"/> reachable from the cluster: registers an observer
/// with the <see cref="IGatewayJournalGrain"/> of this gateway's id, renews it every
/// Gateway:ClusterHeartbeatInterval (a re-activated grain forgets it), and removes it (and deletes the
/// observer reference) when the gateway stops, so no cluster call reaches a stopped gateway.
/// </summary>
public sealed partial class RequestJournalObserver(
    RequestJournal journal,
    IGrainFactory grains,
    IOptions<GatewayOptions> options,
    ILogger<RequestJournalObserver> logger) : BackgroundService, IRequestJournalObserver
{
    private IRequestJournalObserver? _reference;
    private bool _failing;

    Task<RequestSnapshot?> IRequestJournalObserver.Lookup(string requestId) => Task.FromResult(journal.Lookup(requestId));

    Task<CancelResult> IRequestJournalObserver.Cancel(string requestId, string reason) => Task.FromResult(journal.Cancel(requestId, reason));

    Task<RequestSummary[]> IRequestJournalObserver.List(RequestQuery query) => Task.FromResult(journal.List(query));

    private IGatewayJournalGrain Registry => grains.GetGrain<IGatewayJournalGrain>(journal.GatewayId);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var interval = options.Value.ClusterHeartbeatInterval;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                _reference ??= grains.CreateObjectReference<IRequestJournalObserver>(this);
                await Registry.Register(journal.Incarnation, _reference).WaitAsync(stoppingToken);
                if (_failing)
                {
                    LogRegistered(logger);
                    _failing = false;
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                if (!_failing)
                {
                    LogRegisterFailed(logger, ex.Message);
                    _failing = true;
                }
            }
            try
            {
                await Task.Delay(_failing ? TimeSpan.FromSeconds(1) : interval, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        if (_reference is { } reference)
        {
            try
            {
                await Registry.Unregister(journal.Incarnation).WaitAsync(TimeSpan.FromSeconds(2), cancellationToken);
            }
            catch (Exception ex)
            {
                LogUnregisterFailed(logger, ex.Message);
            }
            grains.DeleteObjectReference<IRequestJournalObserver>(reference);
            _reference = null;
        }
    }

    [LoggerMessage(EventId = 520, EventName = "RequestJournalRegisterFailed", Level = LogLevel.Warning,
        Message = "Could not register this gateway's request journal in the cluster ({Error}); look-ups and cancels by request id from other nodes fail until it is. Retrying every second; check the silos.")]
    private static partial void LogRegisterFailed(ILogger logger, string error);

    [LoggerMessage(EventId = 521, EventName = "RequestJournalRegistered", Level = LogLevel.Information,
        Message = "This gateway's request journal is registered in the cluster again.")]
    private static partial void LogRegistered(ILogger logger);

    [LoggerMessage(EventId = 522, EventName = "RequestJournalUnregisterFailed", Level = LogLevel.Debug,
        Message = "Could not remove this gateway's request journal from the cluster while stopping ({Error}); look-ups then report the gateway unreachable.")]
    private static partial void LogUnregisterFailed(ILogger logger, string error);
}
