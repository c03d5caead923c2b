using System.Buffers;
using System.Diagnostics;
using System.Net.Sockets;
using OrleansTunnel.Protocol.V1;

namespace OrleansTunnel.Mux.L4;

/// <summary>How a relayed TCP connection ended.</summary>
public sealed record TcpRelayResult(long BytesUp, long BytesDown, string? Failure);

/// <summary>
/// Relays one TCP connection over one tunnel stream, both ways at once (used by the gateway towards the
/// visitor and by the agent towards the backend). Bytes read from the socket go up as data frames under
/// the stream's credit; data frames from the peer are written to the socket and their credit returned
/// once written. End of body is a half-close: reading end-of-file sends it, receiving it shuts down the
/// socket's sending side. A reset either way closes the socket with a TCP RST; an error on the socket
/// resets the stream. Idle for <c>idleTimeout</c> (no byte either way) resets the stream too.
/// </summary>
public static class TcpRelay
{
    public static async Task<TcpRelayResult> RunAsync(Socket socket, MuxStream stream, int bufferSize, TimeSpan idleTimeout,
        ResetCode socketErrorCode, string socketName, Action<long, long>? onBytes = null)
    {
        var state = new RelayState(onBytes);
        using var done = new CancellationTokenSource();
        var watchdog = idleTimeout > TimeSpan.Zero && idleTimeout != Timeout.InfiniteTimeSpan
            ? WatchIdleAsync(stream, state, idleTimeout, done.Token) : Task.CompletedTask;
        var up = PumpUpAsync(socket, stream, state, bufferSize, socketErrorCode, socketName);
        var down = PumpDownAsync(socket, stream, state);
        await Task.WhenAll(up, down).ConfigureAwait(false);
        done.Cancel();
        await watchdog.ConfigureAwait(false);
        if (stream.AbortReason is { } reset)
        {
            Abort(socket);
            return new TcpRelayResult(state.Up, state.Down, state.IdleClosed ? $"idle for {idleTimeout.TotalSeconds:0.#} s (closed)" : $"reset ({reset.Code}): {reset.Reason}");
        }
        socket.Dispose();
        return new TcpRelayResult(state.Up, state.Down, null);
    }

    /// <summary>Closes a socket with a TCP RST (linger 0), so the other end learns of a reset, not a clean end.</summary>
    public static void Abort(Socket socket)
    {
        try
        {
            socket.LingerState = new LingerOption(true, 0);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
        }
        socket.Dispose();
    }

    private sealed class RelayState(Action<long, long>? onBytes)
    {
        public long Up;
        public long Down;
        public long LastActivity = Stopwatch.GetTimestamp();
        public volatile bool IdleClosed;

        public void Touch(long up, long down)
        {
            Volatile.Write(ref LastActivity, Stopwatch.GetTimestamp());
            onBytes?.Invoke(up, down);
        }
    }

    private static async Task PumpUpAsync(Socket socket, MuxStream stream, RelayState state, int bufferSize, ResetCode errorCode, string socketName)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(bufferSize);
        var cancel = stream.Aborted;
        try
        {
            while (true)
            {
                int n = await socket.ReceiveAsync(buffer.AsMemory(0, bufferSize), SocketFlags.None, cancel).ConfigureAwait(false);
                if (n == 0)
                {
                    await stream.SendDataAsync(ReadOnlyMemory<byte>.Empty, endOfBody: true, cancel).ConfigureAwait(false);
                    return;
                }
                state.Up += n;
                state.Touch(n, 0);
                await stream.SendDataAsync(buffer.AsMemory(0, n), endOfBody: false, cancel).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or MuxStreamAbortedException or ObjectDisposedException)
        {
            // The stream was reset (by the peer, the idle watchdog or the other pump): the caller closes the socket.
        }
        catch (SocketException ex)
        {
            stream.Reset(errorCode, $"the {socketName} connection broke: {ex.SocketErrorCode}");
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static async Task PumpDownAsync(Socket socket, MuxStream stream, RelayState state)
    {
        var cancel = stream.Aborted;
        try
        {
            while (await stream.ReadAsync(CancellationToken.None).ConfigureAwait(false) is { } frame)
            {
                switch (frame.KindCase)
                {
                    case Frame.KindOneofCase.Data:
                        int length = frame.Data.Payload.Length;
                        if (length > 0)
                        {
                            await socket.SendAsync(frame.Data.Payload.Memory, SocketFlags.None, cancel).ConfigureAwait(false);
                            // The kernel has the bytes: the payload's pooled buffer can go back.
                            frame.Data.ReleasePayload();
                            state.Down += length;
                            state.Touch(0, length);
                            stream.ReturnCredit(length);
                        }
                        if (frame.Data.EndOfBody)
                        {
                            socket.Shutdown(SocketShutdown.Send);
                            return;
                        }
                        break;
                    case Frame.KindOneofCase.Trailers:
                        socket.Shutdown(SocketShutdown.Send);
                        return;
                    case Frame.KindOneofCase.Reset:
                        return;
                    default:
                        // A response head (the gateway reads the agent's before relaying) carries nothing here.
                        break;
                }
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException)
        {
        }
        catch (SocketException ex)
        {
            stream.Reset(ResetCode.Cancelled, $"writing to the socket failed: {ex.SocketErrorCode}");
        }
    }

    private static async Task WatchIdleAsync(MuxStream stream, RelayState state, TimeSpan idleTimeout, CancellationToken done)
    {
        var step = TimeSpan.FromTicks(Math.Max(TimeSpan.TicksPerMillisecond * 50, idleTimeout.Ticks / 4));
        try
        {
            while (true)
            {
                await Task.Delay(step, done).ConfigureAwait(false);
                if (Stopwatch.GetElapsedTime(Volatile.Read(ref state.LastActivity)) >= idleTimeout)
                {
                    state.IdleClosed = true;
                    stream.Reset(ResetCode.Cancelled, $"the connection was idle for {idleTimeout.TotalSeconds:0.#} s");
                    return;
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }
}
