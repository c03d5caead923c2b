using Google.Protobuf;
using Microsoft.Extensions.Logging.Abstractions;
using OrleansTunnel.Mux;
using OrleansTunnel.Protocol.V1;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;

namespace OrleansTunnel.Tests.Protocol;

/// <summary>The multiplexer against a hand-driven peer: credit, forged streams, malformed frames.</summary>
public sealed class MuxTests : IAsyncDisposable
{
    private readonly InMemoryTransport _transport = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly MuxConnection _gateway;
    private readonly Task _run;
    private readonly List<string> _violations = [];
    private Action? _whileReadLoopReports;  // runs on the read loop when it reports a violation

    public MuxTests()
    {
        // Side A is the gateway under test; the test plays the agent on side B by hand.
        var settings = new MuxSettings { ReceiveWindow = 4096, SendWindow = 4096, MaxDataFrame = 4096, MaxQueuedFramesPerStream = 64, MaxProtocolViolations = 4 };
        _gateway = new MuxConnection(_transport.ReaderA, (batch, _) => _transport.WriteToB(batch), settings, opensStreams: true, NullLogger.Instance)
        {
            ProtocolViolation = v =>
            {
                lock (_violations)
                {
                    _violations.Add(v);
                }
                _whileReadLoopReports?.Invoke();
            },
        };
        _run = _gateway.RunAsync(TimeSpan.Zero, _stop.Token);
    }

    private async Task<Frame> NextFrameAtAgent(Func<Frame, bool> match)
    {
        var reader = _transport.ReaderB;
        while (await reader.MoveNext(CancellationToken.None).Within(TimeSpan.FromSeconds(5)))
        {
            foreach (var f in reader.Current.Frames)
            {
                if (match(f))
                {
                    return f;
                }
            }
        }
        throw new InvalidOperationException("the gateway closed the stream");
    }

    private static FrameBatch Batch(params Frame[] frames) => new() { Frames = { frames } };

    private async Task<MuxStream> OpenRequestAsync()
    {
        var stream = _gateway.OpenStream();
        stream.SendHead(new Frame { RequestHead = new RequestHead { RequestId = "r" + stream.Id, Method = "GET", EndOfBody = true } });
        await NextFrameAtAgent(f => f.Stream == stream.Id && f.KindCase == Frame.KindOneofCase.RequestHead);
        return stream;
    }

    [Fact]
    public async Task DataBeyondTheGrantedCredit_ResetsOnlyThatStream()
    {
        var victim = await OpenRequestAsync();
        var bystander = await OpenRequestAsync();
        await _transport.WriteToA(Batch(
            new Frame { Stream = victim.Id, ResponseHead = new ResponseHead { Status = 200 } },
            new Frame { Stream = victim.Id, Data = new Data { Payload = ByteString.CopyFrom(new byte[3000]) } },
            new Frame { Stream = victim.Id, Data = new Data { Payload = ByteString.CopyFrom(new byte[3000]) } }));

        var reset = await NextFrameAtAgent(f => f.Stream == victim.Id && f.KindCase == Frame.KindOneofCase.Reset);
        Assert.Equal(ResetCode.ProtocolError, reset.Reset.Code);
        Assert.Contains("beyond the credit", reset.Reset.Reason);
        Assert.True(victim.Aborted.IsCancellationRequested);

        // The connection and the other request live on.
        await _transport.WriteToA(Batch(new Frame { Stream = bystander.Id, ResponseHead = new ResponseHead { Status = 204, EndOfBody = true } }));
        var head = await bystander.ReadAsync(CancellationToken.None).AsTask().Within(TimeSpan.FromSeconds(5));
        Assert.Equal(204, head!.ResponseHead.Status);
        Assert.False(_gateway.Closed.IsCancellationRequested);
    }

    [Fact]
    public async Task ASecondResponseHead_ResetsOnlyThatStream()
    {
        var victim = await OpenRequestAsync();
        await _transport.WriteToA(Batch(
            new Frame { Stream = victim.Id, ResponseHead = new ResponseHead { Status = 200 } },
            new Frame { Stream = victim.Id, ResponseHead = new ResponseHead { Status = 200 } }));
        var reset = await NextFrameAtAgent(f => f.Stream == victim.Id && f.KindCase == Frame.KindOneofCase.Reset);
        Assert.Equal(ResetCode.ProtocolError, reset.Reset.Code);
        Assert.Equal("a second response head on one stream", reset.Reset.Reason);
        Assert.False(_gateway.Closed.IsCancellationRequested);
    }

