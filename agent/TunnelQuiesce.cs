using System.Diagnostics;
using OrleansTunnel.Mux;

namespace OrleansTunnel.Agent;

/// <summary>
/// Closing a tunnel after a go-away without losing a request: the gateway may have sent a request head
/// just before it read the go-away, so the connection closes only once it carried no stream for a quiet
/// period (Agent:GoAwayQuietPeriod, at least four round trips), measured from the go-away.
/// </summary>
public static class TunnelQuiesce
{
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(50);

    /// <summary>Closes <paramref name="mux"/> once quiet, or at once when <paramref name="cancellationToken"/> fires (grace over).</summary>
    public static async Task CloseWhenQuietAsync(MuxConnection mux, TimeSpan quietPeriod, string reason, CancellationToken cancellationToken = default)
    {
        var clock = Stopwatch.StartNew();
        TimeSpan? idleSince = TimeSpan.Zero;
        try
        {
            while (!mux.Closed.IsCancellationRequested)
            {
                var quiet = mux.RoundTripTime is { } rtt && rtt * 4 > quietPeriod ? rtt * 4 : quietPeriod;
                var now = clock.Elapsed;
                if (mux.ActiveStreams > 0)
                {
                    idleSince = null;
                }
                else
                {
                    idleSince ??= now;
                    if (now - idleSince.Value >= quiet)
                    {
                        break;
                    }
                }
                await Task.Delay(Poll, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The grace period is over: close with whatever is still in flight.
        }
        mux.Close(reason);
    }
}
