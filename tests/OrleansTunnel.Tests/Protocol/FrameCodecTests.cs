using System.Buffers;
using Google.Protobuf;
using OrleansTunnel.Mux;
using OrleansTunnel.Protocol.V1;
using Xunit;

namespace OrleansTunnel.Tests.Protocol;

/// <summary>
/// The tunnel's own frame codec against the generated protobuf code: the same bytes written, the same
/// frames read (in one segment or many), pooled payloads for plain data frames only, malformed input refused.
/// </summary>
public sealed class FrameCodecTests
{
    private static FrameBatch EveryKind()
    {
        var request = new RequestHead
        {
            RequestId = "req-1", Service = "web", Method = "POST", Scheme = "https", Authority = "app.example.test",
            PathAndQuery = "/upload?x=1", Protocol = OrleansTunnel.Protocol.V1.Protocol.Http1, TimeoutMs = 30_000, HttpVersion = "1.1",
            Headers = { new Header { Name = "content-type", Value = "text/plain; charset=utf-8" }, new Header { Name = "x-name", Value = "Zoë 日本 🚀" } },
        };
        var response = new ResponseHead { Status = 200, Headers = { new Header { Name = "server", Value = "backend" } } };
        var payload = new byte[70_000];
        Random.Shared.NextBytes(payload);
        return new FrameBatch
        {
            Frames =
            {
                new Frame { Challenge = new Challenge { Nonce = ByteString.CopyFrom(1, 2, 3) } },
                new Frame { Stream = 1, RequestHead = request },
                new Frame { Stream = 300_000_000_001, ResponseHead = response },
                new Frame { Stream = 3, Data = new Data { Payload = ByteString.CopyFrom(payload, 0, 65_536) } },
                new Frame { Stream = 3, Data = new Data { Payload = ByteString.CopyFrom(payload, 0, 10), EndOfBody = true } },
                new Frame { Stream = 5, Data = new Data { EndOfBody = true } },
                new Frame { Stream = 7, Data = new Data() },
                new Frame { Data = new Data { Payload = ByteString.CopyFromUtf8("stream zero") } },
                new Frame { Stream = 9, RequestHead = new RequestHead() },
                new Frame { Stream = 9, WindowUpdate = new WindowUpdate { Increment = 65_536 } },
                new Frame { Stream = 11, Reset = new Reset { Code = ResetCode.Cancelled, Reason = "gone" } },
                new Frame { Ping = new Ping { Id = 42, SentUnixMs = 1_700_000_000_000 } },
                new Frame(),
            },
        };
    }

    [Fact]
    public void Writes_TheSameBytes_AsTheGeneratedSerializer()
    {
        var batch = EveryKind();
        Assert.Equal(batch.ToByteArray(), CodecBuffers.Serialize(batch));
    }

    [Fact]
    public void Writes_ManyFrames_AndAnEmptyBatch_AsTheGeneratedSerializer()
    {
        var many = new FrameBatch();
        for (int i = 0; i < 200; i++)
        {
            many.Frames.Add(new Frame { Stream = (ulong)(2 * i + 1), Data = new Data { Payload = ByteString.CopyFromUtf8(new string('x', i)), EndOfBody = i % 3 == 0 } });
        }
        Assert.Equal(many.ToByteArray(), CodecBuffers.Serialize(many));
        Assert.Empty(CodecBuffers.Serialize(new FrameBatch()));
    }

    [Fact]
    public void Reads_WhatTheGeneratedSerializerWrote_WithPooledPayloads()
    {
        var batch = EveryKind();
        var parsed = FrameCodec.Parse(new ReadOnlySequence<byte>(batch.ToByteArray()));
        Assert.Equal(batch, parsed);
        // Plain data frames with bytes lease a pooled buffer; everything else is the generated parser's.
        Assert.True(parsed.Frames[3].Data.IsLeased);
        Assert.True(parsed.Frames[4].Data.IsLeased);
        Assert.True(parsed.Frames[7].Data.IsLeased);
        Assert.False(parsed.Frames[5].Data.IsLeased);
        Assert.False(parsed.Frames[6].Data.IsLeased);
    }

    [Fact]
    public void Reads_ABatchSplitAcrossManySegments()
    {
        var batch = EveryKind();
        var bytes = batch.ToByteArray();
        foreach (int size in new[] { 1, 7, 4096 })
        {
            Assert.Equal(batch, FrameCodec.Parse(Segmented(bytes, size)));
        }
    }

