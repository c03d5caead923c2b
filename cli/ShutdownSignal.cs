using System.Runtime.InteropServices;
using Microsoft.Extensions.Hosting;

namespace OrleansTunnel.Cli;

/// <summary>
/// SIGINT / SIGTERM / SIGQUIT for the whole process. The hosts run without their own console
/// lifetime (a process may hold several), so this is the one place that turns a signal into a stop.
/// </summary>
internal sealed class ShutdownSignal : IDisposable
{
    private readonly CancellationTokenSource _cts = new();
    private readonly PosixSignalRegistration[] _registrations;

    public ShutdownSignal()
    {
        _registrations =
        [
            PosixSignalRegistration.Create(PosixSignal.SIGINT, Handle),
            PosixSignalRegistration.Create(PosixSignal.SIGTERM, Handle),
            PosixSignalRegistration.Create(PosixSignal.SIGQUIT, Handle),
        ];
    }

    public CancellationToken Token => _cts.Token;

    /// <summary>Completes on a signal or when any of the hosts stops by itself (a failure).</summary>
    public Task WaitAsync(params IHost[] hosts)
    {
        var stops = hosts.Select(h => h.Services.GetService(typeof(IHostApplicationLifetime)) as IHostApplicationLifetime)
            .Where(l => l is not null)
            .Select(l => Task.Delay(Timeout.Infinite, l!.ApplicationStopping).ContinueWith(_ => { }, TaskScheduler.Default));
        var signal = Task.Delay(Timeout.Infinite, _cts.Token).ContinueWith(_ => { }, TaskScheduler.Default);
        return Task.WhenAny(stops.Append(signal));
    }

    private void Handle(PosixSignalContext context)
    {
        context.Cancel = true;
        _cts.Cancel();
    }

    public void Dispose()
    {
        foreach (var r in _registrations)
        {
            r.Dispose();
        }
        _cts.Dispose();
    }
}

/// <summary>A host lifetime that does nothing: <see cref="ShutdownSignal"/> stops the hosts.</summary>
internal sealed class ManualLifetime : IHostLifetime
{
    public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
