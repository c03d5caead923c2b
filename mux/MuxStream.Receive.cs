using OrleansTunnel.Protocol.V1;

namespace OrleansTunnel.Mux;

/// <summary>
/// The receive side of a <see cref="MuxStream"/>: frames routed here by the connection's read loop
/// (checked against the credit granted and the per-stream frame bound), read by the owner, and credit
/// returned as the owner drains the bytes.
/// </summary>
public sealed partial class MuxStream
{
    /// <summary>Reads the peer's next frame for this stream (head, data, trailers or reset); null once nothing more will come.</summary>
    public ValueTask<Frame?> ReadAsync(CancellationToken cancellationToken) => _inbound.ReadAsync(cancellationToken);

    /// <summary>Non-blocking read, for callers that want to know whether more is already here.</summary>
    public bool TryRead(out Frame? frame) => _inbound.TryRead(out frame);

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
                    _inbound.Complete();
                    FinishIfDone();
                }
                break;
            case Frame.KindOneofCase.Trailers:
                Interlocked.Exchange(ref _remoteEnded, 1);
                if (Enqueue(frame))
                {
                    _inbound.Complete();
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
                        _inbound.Complete();
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
        if (_connection.Deliver(_inbound, frame) == FrameInbox.WriteResult.OverLimit)
        {
            ProtocolError($"peer queued more than {_connection.Settings.MaxQueuedFramesPerStream} frames the reader has not taken (empty or tiny frames)");
            return false;
        }
        return true;
    }

    internal void OnRequestHead(Frame frame)
    {
        if (frame.RequestHead.EndOfBody)
        {
            Interlocked.Exchange(ref _remoteEnded, 1);
            _inbound.Complete();
        }
    }

    internal void OnConnectionLost(string reason) =>
        Abort(new Reset { Code = ResetCode.Internal, Reason = reason });

    private void ProtocolError(string reason)
    {
        _connection.ReportStreamProtocolError(this, reason);
        Reset(ResetCode.ProtocolError, reason);
    }
}
