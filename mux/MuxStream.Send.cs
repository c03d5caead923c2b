using System.Buffers;
using Google.Protobuf;
using OrleansTunnel.Protocol.V1;

namespace OrleansTunnel.Mux;

/// <summary>
/// The send side of a <see cref="MuxStream"/>: heads, body frames under the peer's credit (pooled
/// payload buffers the connection's writer returns once written), bounded queueing per stream, trailers.
/// </summary>
public sealed partial class MuxStream
{
    /// <summary>Sends a head (request or response) frame; data sent afterwards is ordered after it.</summary>
    public void SendHead(Frame head)
    {
        bool ends = head.KindCase switch
        {
            Frame.KindOneofCase.RequestHead => head.RequestHead.EndOfBody,
            Frame.KindOneofCase.ResponseHead => head.ResponseHead.EndOfBody,
            _ => throw new ArgumentException("not a head frame", nameof(head)),
        };
        // Heads are control frames (written before any queued data); the stream's first data frame
        // waits for the head to be written so the peer never sees data for a stream it does not know.
        if (head.KindCase == Frame.KindOneofCase.RequestHead)
        {
            _lastWrite = _connection.StartStream(this, head);
        }
        else
        {
            head.Stream = Id;
            _lastWrite = _connection.EnqueueControlWithCompletion(head);
        }
        _headWrite = _lastWrite;
        if (ends)
        {
            MarkLocalEnded();
        }
    }

    /// <summary>
    /// Sends a head and a whole (small) body as one unit, so a small request or response crosses the
    /// tunnel in one writer pass. Returns false, having sent nothing, when the body is larger than a
    /// data frame or than the credit available; the caller then sends head and body separately.
    /// </summary>
    public bool TrySendHeadWithBody(Frame head, ReadOnlySpan<byte> body)
    {
        if (body.Length > _connection.Settings.MaxDataFrame)
        {
            return false;
        }
        if (head.KindCase != Frame.KindOneofCase.ResponseHead)
        {
            throw new ArgumentException("only response heads travel with their body", nameof(head));
        }
        lock (_gate)
        {
            if (AbortReason is not null || _sendCredit < body.Length)
            {
                return false;
            }
            _sendCredit -= body.Length;
        }
        head.Stream = Id;
        var data = new Frame { Stream = Id, Data = new Data { Payload = ByteString.CopyFrom(body), EndOfBody = true } };
        _lastWrite = _connection.EnqueueControlPair(head, data);
        MarkLocalEnded();
        return true;
    }

    /// <summary>
    /// Sends body bytes in frames of at most the connection's data frame size, each only when credit
    /// allows. Returns once the last frame is queued (at most <see cref="MuxSettings.MaxStreamQueuedBytes"/>
    /// of this stream, and always one frame, wait in the writer's queue: that bound keeps the writer's
    /// round-robin across streams fine-grained).
    /// </summary>
    public ValueTask SendDataAsync(ReadOnlyMemory<byte> data, bool endOfBody, CancellationToken cancellationToken) =>
        SendDataAsync(new ReadOnlySequence<byte>(data), endOfBody, cancellationToken);

    /// <summary>
    /// Sends body bytes, coalescing the sequence's segments into frames of up to the data frame size;
    /// each frame is sent only when credit allows (one copy: into the frame's own buffer).
    /// </summary>
    public async ValueTask SendDataAsync(ReadOnlySequence<byte> data, bool endOfBody, CancellationToken cancellationToken)
    {
        int maxFrame = _connection.Settings.MaxDataFrame;
        if (data.IsEmpty)
        {
            if (endOfBody)
            {
                await EnqueueOrderedAsync(new Frame { Stream = Id, Data = new Data { EndOfBody = true } }, 0).ConfigureAwait(false);
                MarkLocalEnded();
            }
            return;
        }

        while (!data.IsEmpty)
        {
            int want = (int)Math.Min(data.Length, maxFrame);
            int granted = await AcquireCreditAsync(want, cancellationToken).ConfigureAwait(false);
            bool last = granted == data.Length;
            await SendCopiedFrameAsync(data.Slice(0, granted), endOfBody && last).ConfigureAwait(false);
            data = data.Slice(granted);
        }
        if (endOfBody)
        {
            MarkLocalEnded();
        }
    }

    /// <summary>
    /// Sends the first <paramref name="length"/> bytes of <paramref name="lease"/>, a buffer rented from
    /// <see cref="ArrayPool{T}.Shared"/> that this call now owns (it goes back to the pool once written, or
    /// when this throws): the bytes are not copied when one frame and the credit available take them all.
    /// Otherwise the leading bytes go in copied frames and the lease carries the last one.
    /// </summary>
    public async ValueTask SendLeasedDataAsync(byte[] lease, int length, bool endOfBody, CancellationToken cancellationToken)
    {
        if (length == 0)
        {
            ArrayPool<byte>.Shared.Return(lease);
            await SendDataAsync(ReadOnlySequence<byte>.Empty, endOfBody, cancellationToken).ConfigureAwait(false);
            return;
        }
        int offset = 0;
        try
        {
            int maxFrame = _connection.Settings.MaxDataFrame;
            while (true)
            {
                int rest = length - offset;
                int granted = await AcquireCreditAsync(Math.Min(rest, maxFrame), cancellationToken).ConfigureAwait(false);
                if (granted == rest)
                {
                    break;
                }
                await SendCopiedFrameAsync(new ReadOnlySequence<byte>(lease.AsMemory(offset, granted)), endOfBody: false).ConfigureAwait(false);
                offset += granted;
            }
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(lease);
            throw;
        }
        await EnqueuePooledFrameAsync(lease, offset, length - offset, endOfBody).ConfigureAwait(false);
        if (endOfBody)
        {
            MarkLocalEnded();
        }
    }