    [Fact]
    public async Task EmptyFramesThatCostNoCredit_AreBoundedPerStream()
    {
        // Nobody reads this stream: 65 empty non-final data frames (no credit used) exceed its 64-frame bound.
        var victim = await OpenRequestAsync();
        var frames = new List<Frame> { new() { Stream = victim.Id, ResponseHead = new ResponseHead { Status = 200 } } };
        frames.AddRange(Enumerable.Range(0, 64).Select(_ => new Frame { Stream = victim.Id, Data = new Data() }));
        await _transport.WriteToA(Batch([.. frames]));
        var reset = await NextFrameAtAgent(f => f.Stream == victim.Id && f.KindCase == Frame.KindOneofCase.Reset);
        Assert.Equal(ResetCode.ProtocolError, reset.Reset.Code);
        Assert.StartsWith("peer queued more than 64 frames the reader has not taken", reset.Reset.Reason);
    }

    [Fact]
    public async Task AReadCancelledWhileItWaits_Throws_AndLosesNoFrame_AndItsTokenNeverCancelsALaterRead()
    {
        var stream = await OpenRequestAsync();

        // A read waiting on an empty stream is cancelled by its token.
        using var first = new CancellationTokenSource();
        var waiting = stream.ReadAsync(first.Token).AsTask();
        Assert.False(waiting.IsCompleted);
        first.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting.Within(TimeSpan.FromSeconds(5)));

        // A read answered by a frame, whose token is cancelled afterwards, must not cancel the next read.
        using var second = new CancellationTokenSource();
        var answered = stream.ReadAsync(second.Token).AsTask();
        await _transport.WriteToA(Batch(new Frame { Stream = stream.Id, ResponseHead = new ResponseHead { Status = 200 } }));
        Assert.Equal(200, (await answered.Within(TimeSpan.FromSeconds(5)))!.ResponseHead.Status);
        var later = stream.ReadAsync(CancellationToken.None).AsTask();
        second.Cancel();
        Assert.False(later.IsCompleted);

