using System.Buffers;
using System.Threading.Channels;
using Google.Protobuf;
using OrleansTunnel.Protocol.V1;

namespace OrleansTunnel.Protocol;

/// <summary>
/// One request multiplexed on a <see cref="MuxConnection"/>. The owner sends with the Send* methods
/// (one sender at a time) and reads the peer's frames with <see cref="ReadAsync"/> (one reader),
/// returning credit with <see cref="ReturnCredit"/> as its consumer really drains the bytes.
/// </summary>
public sealed class MuxStream
{
    private readonly MuxConnection _connection;
    private readonly Channel<Frame> _inbound = Channel.CreateUnbounded<Frame>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
    private readonly CancellationTokenSource _aborted = new();
    private readonly Lock _gate = new();

    // Send side: credit the peer granted, and who waits for more.
    private long _sendCredit;
    private TaskCompletionSource? _creditWaiter;
    private Task _lastWrite = Task.CompletedTask;
    // The head's write: body frames (data queue) must not reach the writer before it (control queue).
    private Task _headWrite = Task.CompletedTask;
    // Body frames queued for the writer and not known to be written yet, oldest first (sender only).
    private readonly Queue<(Task Written, int Bytes)> _queued = new();
    private int _queuedBytes;

    // Receive side: credit we granted that the peer has not used yet, and what the consumer drained.
    private int _receiveRemaining;
    private int _drainedSinceUpdate;

    private int _queuedFrames; // frames in _inbound not read yet (bounded by MuxSettings.MaxQueuedFramesPerStream)
    private int _headSeen;     // 1 once the peer's response head arrived (a second one is a protocol error)
    private int _localEnded;   // 1 once end of body / trailers / reset went out
    private int _remoteEnded;  // 1 once the peer's end of body / trailers / reset arrived
    private int _finished;     // 1 once removed from the connection

    internal MuxStream(MuxConnection connection, ulong id, int sendWindow, int receiveWindow)
    {
        _connection = connection;
        Id = id;
        _sendCredit = sendWindow;
        _receiveRemaining = receiveWindow;
    }

    /// <summary>Whether this stream holds one of the connection's concurrent-stream slots (released once, when it finishes).</summary>
    internal bool Counted { get; init; }

    /// <summary>Connection-local stream number (0 until a gateway-opened stream sends its head).</summary>
    public ulong Id { get; internal set; }

    /// <summary>The connection this stream lives on.</summary>
    public MuxConnection Connection => _connection;

    /// <summary>Cancelled when the stream is reset by either side or its connection is lost.</summary>
    public CancellationToken Aborted => _aborted.Token;

    /// <summary>Why the stream was aborted, once it was.</summary>
    public Reset? AbortReason { get; private set; }

