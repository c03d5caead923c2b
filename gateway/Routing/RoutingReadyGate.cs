using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace OrleansTunnel.Gateway.Routing;

/// <summary>
/// Holds the gateway's start until the first routing snapshot is applied. The web server starts after
/// every other hosted service, so a (re)started gateway opens its ingress only once it knows the routes:
/// a load balancer that sends it a visitor the moment the port accepts never gets "no route" from a
/// gateway that has not loaded them yet.
/// </summary>
public sealed partial class RoutingReadyGate(RoutingSubscriber subscriber, ILogger<RoutingReadyGate> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (!subscriber.Ready.IsCompleted)
        {
            LogWaiting(logger);
        }
        await subscriber.Ready.WaitAsync(cancellationToken);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [LoggerMessage(EventId = 430, EventName = "WaitingForRoutes", Level = LogLevel.Information,
        Message = "Gateway starting: the ingress opens once the routing table is loaded from the cluster.")]
    private static partial void LogWaiting(ILogger logger);
}
