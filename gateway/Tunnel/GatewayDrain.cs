using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace OrleansTunnel.Gateway.Tunnel;

/// <summary>
/// Graceful shutdown of a gateway, in the order a rolling restart needs:
/// 1. draining begins (on the host's stopping, before any service stops): the admin /readyz answers
///    503, every agent connection is marked draining (no new requests on it) and told go-away, linked
///    gateways are told go-away, the directory report lists no sessions;
/// 2. for Gateway:DrainDelay the ingress keeps serving visitors (their requests go to the agents'
///    other gateways through the peer links), so load balancers and agents move first;
/// 3. then the web server stops accepting and lets in-flight requests finish, up to
///    Gateway:ShutdownGracePeriod; then the other services stop and the process exits.
/// </summary>
public sealed partial class GatewayDrain(
    IHostApplicationLifetime lifetime,
    ConnectionRegistry registry,
    IOptions<GatewayOptions> options,
    ILogger<GatewayDrain> logger) : IHostedLifecycleService
{
    private CancellationTokenRegistration _stopping;
    private readonly CancellationTokenSource _draining = new();
    private readonly TaskCompletionSource _delayOver = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _began;

    /// <summary>True once the gateway began draining.</summary>
    public bool Draining { get; private set; }

    /// <summary>Cancelled when draining begins (peer links and the directory report react to it).</summary>
    public CancellationToken DrainStarted => _draining.Token;

    /// <summary>
    /// Completes when the drain delay is over (new visitors are refused from then on): the TCP listeners close
    /// and their open connections' grace period starts then, alongside the web server's, not after its stop.
    /// </summary>
    public Task DelayOver => _delayOver.Task;

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _stopping = lifetime.ApplicationStopping.Register(BeginDrain);
        return Task.CompletedTask;
    }

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>
    /// Runs before any hosted service stops (this one is registered after the Orleans client, and the
    /// web server stops only after every StoppingAsync): drain, then keep serving for the drain delay.
    /// </summary>
    public async Task StoppingAsync(CancellationToken cancellationToken)
    {
        BeginDrain();
        var delay = options.Value.DrainDelay;
        if (delay <= TimeSpan.Zero)
        {
            _delayOver.TrySetResult();
            return;
        }
        LogDelay(logger, delay.TotalSeconds);
        try
        {
            await Task.Delay(delay, cancellationToken);
        }
        catch (OperationCanceledException)
        {
            // The host's shutdown timeout ran out: stop at once.
        }
        LogDelayOver(logger, options.Value.ShutdownGracePeriod.TotalSeconds);
        _delayOver.TrySetResult();
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        _delayOver.TrySetResult();
        _stopping.Dispose();
        return Task.CompletedTask;
    }

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Starts draining (once; later calls do nothing).</summary>
    public void BeginDrain()
    {
        if (Interlocked.Exchange(ref _began, 1) != 0)
        {
            return;
        }
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
        LogDraining(logger, connections.Count, options.Value.DrainDelay.TotalSeconds);
        foreach (var connection in connections)
        {
            connection.Draining = true;
            connection.Mux.SendGoAway("the gateway is shutting down");
        }
    }

    [LoggerMessage(EventId = 420, EventName = "GatewayDraining", Level = LogLevel.Information,
        Message = "Gateway stopping: /readyz now answers 503, told {Connections} agent connections and the linked gateways to go away; visitors are still served for {DrainDelaySeconds:0.#} s (Gateway:DrainDelay).")]
    private static partial void LogDraining(ILogger logger, int connections, double drainDelaySeconds);

    [LoggerMessage(EventId = 421, EventName = "GatewayDrainDelay", Level = LogLevel.Information,
        Message = "Gateway draining: serving visitors for {Seconds:0.#} s more while load balancers and agents move.")]
    private static partial void LogDelay(ILogger logger, double seconds);

    [LoggerMessage(EventId = 422, EventName = "GatewayDrainDelayOver", Level = LogLevel.Information,
        Message = "Gateway draining: drain delay over; no new visitors are accepted, in-flight requests finish within {Seconds:0.#} s (Gateway:ShutdownGracePeriod).")]
    private static partial void LogDelayOver(ILogger logger, double seconds);
}