        // Frames written meanwhile reach that later read, in order, then the end.
        await _transport.WriteToA(Batch(
            new Frame { Stream = stream.Id, Data = new Data { Payload = ByteString.CopyFromUtf8("one") } },
            new Frame { Stream = stream.Id, Data = new Data { Payload = ByteString.CopyFromUtf8("two"), EndOfBody = true } }));
        Assert.Equal("one", (await later.Within(TimeSpan.FromSeconds(5)))!.Data.Payload.ToStringUtf8());
        Assert.True(stream.TryRead(out var two));
        Assert.Equal("two", two!.Data.Payload.ToStringUtf8());
        Assert.Null(await stream.ReadAsync(CancellationToken.None).AsTask().Within(TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public async Task AMessagesFrames_ReachAWaitingReaderTogether_SoAHeadIsNeverSeenWithoutTheResetThatCameWithIt()
    {
        var stream = await OpenRequestAsync();
        var waiting = stream.ReadAsync(CancellationToken.None);
        // One message: the head, a frame for a stream never opened (its report runs on the read loop, between the
        // head and the reset), then the reset. While the read loop is inside the message, the read must not be
        // answered (IsCompleted asks the read's source directly, with no thread-pool hop).
        bool answeredMidMessage = true;
        _whileReadLoopReports = () => answeredMidMessage = waiting.IsCompleted;
        await _transport.WriteToA(Batch(
            new Frame { Stream = stream.Id, ResponseHead = new ResponseHead { Status = 200 } },
            new Frame { Stream = 999, Data = new Data() },
            new Frame { Stream = stream.Id, Reset = new Reset { Code = ResetCode.Internal, Reason = "agent lost" } }));

        Assert.Equal(200, (await waiting.AsTask().Within(TimeSpan.FromSeconds(5)))!.ResponseHead.Status);
        Assert.False(answeredMidMessage, "the reader was answered with the head before the rest of its message was routed");
        // Woken by the head, the reader sees the reset at once (the relay retries instead of flushing a lone head).
        Assert.True(stream.TryRead(out var reset));
        Assert.Equal("agent lost", reset!.Reset.Reason);
        Assert.Null(await stream.ReadAsync(CancellationToken.None).AsTask().Within(TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public async Task DataAfterTheEndOfBody_NeverReachesTheReader()
    {
        var victim = await OpenRequestAsync();
        await _transport.WriteToA(Batch(
            new Frame { Stream = victim.Id, ResponseHead = new ResponseHead { Status = 200 } },
            new Frame { Stream = victim.Id, Data = new Data { Payload = ByteString.CopyFromUtf8("end"), EndOfBody = true } },
            new Frame { Stream = victim.Id, Data = new Data { Payload = ByteString.CopyFromUtf8("more") } }));
        // The reader still gets what was sent before the end.
        Assert.Equal(200, (await victim.ReadAsync(CancellationToken.None).AsTask().Within(TimeSpan.FromSeconds(5)))!.ResponseHead.Status);
        Assert.Equal("end", (await victim.ReadAsync(CancellationToken.None).AsTask().Within(TimeSpan.FromSeconds(5)))!.Data.Payload.ToStringUtf8());
        // Nothing after the end reaches the reader, and the connection lives on (a finished stream's late frames are dropped).
        Assert.Null(await victim.ReadAsync(CancellationToken.None).AsTask().Within(TimeSpan.FromSeconds(5)));
        var next = await OpenRequestAsync();
        Assert.False(next.Aborted.IsCancellationRequested);
        Assert.False(_gateway.Closed.IsCancellationRequested);
    }

    [Fact]
    public async Task RepeatedStreamViolations_CloseTheWholeConnection()
    {
        var streams = new List<MuxStream>();
        for (int i = 0; i < 4; i++)
        {
            streams.Add(await OpenRequestAsync());
        }
        await _transport.WriteToA(Batch([.. streams.SelectMany(s => new[]
        {
            new Frame { Stream = s.Id, ResponseHead = new ResponseHead { Status = 200 } },
            new Frame { Stream = s.Id, ResponseHead = new ResponseHead { Status = 200 } },
        })]));
        var error = await NextFrameAtAgent(f => f.KindCase == Frame.KindOneofCase.Error);
        Assert.Equal("protocol_error", error.Error.Code);
        Assert.StartsWith("4 stream protocol errors on this connection (the last: a second response head on one stream)", error.Error.Message);
        Assert.Equal(4, _gateway.ProtocolViolations);
    }

    [Fact]
    public async Task FramesForAStreamNeverOpened_AreRejectedAndReported()
    {
        await _transport.WriteToA(Batch(new Frame { Stream = 999, Data = new Data { Payload = ByteString.CopyFromUtf8("forged") } }));
        var stream = await OpenRequestAsync();
        await Eventually.TrueAsync(() => { lock (_violations) { return _violations.Count > 0; } }, TimeSpan.FromSeconds(5), "no violation reported");
        lock (_violations)
        {
            Assert.Contains(_violations, v => v.Contains("stream 999 that was never opened"));
        }
        Assert.False(_gateway.Closed.IsCancellationRequested);
        Assert.False(stream.Aborted.IsCancellationRequested);
    }

    [Fact]
    public async Task AnAgentOpeningAStream_IsAConnectionProtocolError()
    {
        var stream = await OpenRequestAsync();
        await _transport.WriteToA(Batch(new Frame { Stream = 2, RequestHead = new RequestHead { RequestId = "evil" } }));
        var error = await NextFrameAtAgent(f => f.KindCase == Frame.KindOneofCase.Error);
        Assert.Equal("protocol_error", error.Error.Code);
        await _run.Within(TimeSpan.FromSeconds(5));
        Assert.StartsWith("protocol error", _gateway.CloseReason);
        // Requests on it end with a reason instead of hanging.
        Assert.True(stream.Aborted.IsCancellationRequested);
    }

    [Fact]
    public async Task SenderStops_AtTheEndOfItsCredit_AndResumesOnWindowUpdate()
    {
        var stream = _gateway.OpenStream();
        stream.SendHead(new Frame { RequestHead = new RequestHead { RequestId = "upload", Method = "POST" } });
        var send = stream.SendDataAsync(new byte[4096 + 100], endOfBody: true, CancellationToken.None).AsTask();
        var first = await NextFrameAtAgent(f => f.Stream == stream.Id && f.KindCase == Frame.KindOneofCase.Data);
        Assert.Equal(4096, first.Data.Payload.Length);
        Assert.Equal(0, stream.SendCredit);
        Assert.False(send.IsCompleted, "the sender went past its credit");

        await _transport.WriteToA(Batch(new Frame { Stream = stream.Id, WindowUpdate = new WindowUpdate { Increment = 4096 } }));
        var rest = await NextFrameAtAgent(f => f.Stream == stream.Id && f.KindCase == Frame.KindOneofCase.Data);
        Assert.Equal(100, rest.Data.Payload.Length);
        Assert.True(rest.Data.EndOfBody);
        await send.Within(TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task ALeasedBuffer_LargerThanTheCredit_ArrivesWhole_InOrder()
    {
        var stream = _gateway.OpenStream();
        stream.SendHead(new Frame { RequestHead = new RequestHead { RequestId = "leased", Method = "POST" } });
        var bytes = new byte[4096 * 2 + 300];
        Random.Shared.NextBytes(bytes);
        var lease = System.Buffers.ArrayPool<byte>.Shared.Rent(bytes.Length);
        bytes.CopyTo(lease, 0);
        var send = stream.SendLeasedDataAsync(lease, bytes.Length, endOfBody: true, CancellationToken.None).AsTask();

        // 4096 bytes of credit at a time: two copied frames, then the lease itself carries the last 300.
        var received = new List<byte>();
        for (int i = 0; i < 3; i++)
        {
            var frame = await NextFrameAtAgent(f => f.Stream == stream.Id && f.KindCase == Frame.KindOneofCase.Data);
            received.AddRange(frame.Data.Payload.ToByteArray());
            Assert.Equal(i == 2, frame.Data.EndOfBody);
            if (i < 2)
            {
                Assert.False(send.IsCompleted, "the sender went past its credit");
                await _transport.WriteToA(Batch(new Frame { Stream = stream.Id, WindowUpdate = new WindowUpdate { Increment = 4096 } }));
            }
        }
        await send.Within(TimeSpan.FromSeconds(5));
        Assert.Equal(Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(bytes)),
            Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(received.ToArray())));
    }

    [Fact]
    public async Task ALeaseSentOnAResetStream_FailsWithTheReset()
    {
        var stream = await OpenRequestAsync();
        stream.Reset(ResetCode.Cancelled, "test: the visitor left");
        var lease = System.Buffers.ArrayPool<byte>.Shared.Rent(100);
        var error = await Assert.ThrowsAsync<MuxStreamAbortedException>(() => stream.SendLeasedDataAsync(lease, 100, endOfBody: true, CancellationToken.None).AsTask());
        Assert.Contains("the visitor left", error.Reason.Reason);
    }

    [Fact]
    public async Task LosingTheConnection_EndsEveryOpenStreamWithAReason()
    {
        var a = await OpenRequestAsync();
        var b = await OpenRequestAsync();
        _transport.CloseB();
        await _transport.WriteToA(Batch()); // wake the reader; then end its input
        _gateway.Close("test: connection dropped");
        var frameA = await a.ReadAsync(CancellationToken.None).AsTask().Within(TimeSpan.FromSeconds(5));
        Assert.Equal(Frame.KindOneofCase.Reset, frameA!.KindCase);
        Assert.Contains("tunnel connection lost", frameA.Reset.Reason);
        Assert.True(b.Aborted.IsCancellationRequested);
    }

    [Fact]
    public async Task TheStreamLimit_HoldsForConcurrentOpens_AndFreesSlotsAsStreamsFinish()
    {
        var transport = new InMemoryTransport();
        using var stop = new CancellationTokenSource();
        var mux = new MuxConnection(transport.ReaderA, (batch, _) => transport.WriteToB(batch), new MuxSettings { MaxConcurrentStreams = 8 }, opensStreams: true, NullLogger.Instance);
        var run = mux.RunAsync(TimeSpan.Zero, stop.Token);
        // 64 opens race for 8 slots: the limit counts a stream from its open, not from when its head is sent.
        using var start = new ManualResetEventSlim();
        var opened = await Task.WhenAll(Enumerable.Range(0, 64).Select(_ => Task.Run(() =>
        {
            start.Wait();
            try
            {
                return mux.OpenStream();
            }
            catch (MuxStreamAbortedException)
            {
                return null;
            }
        })).Append(Task.Run(() => { start.Set(); return (MuxStream?)null; })));
        var streams = opened.OfType<MuxStream>().ToList();
        Assert.Equal(8, streams.Count);
        Assert.Equal(8, mux.ActiveStreams);
        streams[0].Reset(ResetCode.Cancelled, "test: done");
        Assert.Equal(7, mux.ActiveStreams);
        Assert.NotNull(mux.OpenStream());
        Assert.Throws<MuxStreamAbortedException>(() => mux.OpenStream());
        stop.Cancel();
        await run.WaitAsync(TimeSpan.FromSeconds(5));
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        await _run.WaitAsync(TimeSpan.FromSeconds(5));
    }
}
