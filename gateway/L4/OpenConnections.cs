using System.Collections.Concurrent;
using System.Net.Sockets;
using OrleansTunnel.Mux.L4;

namespace OrleansTunnel.Gateway.L4;

/// <summary>The visitor sockets of the TCP connections being relayed (TCP services and TLS passthrough), for the drain.</summary>
internal sealed class OpenConnections
{
    private readonly ConcurrentDictionary<Socket, byte> _open = new();
    private TaskCompletionSource? _empty;

    public int Count => _open.Count;

    public void Add(Socket visitor) => _open.TryAdd(visitor, 0);

    public void Remove(Socket visitor)
    {
        _open.TryRemove(visitor, out _);
        if (_open.IsEmpty)
        {
            Volatile.Read(ref _empty)?.TrySetResult();
        }
    }

    /// <summary>Waits for every open connection to end, up to <paramref name="grace"/> (or until cancelled); then resets the rest and returns how many.</summary>
    public async Task<int> DrainAsync(TimeSpan grace, CancellationToken cancellationToken)
    {
        var empty = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Volatile.Write(ref _empty, empty);
        if (_open.IsEmpty)
        {
            return 0;
        }
        try
        {
            await empty.Task.WaitAsync(grace, cancellationToken);
            return 0;
        }
        catch (Exception ex) when (ex is TimeoutException or OperationCanceledException)
        {
        }
        int closed = 0;
        foreach (var visitor in _open.Keys)
        {
            TcpRelay.Abort(visitor);
            closed++;
        }
        return closed;
    }
}
