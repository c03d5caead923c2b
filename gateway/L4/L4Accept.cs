using System.Net.Sockets;
using OrleansTunnel.Mux.L4;

namespace OrleansTunnel.Gateway.L4;

/// <summary>The accept loop of a TCP listener (TCP services and TLS passthrough): checks, a connection cap, one task per connection.</summary>
internal static class L4Accept
{
    /// <summary>
    /// Accepts until <paramref name="listening"/> is cancelled or the listener closes. A visitor that
    /// <paramref name="check"/> refuses (it returns why), or one over <paramref name="maxConnections"/> open at once,
    /// is passed to <paramref name="refused"/> (to count and log) and its socket reset at once; the others run
    /// <paramref name="handle"/> on the thread pool.
    /// </summary>
    public static async Task LoopAsync(Socket listener, int maxConnections, string capKey, Func<Socket, string?> check,
        Action<Socket, string> refused, Func<Socket, Task> handle, CancellationToken listening)
    {
        int active = 0;
        while (!listening.IsCancellationRequested)
        {
            Socket visitor;
            try
            {
                visitor = await listener.AcceptAsync(listening);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            catch (SocketException)
            {
                continue;
            }
            string? refusal = check(visitor);
            if (refusal is null && Interlocked.Increment(ref active) > maxConnections)
            {
                Interlocked.Decrement(ref active);
                refusal = $"the listener is at its limit of {maxConnections} connections ({capKey})";
            }
            if (refusal is not null)
            {
                refused(visitor, refusal);
                TcpRelay.Abort(visitor);
                continue;
            }
            _ = Task.Run(async () =>
            {
                try
                {
                    await handle(visitor);
                }
                finally
                {
                    Interlocked.Decrement(ref active);
                }
            }, CancellationToken.None);
        }
    }
}
