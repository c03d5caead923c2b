using Microsoft.Extensions.Hosting;

namespace OrleansTunnel.Gateway.L4;

/// <summary>
/// Start and stop of the listeners configured in Gateway:TcpServices or Gateway:UdpServices (shared by
/// <see cref="TcpServices"/> and <see cref="UdpServices"/>): each is bound at start, before the host reports
/// started, so a port in use fails the start with a clear message; run-time mappings use <see cref="Open"/> too.
/// </summary>
public abstract class ConfiguredListeners : IHostedService
{
    private readonly List<L4Listener> _configured = [];

    /// <summary>Cancelled when the service stops for good; every listener's token is linked to it.</summary>
    protected CancellationTokenSource Stopping { get; } = new();

    /// <summary>The configured services of this kind.</summary>
    protected abstract IReadOnlyList<L4ServiceOptions> Configured { get; }

    /// <summary>Starts listening for one service (configured, or a run-time mapping); dispose the result to stop.</summary>
    public abstract L4Listener Open(L4ServiceOptions service);

    public virtual Task StartAsync(CancellationToken cancellationToken)
    {
        foreach (var service in Configured)
        {
            _configured.Add(Open(service));
        }
        return Task.CompletedTask;
    }

    /// <summary>Ends everything at once: what is open is cancelled, then the listeners close.</summary>
    public virtual async Task StopAsync(CancellationToken cancellationToken)
    {
        Stopping.Cancel();
        await CloseListenersAsync();
    }

    /// <summary>Closes the configured listeners (no new connections or flows); what is open goes on.</summary>
    protected async Task CloseListenersAsync()
    {
        foreach (var listener in _configured)
        {
            await listener.DisposeAsync();
        }
        _configured.Clear();
    }
}
