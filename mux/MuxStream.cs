using OrleansTunnel.Protocol.V1;

namespace OrleansTunnel.Mux;

/// <summary>
/// One request multiplexed on a <see cref="MuxConnection"/>. The owner sends with the Send* methods
/// (one sender at a time) and reads the peer's frames with <see cref="ReadAsync"/> (one reader),
/// returning credit with <see cref="ReturnCredit"/> as its consumer really drains the bytes.
/// </summary>
public sealed partial class MuxStream
{
    private readonly MuxConnection _connection;
    private readonly FrameInbox _inbound = new();
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
        _inbound.TryWrite(new Frame { Stream = Id, Reset = reason });
        _inbound.Complete();
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

}

/// <summary>Thrown to a sender whose stream was reset or whose connection was lost.</summary>
public sealed class MuxStreamAbortedException(Reset reason) : IOException($"stream reset ({reason.Code}): {reason.Reason}")
{
    public Reset Reason { get; } = reason;
}
