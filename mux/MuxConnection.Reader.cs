using System.Diagnostics;
using OrleansTunnel.Protocol.V1;

namespace OrleansTunnel.Mux;

/// <summary>
/// The receiving half of a <see cref="MuxConnection"/>: the read loop that routes each frame to its stream
/// or to a connection handler without awaiting any consumer, and the heartbeat.
/// </summary>
public sealed partial class MuxConnection
{
    private async Task ReadLoopAsync()
    {
        while (await _reader.MoveNext(_closed.Token).ConfigureAwait(false))
        {
            var frames = _reader.Current.Frames;
            Volatile.Write(ref _messagesRead, _messagesRead + 1);
            Volatile.Write(ref _framesRead, _framesRead + frames.Count);
            // The frames of one message reach their readers together: a head woken alone would be flushed to
            // the visitor before the body or reset that came with it is seen (one more write, or an answer that
            // can no longer be retried).
            _stageReads = frames.Count > 1;
            try
            {
                foreach (var frame in frames)
                {
                    Dispatch(frame);
                }
            }
            finally
            {
                if (_stageReads)
                {
                    _stageReads = false;
                    foreach (var inbox in _stagedInboxes)
                    {
                        inbox.Publish();
                    }
                    _stagedInboxes.Clear();
                }
            }
        }
    }

    // Read loop only: whether stream frames are staged until the message is routed, and whose.
    private bool _stageReads;
    private readonly List<FrameInbox> _stagedInboxes = [];

    /// <summary>Read loop only: queues a received frame for a stream's reader (staged while a message is routed).</summary>
    internal FrameInbox.WriteResult Deliver(FrameInbox inbox, Frame frame)
    {
        var result = inbox.TryWrite(frame, Settings.MaxQueuedFramesPerStream, _stageReads);
        if (result == FrameInbox.WriteResult.Staged)
        {
            _stagedInboxes.Add(inbox);
        }
        return result;
    }

    private void Dispatch(Frame frame)
    {
        if (frame.Stream == 0)
        {
            DispatchConnectionFrame(frame);
            return;
        }

        if (frame.KindCase == Frame.KindOneofCase.RequestHead)
        {
            OnPeerOpened(frame);
            return;
        }

        if (_streams.TryGetValue(frame.Stream, out var stream))
        {
            stream.OnFrame(frame);
            return;
        }

        // Unknown stream: a late frame for a stream we already finished is normal (a reset raced
        // with data); a number that was never opened is forged.
        bool everOpened = _opensStreams
            ? frame.Stream % 2 == 1 && (long)frame.Stream <= Interlocked.Read(ref _nextLocalStream)
            : frame.Stream <= _highestPeerStream;
        if (!everOpened)
        {
            LogForgedStream(_logger, frame.Stream, frame.KindCase.ToString());
            ProtocolViolation?.Invoke($"frame for stream {frame.Stream} that was never opened");
        }
    }

    private void OnPeerOpened(Frame frame)
    {
        if (_opensStreams)
        {
            throw new MuxProtocolException("the agent may not open request streams");
        }
        if (frame.Stream % 2 == 0 || frame.Stream <= _highestPeerStream)
        {
            throw new MuxProtocolException($"request head on stream {frame.Stream}, which is not a new odd stream number");
        }
        _highestPeerStream = frame.Stream;
        if (!TryReserveStream())
        {
            EnqueueControl(new Frame { Stream = frame.Stream, Reset = new Reset { Code = ResetCode.Refused, Reason = $"more than {Settings.MaxConcurrentStreams} concurrent streams" } });
            return;
        }
        var stream = new MuxStream(this, frame.Stream, Settings.SendWindow, Settings.ReceiveWindow) { Counted = true };
        _streams[frame.Stream] = stream;
        stream.OnRequestHead(frame);
        if (RequestReceived is { } handler)
        {
            handler(stream, frame.RequestHead);
        }
        else
        {
            stream.Reset(ResetCode.Refused, "this end does not accept requests");
        }
    }

    private void DispatchConnectionFrame(Frame frame)
    {
        switch (frame.KindCase)
        {
            case Frame.KindOneofCase.Ping:
                EnqueueControl(new Frame { Pong = frame.Ping });
                break;
            case Frame.KindOneofCase.Pong:
                if (_pings.TryRemove((long)frame.Pong.Id, out long sent))
                {
                    Volatile.Write(ref _rttMicros, (long)Stopwatch.GetElapsedTime(sent).TotalMicroseconds);
                }
                Volatile.Write(ref _lastPongTicks, Stopwatch.GetTimestamp());
                break;
            case Frame.KindOneofCase.GoAway:
                GoAwayReceived = true;
                GoAwayHandler?.Invoke(frame.GoAway.Reason);
                break;
            case Frame.KindOneofCase.Config:
                ConfigHandler?.Invoke(frame.Config);
                break;
            case Frame.KindOneofCase.Health:
                HealthHandler?.Invoke(frame.Health);
                break;
            case Frame.KindOneofCase.Error:
                throw new MuxPeerErrorException(frame.Error.Code, frame.Error.Message);
            case Frame.KindOneofCase.WindowUpdate:
                // No connection-level window: HTTP/2 flow control of the gRPC stream covers it.
                break;
            default:
                throw new MuxProtocolException($"unexpected {frame.KindCase} frame on the connection");
        }
    }

    private async Task HeartbeatLoopAsync(TimeSpan interval)
    {
        try
        {
            using var timer = new PeriodicTimer(interval);
            while (await timer.WaitForNextTickAsync(_closed.Token).ConfigureAwait(false))
            {
                if (Stopwatch.GetElapsedTime(Volatile.Read(ref _lastPongTicks)) > interval * 3)
                {
                    Close($"no pong for {interval.TotalSeconds * 3:0.#} s (three heartbeat intervals)");
                    return;
                }
                long id = Interlocked.Increment(ref _nextPingId);
                _pings[id] = Stopwatch.GetTimestamp();
                if (_pings.Count > 8)
                {
                    foreach (var key in _pings.Keys.Where(k => k < id - 8))
                    {
                        _pings.TryRemove(key, out _);
                    }
                }
                EnqueueControl(new Frame { Ping = new Ping { Id = (ulong)id, SentUnixMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() } });
            }
        }
        catch (OperationCanceledException)
        {
        }
    }
}
