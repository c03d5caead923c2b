using System.Threading.Tasks.Sources;
using OrleansTunnel.Protocol.V1;

namespace OrleansTunnel.Mux;

/// <summary>
/// A stream's received frames, for its one reader: a small FIFO under a lock with one reusable waiter.
/// It replaces a per-stream unbounded channel, whose queue segment (32 slots), reader, writer and per-wait
/// operation objects were about 2.2 KB of the ~12.8 KB a small tunnelled request allocated. Writers are the
/// connection's read loop and whoever aborts the stream; the reader awaits <see cref="ReadAsync"/> (one at a
/// time). A frame written while the reader waits is handed to it directly (a staged frame once published);
/// continuations run on the thread pool, never inline on the writer (the read loop must not run a
/// request's code).
/// </summary>
internal sealed class FrameInbox : IValueTaskSource<Frame?>
{
    public enum WriteResult { Written, Staged, Completed, OverLimit }

    private readonly Lock _lock = new();
    private Frame? _first;          // the oldest queued frame (most streams never hold more than two)
    private Queue<Frame>? _rest;    // queued frames after _first
    private int _staged;            // the last queued frames the reader may not take yet (see Publish)
    private bool _completed;
    private bool _waiting;          // the reader awaits _waiter
    private CancellationToken _waitToken;
    private CancellationTokenRegistration _waitRegistration;
    private ManualResetValueTaskSourceCore<Frame?> _waiter = new() { RunContinuationsAsynchronously = true };

    /// <summary>
    /// Queues a frame (or hands it to the waiting reader). <see cref="WriteResult.OverLimit"/>: already
    /// <paramref name="limit"/> frames wait unread (nothing was queued); <see cref="WriteResult.Completed"/>:
    /// nothing more is accepted. With <paramref name="stage"/> the frame stays invisible to the reader until
    /// <see cref="Publish"/>: the read loop stages the frames of one received message and publishes them once
    /// the whole message is routed, so a reader woken by a head also sees the body or reset that came with it
    /// (<see cref="WriteResult.Staged"/>: the first staged frame since the last publish, the caller must
    /// publish). A write that is not staged publishes everything before it.
    /// </summary>
    public WriteResult TryWrite(Frame frame, int limit = int.MaxValue, bool stage = false)
    {
        CancellationTokenRegistration registration;
        Frame? answer;
        lock (_lock)
        {
            if (_completed)
            {
                return WriteResult.Completed;
            }
            if (Queued >= limit)
            {
                return WriteResult.OverLimit;
            }
            if (_first is null)
            {
                _first = frame;
            }
            else
            {
                (_rest ??= new Queue<Frame>(4)).Enqueue(frame);
            }
            if (stage)
            {
                return ++_staged == 1 ? WriteResult.Staged : WriteResult.Written;
            }
            _staged = 0;
            if (!TryTakeAnswer(out answer, out registration))
            {
                return WriteResult.Written;
            }
        }
        Answer(registration, answer);
        return WriteResult.Written;
    }

    /// <summary>Makes the staged frames visible to the reader (and wakes it when it waits).</summary>
    public void Publish()
    {
        CancellationTokenRegistration registration;
        Frame? frame;
        lock (_lock)
        {
            _staged = 0;
            if (!TryTakeAnswer(out frame, out registration))
            {
                return;
            }
        }
        Answer(registration, frame);
    }

    /// <summary>Nothing more will be written: the reader gets what is queued (once published), then null.</summary>
    public void Complete()
    {
        CancellationTokenRegistration registration;
        Frame? frame;
        lock (_lock)
        {
            if (_completed)
            {
                return;
            }
            _completed = true;
            // With frames staged, the publish answers a waiting reader.
            if (!TryTakeAnswer(out frame, out registration))
            {
                return;
            }
        }
        Answer(registration, frame);
    }

    public bool TryRead(out Frame? frame)
    {
        lock (_lock)
        {
            return TryTake(out frame);
        }
    }

    /// <summary>The next frame; null once completed and drained. One reader at a time.</summary>
    public ValueTask<Frame?> ReadAsync(CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<Frame?>(cancellationToken);
        }
        short version;
        lock (_lock)
        {
            if (TryTake(out var frame))
            {
                return new ValueTask<Frame?>(frame);
            }
            if (_completed && _staged == 0)
            {
                return new ValueTask<Frame?>((Frame?)null);
            }
            if (_waiting)
            {
                throw new InvalidOperationException("a stream has one reader: ReadAsync was called while another read waits");
            }
            _waiter.Reset();
            version = _waiter.Version;
            _waiting = true;
            _waitToken = cancellationToken;
        }
        if (cancellationToken.CanBeCanceled)
        {
            var registration = cancellationToken.UnsafeRegister(static (state, token) => ((FrameInbox)state!).Cancel(token), this);
            lock (_lock)
            {
                if (_waiting && _waiter.Version == version)
                {
                    _waitRegistration = registration;
                    registration = default;
                }
            }
            // Already answered (or cancelled) before the registration was kept: drop it.
            registration.Unregister();
        }
        return new ValueTask<Frame?>(this, version);
    }

    private void Cancel(CancellationToken token)
    {
        lock (_lock)
        {
            if (!_waiting || _waitToken != token)
            {
                return;
            }
            _waiting = false;
            _waitToken = default;
            _waitRegistration = default;
        }
        _waiter.SetException(new OperationCanceledException(token));
    }

    /// <summary>
    /// Under the lock: when the reader waits and has an answer (a visible frame, or the end once nothing is
    /// staged), takes it and the waiter; the caller then calls <see cref="Answer"/> outside the lock.
    /// </summary>
    private bool TryTakeAnswer(out Frame? frame, out CancellationTokenRegistration registration)
    {
        registration = default;
        if (!_waiting || !(TryTake(out frame) || (_completed && _staged == 0)))
        {
            frame = null;
            return false;
        }
        registration = TakeWaiter();
        return true;
    }

    private void Answer(CancellationTokenRegistration registration, Frame? frame)
    {
        registration.Unregister();
        _waiter.SetResult(frame);
    }

    /// <summary>Under the lock: the waiting reader is about to be answered.</summary>
    private CancellationTokenRegistration TakeWaiter()
    {
        _waiting = false;
        _waitToken = default;
        var registration = _waitRegistration;
        _waitRegistration = default;
        return registration;
    }

    /// <summary>Under the lock: the oldest visible (not staged) frame.</summary>
    private bool TryTake(out Frame? frame)
    {
        frame = _first;
        if (frame is null || Queued == _staged)
        {
            frame = null;
            return false;
        }
        _first = _rest is { Count: > 0 } rest ? rest.Dequeue() : null;
        return true;
    }

    /// <summary>Under the lock: frames queued and not read yet, staged ones included.</summary>
    private int Queued => _first is null ? 0 : 1 + (_rest?.Count ?? 0);

    Frame? IValueTaskSource<Frame?>.GetResult(short token) => _waiter.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource<Frame?>.GetStatus(short token) => _waiter.GetStatus(token);

    void IValueTaskSource<Frame?>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _waiter.OnCompleted(continuation, state, token, flags);
}
