using System.Collections.Concurrent;

namespace OrleansTunnel.Gateway.Ingress;

/// <summary>
/// A deadline that also ends when another token (the visitor's RequestAborted) does, reused across
/// requests: a linked source and its timer per request were garbage and timer-queue work on every
/// request. Rent, await with <see cref="CancellationTokenSource.Token"/>, then <see cref="Return"/>;
/// a source that fired is dropped, not reused. (The same idea as YARP's pooled activity token source.)
/// </summary>
internal sealed class PooledTimeout : CancellationTokenSource
{
    private const int MaxPooled = 1024;
    private static readonly ConcurrentQueue<PooledTimeout> Pool = new();
    private static int _pooled;
    private static readonly Action<object?> CancelLinked = static state => ((PooledTimeout)state!).Cancel();

    private CancellationTokenRegistration _linked;

    public static PooledTimeout Rent(TimeSpan timeout, CancellationToken linked)
    {
        if (Pool.TryDequeue(out var source))
        {
            Interlocked.Decrement(ref _pooled);
        }
        else
        {
            source = new PooledTimeout();
        }
        source.CancelAfter(timeout);
        source._linked = linked.UnsafeRegister(CancelLinked, source);
        return source;
    }

    /// <summary>Stops the deadline and the link; the source goes back to the pool when it never fired.</summary>
    public void Return()
    {
        // Dispose waits for a running callback, so nothing can cancel this source once it is pooled.
        _linked.Dispose();
        _linked = default;
        if (TryReset())
        {
            if (Interlocked.Increment(ref _pooled) <= MaxPooled)
            {
                Pool.Enqueue(this);
                return;
            }
            Interlocked.Decrement(ref _pooled);
        }
        Dispose();
    }
}