    /// <summary>Bytes of send credit currently available (for diagnostics and tests).</summary>
    public long SendCredit { get { lock (_gate) { return _sendCredit; } } }

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
            // A pooled buffer, not a fresh array per frame: it goes back to the pool once the frame's write
            // finished (serialized into the gRPC message) or failed, never while the writer may read it.
            var bytes = ArrayPool<byte>.Shared.Rent(granted);
            data.Slice(0, granted).CopyTo(bytes);
            bool last = granted == data.Length;
            var frame = new Frame
            {
                Stream = Id,
                Data = new Data { Payload = UnsafeByteOperations.UnsafeWrap(bytes.AsMemory(0, granted)), EndOfBody = endOfBody && last },
            };
            try
            {
                await EnqueueOrderedAsync(frame, granted).ConfigureAwait(false);
            }
            catch
            {
                // Never queued: nothing will read the buffer.
                ArrayPool<byte>.Shared.Return(bytes);
                throw;
            }
            _ = _lastWrite.ContinueWith(ReturnBuffer, bytes, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            data = data.Slice(granted);
        }
        if (endOfBody)
        {
            MarkLocalEnded();
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
        var bytes = ArrayPool<byte>.Shared.Rent(Math.Max(1, length));
        datagram.CopyTo(bytes);
        var frame = new Frame { Stream = Id, Data = new Data { Payload = UnsafeByteOperations.UnsafeWrap(bytes.AsMemory(0, length)) } };
        try
        {
            await EnqueueOrderedAsync(frame, length).ConfigureAwait(false);
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(bytes);
            throw;
        }
        _ = _lastWrite.ContinueWith(ReturnBuffer, bytes, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        return true;
    }

    private static readonly Action<Task, object?> ReturnBuffer = static (_, buffer) => ArrayPool<byte>.Shared.Return((byte[])buffer!);

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

    /// <summary>Reads the peer's next frame for this stream (head, data, trailers or reset); null once nothing more will come.</summary>
    public async ValueTask<Frame?> ReadAsync(CancellationToken cancellationToken)
    {
        while (await _inbound.Reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
        {
            if (_inbound.Reader.TryRead(out var frame))
            {
                Interlocked.Decrement(ref _queuedFrames);
                return frame;
            }
        }
        return null;
    }

    /// <summary>Non-blocking read, for callers that want to know whether more is already here.</summary>
    public bool TryRead(out Frame? frame)
    {
        bool ok = _inbound.Reader.TryRead(out var f);
        if (ok)
        {
            Interlocked.Decrement(ref _queuedFrames);
        }
        frame = f;
        return ok;
    }

    /// <summary>
    /// Tells the peer that the consumer drained <paramref name="bytes"/> of body: the credit goes back
    /// in batches of a quarter window so window updates stay rare.
    /// </summary>
    public void ReturnCredit(int bytes)
    {
        if (bytes <= 0 || Volatile.Read(ref _remoteEnded) == 1)
        {
            return;
        }
        int drained = Interlocked.Add(ref _drainedSinceUpdate, bytes);
        if (drained >= _connection.Settings.ReceiveWindow / 4)
        {
            int increment = Interlocked.Exchange(ref _drainedSinceUpdate, 0);
            if (increment > 0)
            {
                Interlocked.Add(ref _receiveRemaining, increment);
                _connection.EnqueueControl(new Frame { Stream = Id, WindowUpdate = new WindowUpdate { Increment = (uint)increment } });
            }
        }
    }

    /// <summary>Resets the stream: tells the peer (unless it already finished) and releases it locally.</summary>
    public void Reset(ResetCode code, string reason)
    {
        var reset = new Reset { Code = code, Reason = reason };
        bool wasLocalEnded = Interlocked.Exchange(ref _localEnded, 1) == 1;
        bool peerStillBusy = !wasLocalEnded || Volatile.Read(ref _remoteEnded) == 0;
        if (peerStillBusy && AbortReason is null && Id != 0)
        {
            var frame = new Frame { Stream = Id, Reset = reset };
            var last = _lastWrite;
            if (wasLocalEnded && !last.IsCompleted)
            {
                // Our end of body (or trailers) is still queued as data: a control frame would overtake
                // it and the peer would drop a complete answer. Send the reset once it was written.
                last.ContinueWith(_ => _connection.EnqueueControl(frame), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            }
            else
            {
                _connection.EnqueueControl(frame);
            }
        }
        Abort(reset);
    }

    /// <summary>
    /// Releases the stream once its owner is done. A stream that did not finish both ways is reset
    /// as cancelled, so the peer stops working on it.
    /// </summary>
    public void Complete()
    {
        if (Volatile.Read(ref _localEnded) == 1 && Volatile.Read(ref _remoteEnded) == 1)
        {
            Finish();
        }
        else
        {
            Reset(ResetCode.Cancelled, "the request ended before its stream finished");
        }
    }

    // ---- called by the connection's read loop (never blocks) ----

    internal void OnFrame(Frame frame)
    {
        if (Volatile.Read(ref _remoteEnded) == 1 && frame.KindCase is Frame.KindOneofCase.Data or Frame.KindOneofCase.Trailers or Frame.KindOneofCase.ResponseHead)
        {
            // After the peer's end of body, trailers or reset nothing more may come on this stream (a late frame
            // after our own reset is dropped by the connection before it gets here).
            ProtocolError($"{frame.KindCase} frame after the peer ended the stream");
            return;
        }
        switch (frame.KindCase)
        {
            case Frame.KindOneofCase.Data:
                int length = frame.Data.Payload.Length;
                if (length > MuxSettings.MaxDataFrameCeiling)
                {
                    ProtocolError($"data frame of {length} bytes exceeds the 64 KiB limit");
                    return;
                }
                if (Interlocked.Add(ref _receiveRemaining, -length) < 0)
                {
                    ProtocolError($"peer sent {length} bytes beyond the credit it was granted");
                    return;
                }
                if (frame.Data.EndOfBody)
                {
                    Interlocked.Exchange(ref _remoteEnded, 1);
                }
                if (!Enqueue(frame))
                {
                    return;
                }
                if (frame.Data.EndOfBody)
                {
                    _inbound.Writer.TryComplete();
                    FinishIfDone();
                }
                break;
            case Frame.KindOneofCase.Trailers:
                Interlocked.Exchange(ref _remoteEnded, 1);
                if (Enqueue(frame))
                {
                    _inbound.Writer.TryComplete();
                    FinishIfDone();
                }
                break;
            case Frame.KindOneofCase.ResponseHead:
                if (Interlocked.Exchange(ref _headSeen, 1) == 1)
                {
                    // A second head would cost the peer nothing and the reader a queue entry per frame.
                    ProtocolError("a second response head on one stream");
                    return;
                }
                if (frame.ResponseHead.EndOfBody)
                {
                    Interlocked.Exchange(ref _remoteEnded, 1);
                    if (Enqueue(frame))
                    {
                        _inbound.Writer.TryComplete();
                        FinishIfDone();
                    }
                }
                else
                {
                    Enqueue(frame);
                }
                break;
            case Frame.KindOneofCase.WindowUpdate:
                AddCredit(frame.WindowUpdate.Increment);
                break;
            case Frame.KindOneofCase.Reset:
                Interlocked.Exchange(ref _remoteEnded, 1);
                Interlocked.Exchange(ref _localEnded, 1);
                Abort(frame.Reset);
                break;
            default:
                ProtocolError($"unexpected {frame.KindCase} frame on a request stream");
                break;
        }
    }

    /// <summary>Queues a frame for the reader, or resets the stream when the peer queued more frames than allowed.</summary>
    private bool Enqueue(Frame frame)
    {
        if (Interlocked.Increment(ref _queuedFrames) > _connection.Settings.MaxQueuedFramesPerStream)
        {
            ProtocolError($"peer queued more than {_connection.Settings.MaxQueuedFramesPerStream} frames the reader has not taken (empty or tiny frames)");
            return false;
        }
        _inbound.Writer.TryWrite(frame);
        return true;
    }

    internal void OnRequestHead(Frame frame)
    {
        if (frame.RequestHead.EndOfBody)
        {
            Interlocked.Exchange(ref _remoteEnded, 1);
            _inbound.Writer.TryComplete();
        }
    }

    internal void OnConnectionLost(string reason) =>
        Abort(new Reset { Code = ResetCode.Internal, Reason = reason });

    private void ProtocolError(string reason)
    {
        _connection.ReportStreamProtocolError(this, reason);
        Reset(ResetCode.ProtocolError, reason);
    }

    private void Abort(Reset reason)
    {
        TaskCompletionSource? waiter;
        lock (_gate)
        {
            if (AbortReason is not null)
            {
                return;
            }
            AbortReason = reason;
            waiter = _creditWaiter;
            _creditWaiter = null;
        }
        _inbound.Writer.TryWrite(new Frame { Stream = Id, Reset = reason });
        _inbound.Writer.TryComplete();
        waiter?.TrySetResult();
        try
        {
            _aborted.Cancel();
        }
        catch (AggregateException)
        {
            // A callback registered by an owner threw; the stream is aborted regardless.
        }
        Finish();
    }

    private void FinishIfDone()
    {
        if (Volatile.Read(ref _localEnded) == 1 && Volatile.Read(ref _remoteEnded) == 1)
        {
            Finish();
        }
    }

    private void Finish()
    {
        if (Interlocked.Exchange(ref _finished, 1) == 0)
        {
            _connection.Remove(this);
        }
    }

    private void MarkLocalEnded()
    {
        Interlocked.Exchange(ref _localEnded, 1);
        FinishIfDone();
    }

    private async ValueTask EnqueueOrderedAsync(Frame frame, int bytes)
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
        _lastWrite = _connection.EnqueueData(frame);
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

/// <summary>Thrown to a sender whose stream was reset or whose connection was lost.</summary>
public sealed class MuxStreamAbortedException(Reset reason) : IOException($"stream reset ({reason.Code}): {reason.Reason}")
{
    public Reset Reason { get; } = reason;
}