    [Fact]
    public void ReleasingAPayload_EmptiesIt_AndTakingTheLease_HandsOverTheBytes()
    {
        var batch = new FrameBatch { Frames = { new Frame { Stream = 1, Data = new Data { Payload = ByteString.CopyFromUtf8("hello") } }, new Frame { Stream = 3, Data = new Data { Payload = ByteString.CopyFromUtf8("world") } } } };
        var parsed = FrameCodec.Parse(new ReadOnlySequence<byte>(batch.ToByteArray()));

        var first = parsed.Frames[0].Data;
        first.ReleasePayload();
        Assert.False(first.IsLeased);
        Assert.True(first.Payload.IsEmpty);
        first.ReleasePayload(); // a second release is a no-op, never a double return

        var second = parsed.Frames[1].Data;
        var lease = second.TakeLease();
        Assert.NotNull(lease);
        Assert.Equal("world", System.Text.Encoding.UTF8.GetString(lease!, 0, 5));
        Assert.True(second.Payload.IsEmpty);
        Assert.Null(second.TakeLease());
        ArrayPool<byte>.Shared.Return(lease);
    }

    [Theory]
    // Frame { stream: 3, data: { payload: "ab", field 9: 1 } }: an unknown field inside the data.
    [InlineData("0A0A 0803 2A06 0A026162 4801")]
    // Frame { stream: 3, data: { payload: "ab", payload: "cd" } }: a repeated payload (the last wins).
    [InlineData("0A0C 0803 2A08 0A026162 0A026364")]
    // Frame { stream: 3, data: { payload: "ab" }, data: { end_of_body: true } }: two data fields (merged).
    [InlineData("0A0C 0803 2A04 0A026162 2A021001")]
    // Frame { data: { payload: "ab" }, stream: 3 }: fields in another order.
    [InlineData("0A08 2A04 0A026162 0803")]
    // Frame { stream: 3, data: {...}, field 99: 1 }: an unknown frame field.
    [InlineData("0A0B 0803 2A04 0A026162 980601")]
    // An unknown batch field before the frame.
    [InlineData("1001 0A08 0803 2A04 0A026162")]
    public void OddShapes_ReadAsTheGeneratedParserReadsThem(string hex)
    {
        var bytes = Convert.FromHexString(hex.Replace(" ", ""));
        Assert.Equal(FrameBatch.Parser.ParseFrom(bytes), FrameCodec.Parse(new ReadOnlySequence<byte>(bytes)));
    }

    [Fact]
    public void APayloadLargerThanAFrame_IsNotPooled_ButStillRead()
    {
        var batch = new FrameBatch { Frames = { new Frame { Stream = 1, Data = new Data { Payload = ByteString.CopyFrom(new byte[MuxSettings.MaxDataFrameCeiling + 1]) } } } };
        var parsed = FrameCodec.Parse(new ReadOnlySequence<byte>(batch.ToByteArray()));
        Assert.Equal(batch, parsed);
        Assert.False(parsed.Frames[0].Data.IsLeased);
    }

    [Theory]
    // A frame whose length runs past the end.
    [InlineData("0A10 0803 2A04 0A026162")]
    // A payload whose length runs past the end of its data message.
    [InlineData("0A08 0803 2A04 0A096162")]
    // A varint that never ends.
    [InlineData("0A05 08FFFFFFFF")]
    public void MalformedInput_IsRefused_AsTheGeneratedParserRefusesIt(string hex)
    {
        var bytes = Convert.FromHexString(hex.Replace(" ", ""));
        Assert.Throws<InvalidProtocolBufferException>(() => FrameBatch.Parser.ParseFrom(bytes));
        Assert.Throws<InvalidProtocolBufferException>(() => FrameCodec.Parse(new ReadOnlySequence<byte>(bytes)));
    }

    private static ReadOnlySequence<byte> Segmented(byte[] bytes, int size)
    {
        Segment? first = null, last = null;
        for (int at = 0; at < bytes.Length; at += size)
        {
            var memory = bytes.AsMemory(at, Math.Min(size, bytes.Length - at));
            if (last is null)
            {
                first = last = new Segment(memory, 0);
            }
            else
            {
                last = last.Append(memory);
            }
        }
        return new ReadOnlySequence<byte>(first!, 0, last!, last!.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
