using Microsoft.AspNetCore.Connections;

namespace OrleansTunnel.Gateway.Ingress;

/// <summary>
/// Bounds concurrent visitor connections over all ingress listeners (Gateway:MaxIngressConnections).
/// Kestrel's MaxConcurrentConnections is server-wide and would let visitors lock agents out of the
/// tunnel listener; this counts ingress connections only and closes the ones over the limit at once.
/// </summary>
public sealed class IngressConnectionLimit(int max)
{
    private long _open;
    private long _refused;

    /// <summary>Visitor connections open now.</summary>
    public long Open => Interlocked.Read(ref _open);

    /// <summary>Visitor connections closed at once because the limit was reached.</summary>
    public long Refused => Interlocked.Read(ref _refused);

    public ConnectionDelegate Wrap(ConnectionDelegate next) => async connection =>
    {
        long open = Interlocked.Increment(ref _open);
        try
        {
            if (max > 0 && open > max)
            {
                Interlocked.Increment(ref _refused);
                return;
            }
            await next(connection);
        }
        finally
        {
            Interlocked.Decrement(ref _open);
        }
    };
}