    /// <summary>Queues one data frame of already granted credit, copied into a pooled buffer (not a fresh array per frame).</summary>
    private ValueTask SendCopiedFrameAsync(ReadOnlySequence<byte> bytes, bool endOfBody)
    {
        int length = (int)bytes.Length;
        var copy = ArrayPool<byte>.Shared.Rent(Math.Max(1, length));
        bytes.CopyTo(copy);
        return EnqueuePooledFrameAsync(copy, 0, length, endOfBody);
    }

    /// <summary>
    /// Queues one data frame over a slice of a pooled buffer this stream owns: the writer returns it to the
    /// pool once the frame's write finished (serialized into the gRPC message) or failed, never while it may
    /// read it; this returns it when the frame was never queued.
    /// </summary>
    private async ValueTask EnqueuePooledFrameAsync(byte[] pooled, int offset, int length, bool endOfBody)
    {
        var frame = new Frame
        {
            Stream = Id,
            Data = new Data { Payload = UnsafeByteOperations.UnsafeWrap(pooled.AsMemory(offset, length)), EndOfBody = endOfBody },
        };
        try
        {
            await EnqueueOrderedAsync(frame, length, pooled).ConfigureAwait(false);
        }
        catch
        {
            // Never queued: nothing will read the buffer.
            ArrayPool<byte>.Shared.Return(pooled);
            throw;
        }
    }

    /// <summary>
    /// UDP: sends one datagram as exactly one data frame (never split or merged). Returns false, having
    /// sent nothing, when it is larger than a data frame or than the credit available now: the caller
    /// drops it (and counts the drop) rather than waiting.
    /// </summary>
    public async ValueTask<bool> TrySendDatagramAsync(ReadOnlyMemory<byte> datagram, CancellationToken cancellationToken)
    {
        int length = datagram.Length;
        if (length > _connection.Settings.MaxDataFrame)
        {
            return false;
        }
        lock (_gate)
        {
            if (AbortReason is { } reason)
            {
                throw new MuxStreamAbortedException(reason);
            }
            if (_sendCredit < length)
            {
                return false;
            }
            _sendCredit -= length;
        }
        cancellationToken.ThrowIfCancellationRequested();
        await SendCopiedFrameAsync(new ReadOnlySequence<byte>(datagram), endOfBody: false).ConfigureAwait(false);
        return true;
    }

    /// <summary>Ends the body with trailers (ordered after the data already sent).</summary>
    public async ValueTask SendTrailersAsync(IEnumerable<Header> trailers)
    {
        var frame = new Frame { Stream = Id, Trailers = new Trailers() };
        frame.Trailers.Headers.AddRange(trailers);
        await EnqueueOrderedAsync(frame, 0).ConfigureAwait(false);
        MarkLocalEnded();
    }

    /// <summary>Waits until everything this stream queued has been written to the transport.</summary>
    public Task FlushAsync() => _lastWrite;

    /// <param name="pooled">The payload's pool buffer: the writer returns it once written (the caller only when this throws).</param>
    private async ValueTask EnqueueOrderedAsync(Frame frame, int bytes, byte[]? pooled = null)
    {
        if (AbortReason is { } aborted)
        {
            throw new MuxStreamAbortedException(aborted);
        }
        // The writer takes control frames first only within one pass: the head must be written before
        // this stream's first body frame is queued, or a pass could take the body ahead of it.
        if (!_headWrite.IsCompleted)
        {
            await _headWrite.ConfigureAwait(false);
        }
        // Bounded queueing per stream: wait for the oldest queued frames to be written until this frame
        // fits (one frame always may wait; the data queue is FIFO, so this stream's frames keep order).
        while (_queued.TryPeek(out var oldest) && (oldest.Written.IsCompleted || _queuedBytes + bytes > _connection.Settings.MaxStreamQueuedBytes))
        {
            await oldest.Written.ConfigureAwait(false);
            _queued.Dequeue();
            _queuedBytes -= oldest.Bytes;
        }
        if (AbortReason is { } reason)
        {
            throw new MuxStreamAbortedException(reason);
        }
        _lastWrite = _connection.EnqueueData(frame, pooled);
        _queued.Enqueue((_lastWrite, bytes));
        _queuedBytes += bytes;
    }

    private async ValueTask<int> AcquireCreditAsync(int want, CancellationToken cancellationToken)
    {
        while (true)
        {
            TaskCompletionSource waiter;
            lock (_gate)
            {
                if (AbortReason is { } reason)
                {
                    throw new MuxStreamAbortedException(reason);
                }
                if (_sendCredit > 0)
                {
                    int granted = (int)Math.Min(want, _sendCredit);
                    _sendCredit -= granted;
                    return granted;
                }
                waiter = _creditWaiter ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }
            await waiter.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private void AddCredit(uint increment)
    {
        TaskCompletionSource? waiter;
        lock (_gate)
        {
            _sendCredit += increment;
            if (_sendCredit > int.MaxValue)
            {
                waiter = null;
            }
            else
            {
                waiter = _creditWaiter;
                _creditWaiter = null;
            }
        }
        if (waiter is null && SendCredit > int.MaxValue)
        {
            ProtocolError("peer granted more than 2 GiB of credit");
            return;
        }
        waiter?.TrySetResult();
    }
}
