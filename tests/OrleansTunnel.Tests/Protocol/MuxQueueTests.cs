using Microsoft.Extensions.Logging.Abstractions;
using OrleansTunnel.Mux;
using OrleansTunnel.Protocol.V1;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;

namespace OrleansTunnel.Tests.Protocol;

/// <summary>
/// A stream keeps up to MaxStreamQueuedBytes of body frames queued for the writer (issue 11): the
/// head still goes first, the body arrives whole and in order, and no batch carries more of one
/// stream than its bound (plus the one frame that may always wait).
/// </summary>
public sealed class MuxQueueTests
{
    [Theory]
    [InlineData(0)]
    [InlineData(8192)]
    [InlineData(256 * 1024)]
    public async Task ABulkBody_ArrivesWholeAndInOrder_HeadFirst_WithinTheStreamsQueueBound(int bound)
    {
        const int frame = 4096;
        var transport = new InMemoryTransport();
        using var stop = new CancellationTokenSource();
        var settings = new MuxSettings { ReceiveWindow = 1 << 20, SendWindow = 1 << 20, MaxDataFrame = frame, MaxStreamQueuedBytes = bound };
        var mux = new MuxConnection(transport.ReaderA, (batch, _) => transport.WriteToB(batch), settings, opensStreams: true, NullLogger.Instance);
        var run = mux.RunAsync(TimeSpan.Zero, stop.Token);

        var body = new byte[40 * frame + 123];
        new Random(11).NextBytes(body);
        var stream = mux.OpenStream();
        stream.SendHead(new Frame { RequestHead = new RequestHead { RequestId = "bulk", Method = "POST" } });
        var send = stream.SendDataAsync(body, endOfBody: true, CancellationToken.None).AsTask();

        var received = new MemoryStream();
        bool headSeen = false, ended = false;
        int mostInOneBatch = 0;
        var reader = transport.ReaderB;
        while (!ended && await reader.MoveNext(CancellationToken.None).Within(TimeSpan.FromSeconds(10)))
        {
            int inBatch = 0;
            foreach (var f in reader.Current.Frames.Where(f => f.Stream == stream.Id))
            {
                if (f.KindCase == Frame.KindOneofCase.RequestHead)
                {
                    Assert.False(headSeen);
                    headSeen = true;
                    continue;
                }
                Assert.True(headSeen, "a body frame reached the peer before the request head");
                Assert.Equal(Frame.KindOneofCase.Data, f.KindCase);
                Assert.False(ended, "a frame followed the end of body");
                f.Data.Payload.WriteTo(received);
                ended = f.Data.EndOfBody;
                inBatch++;
            }
            mostInOneBatch = Math.Max(mostInOneBatch, inBatch);
        }
        await send.Within(TimeSpan.FromSeconds(10));

        Assert.True(ended, "the body never ended");
        Assert.Equal(body, received.ToArray());
        // Frames not yet written are bounded by the bound (one frame may always wait).
        Assert.True(mostInOneBatch <= Math.Max(1, bound / frame), $"a batch carried {mostInOneBatch} frames of one stream with a bound of {bound} bytes");
        await stop.CancelAsync();
        await run.Within(TimeSpan.FromSeconds(10));
    }
}
