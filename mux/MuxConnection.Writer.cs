using System.Buffers;
using OrleansTunnel.Protocol.V1;

namespace OrleansTunnel.Mux;

/// <summary>
/// The sending half of a <see cref="MuxConnection"/>: the control and data queues and the one writer
/// that drains them, control frames first, data FIFO, coalescing frames into one gRPC message of up to
/// <see cref="MuxSettings.MaxBatchBytes"/>; frame completions (and pooled payload buffers) are settled
/// after each write.
/// </summary>
public sealed partial class MuxConnection
{
    internal void EnqueueControl(Frame frame) => EnqueueControl(frame, withCompletion: false);

    internal Task EnqueueControlWithCompletion(Frame frame) => EnqueueControl(frame, withCompletion: true)!;

    private Task? EnqueueControl(Frame frame, bool withCompletion)
    {
        var done = withCompletion ? new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously) : null;
        if (_closed.IsCancellationRequested)
        {
            done?.TrySetException(new MuxStreamAbortedException(new Reset { Code = ResetCode.Internal, Reason = $"tunnel connection lost: {CloseReason}" }));
            return done?.Task;
        }
        if (Interlocked.Increment(ref _controlCount) > Settings.MaxQueuedControlFrames)
        {
            Close("too many control frames queued (the peer does not read)");
        }
        _control.Enqueue((frame, done));
        Wake();
        FailIfWriterStopped();
        return done?.Task;
    }

    internal Task EnqueueControlPair(Frame head, Frame data)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (_closed.IsCancellationRequested)
        {
            done.TrySetException(new MuxStreamAbortedException(new Reset { Code = ResetCode.Internal, Reason = $"tunnel connection lost: {CloseReason}" }));
            return done.Task;
        }
        Interlocked.Add(ref _controlCount, 2);
        // Enqueued back to back by this stream's only sender: the writer keeps them in order.
        _control.Enqueue((head, null));
        _control.Enqueue((data, done));
        Wake();
        FailIfWriterStopped();
        return done.Task;
    }

    /// <summary>
    /// Queues a data frame. <paramref name="pooled"/> (the ArrayPool buffer behind the payload, if any)
    /// is returned to the pool by the writer once the frame was written or failed, before the frame's
    /// task completes: no continuation (and thread-pool work item) per frame just to return it.
    /// </summary>
    internal Task EnqueueData(Frame frame, byte[]? pooled = null)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (_closed.IsCancellationRequested)
        {
            ReturnPooled(pooled);
            done.TrySetException(new MuxStreamAbortedException(new Reset { Code = ResetCode.Internal, Reason = $"tunnel connection lost: {CloseReason}" }));
            return done.Task;
        }
        _data.Enqueue((frame, done, pooled));
        Wake();
        FailIfWriterStopped();
        return done.Task;
    }

    private MuxStreamAbortedException LostException() =>
        new(new Reset { Code = ResetCode.Internal, Reason = $"tunnel connection lost: {CloseReason}" });

    /// <summary>Once the writer stopped nothing will be written: fail whatever is (still, or newly) queued.</summary>
    private void FailIfWriterStopped()
    {
        if (!_writerStopped.Task.IsCompleted)
        {
            return;
        }
        while (_control.TryDequeue(out var control))
        {
            control.Done?.TrySetException(LostException());
        }
        while (_data.TryDequeue(out var data))
        {
            ReturnPooled(data.Pooled);
            data.Done.TrySetException(LostException());
        }
    }

    private static void ReturnPooled(byte[]? pooled)
    {
        if (pooled is not null)
        {
            ArrayPool<byte>.Shared.Return(pooled);
        }
    }

    private void Wake()
    {
        if (Interlocked.Exchange(ref _wakePending, 1) == 0)
        {
            _wake.Release();
        }
    }

    private async Task WriteLoopAsync()
    {
        var completions = new List<(TaskCompletionSource Done, byte[]? Pooled)>(64);
        try
        {
            while (!_closed.IsCancellationRequested)
            {
                await _wake.WaitAsync(_closed.Token).ConfigureAwait(false);
                Volatile.Write(ref _wakePending, 0);
                while (true)
                {
                    var batch = new FrameBatch();
                    int bytes = 0;
                    // Control frames first, always.
                    while (bytes < Settings.MaxBatchBytes && _control.TryDequeue(out var control))
                    {
                        Interlocked.Decrement(ref _controlCount);
                        batch.Frames.Add(control.Frame);
                        bytes += control.Frame.KindCase switch
                        {
                            Frame.KindOneofCase.RequestHead or Frame.KindOneofCase.ResponseHead => control.Frame.CalculateSize(),
                            Frame.KindOneofCase.Data => control.Frame.Data.Payload.Length,
                            _ => 32,
                        };
                        if (control.Done is not null)
                        {
                            completions.Add((control.Done, null));
                        }
                    }
                    // Then data, FIFO; each stream has at most MaxStreamQueuedBytes queued (and always
                    // one frame), so FIFO stays close to round-robin across streams.
                    while (bytes < Settings.MaxBatchBytes && _data.TryDequeue(out var data))
                    {
                        batch.Frames.Add(data.Frame);
                        bytes += data.Frame.Data?.Payload.Length ?? 256;
                        completions.Add((data.Done, data.Pooled));
                    }
                    if (batch.Frames.Count == 0)
                    {
                        break;
                    }
                    // A write blocked on a dead peer's flow control must not outlive Close().
                    await _write(batch, _closed.Token).ConfigureAwait(false);
                    Volatile.Write(ref _messagesWritten, _messagesWritten + 1);
                    Volatile.Write(ref _framesWritten, _framesWritten + batch.Frames.Count);
                    // The batch is serialized and written: the payload buffers go back to the pool
                    // before the senders learn their frames are written.
                    foreach (var (done, pooled) in completions)
                    {
                        ReturnPooled(pooled);
                        done.TrySetResult();
                    }
                    completions.Clear();
                }
            }
        }
        catch (OperationCanceledException) when (_closed.IsCancellationRequested)
        {
        }
        catch (Exception ex)
        {
            Close($"writing to the tunnel failed: {Describe(ex)}");
        }
        finally
        {
            foreach (var (done, pooled) in completions)
            {
                ReturnPooled(pooled);
                done.TrySetException(LostException());
            }
            _writerStopped.TrySetResult();
            FailIfWriterStopped();
        }
    }

    private async Task SendFinalErrorAsync(string code, string message)
    {
        var done = EnqueueControlWithCompletion(new Frame { Error = new Error { Code = code, Message = message } });
        await Task.WhenAny(done, Task.Delay(TimeSpan.FromSeconds(1))).ConfigureAwait(false);
    }
}
