using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace OrleansTunnel.Gateway.Tunnel;

/// <summary>
/// Graceful shutdown of a gateway. When stopping begins, every agent connection is marked draining
/// (no new requests are sent on it) and told go-away, so agents move to other gateways and close their
/// tunnel once their in-flight requests finished; meanwhile the web server stops accepting visitors and
/// lets in-flight requests finish, up to Gateway:ShutdownGracePeriod (the host's shutdown timeout).
/// </summary>
public sealed partial class GatewayDrain(IHostApplicationLifetime lifetime, ConnectionRegistry registry, ILogger<GatewayDrain> logger) : IHostedService
{
    private CancellationTokenRegistration _stopping;
    private readonly CancellationTokenSource _draining = new();

    /// <summary>True once the gateway began draining.</summary>
    public bool Draining { get; private set; }

    /// <summary>Cancelled when draining begins (peer links and the directory report react to it).</summary>
    public CancellationToken DrainStarted => _draining.Token;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _stopping = lifetime.ApplicationStopping.Register(Drain);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        _stopping.Dispose();
        return Task.CompletedTask;
    }

    private void Drain()
    {
        Draining = true;
        try
        {
            _draining.Cancel();
        }
        catch (AggregateException)
        {
            // A reaction failed; the drain of agent connections goes on regardless.
        }
        var connections = registry.All;
        LogDraining(logger, connections.Count);
        foreach (var connection in connections)
        {
            connection.Draining = true;
            connection.Mux.SendGoAway("the gateway is shutting down");
        }
    }

    [LoggerMessage(EventId = 420, EventName = "GatewayDraining", Level = LogLevel.Information,
        Message = "Gateway stopping: told {Connections} agent connections to go away; in-flight requests finish within the shutdown grace period.")]
    private static partial void LogDraining(ILogger logger, int connections);
}
