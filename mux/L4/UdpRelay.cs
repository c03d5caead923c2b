using System.Net.Sockets;
using OrleansTunnel.Protocol.V1;

namespace OrleansTunnel.Mux.L4;

/// <summary>
/// The two halves of a UDP flow over one tunnel stream: every datagram is exactly one data frame
/// (never split or merged); a datagram the stream has no credit for is dropped and counted, not queued.
/// </summary>
public static class UdpRelay
{
    /// <summary>Largest datagram a flow carries (a data frame's ceiling).</summary>
    public const int MaxDatagram = MuxSettings.MaxDataFrameCeiling;

    /// <summary>Reads datagrams from a connected socket and sends each as one data frame until cancelled or the stream ends.</summary>
    public static async Task PumpSocketUpAsync(Socket socket, MuxStream stream, Action<int>? onDrop, CancellationToken cancellationToken)
    {
        var buffer = new byte[MaxDatagram];
        while (!cancellationToken.IsCancellationRequested)
        {
            int n;
            try
            {
                n = await socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken).ConfigureAwait(false);
            }
            catch (SocketException ex) when (ex.SocketErrorCode is SocketError.ConnectionRefused or SocketError.ConnectionReset or SocketError.MessageSize)
            {
                // An ICMP "port unreachable" for an earlier datagram, or one larger than the buffer: UDP goes on.
                continue;
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }
            try
            {
                if (!await stream.TrySendDatagramAsync(buffer.AsMemory(0, n), cancellationToken).ConfigureAwait(false))
                {
                    onDrop?.Invoke(n);
                }
            }
            catch (Exception ex) when (ex is OperationCanceledException or MuxStreamAbortedException)
            {
                return;
            }
        }
    }

    /// <summary>Sends each data frame the peer sends as one datagram, returning its credit, until the stream ends or is reset.</summary>
    public static async Task PumpStreamDownAsync(MuxStream stream, Func<ReadOnlyMemory<byte>, CancellationToken, ValueTask<int>> send, Action<int>? onDatagram)
    {
        var cancel = stream.Aborted;
        while (await stream.ReadAsync(CancellationToken.None).ConfigureAwait(false) is { } frame)
        {
            if (frame.KindCase == Frame.KindOneofCase.Reset || frame.KindCase == Frame.KindOneofCase.Trailers)
            {
                return;
            }
            if (frame.KindCase != Frame.KindOneofCase.Data)
            {
                continue;
            }
            int length = frame.Data.Payload.Length;
            try
            {
                await send(frame.Data.Payload.Memory, cancel).ConfigureAwait(false);
                onDatagram?.Invoke(length);
            }
            catch (SocketException)
            {
                // UDP gives no delivery promise: a datagram the kernel refused is lost, the flow goes on.
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            stream.ReturnCredit(length);
            if (frame.Data.EndOfBody)
            {
                return;
            }
        }
    }
}
