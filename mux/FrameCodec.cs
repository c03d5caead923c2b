using System.Buffers;
using Google.Protobuf;
using Grpc.Core;
using OrleansTunnel.Protocol.V1;

namespace OrleansTunnel.Mux;

/// <summary>
/// The tunnel's own marshaller for <see cref="FrameBatch"/>: the same protobuf bytes as the generated
/// one (any protobuf peer reads them), produced and read with less work on the two hot frame kinds.
/// <list type="bullet">
/// <item>Reading: a data frame's payload is copied once into a buffer rented from the pool
/// (<see cref="Data.FromLease"/>) instead of a fresh zeroed array; its consumer gives it back. Every
/// other frame, and any data frame that is not in the plain shape (a repeated or unknown field, an
/// oversized payload), goes through the generated parser, which also reports malformed input.</item>
/// <item>Writing: each frame's size is computed once (the generated writer recomputes nested sizes at
/// every level: a header string was measured five times per write); data frames are written by hand,
/// heads as their messages.</item>
/// </list>
/// </summary>
public static class FrameCodec
{
    private const string ServiceName = "orleanstunnel.v1.Tunnel";
    private const byte BatchFrameTag = (1 << 3) | 2;
    private const byte StreamTag = 1 << 3;
    private const byte RequestHeadTag = (4 << 3) | 2;
    private const byte DataTag = (5 << 3) | 2;
    private const byte ResponseHeadTag = (6 << 3) | 2;
    private const byte PayloadTag = (1 << 3) | 2;
    private const byte EndOfBodyTag = 2 << 3;

    /// <summary>The marshaller for both directions of both tunnel methods.</summary>
    public static Marshaller<FrameBatch> Marshaller { get; } = Marshallers.Create(Serialize, context => Parse(context.PayloadAsReadOnlySequence()));

    /// <summary><c>Tunnel.Connect</c> (agent to gateway) with this codec.</summary>
    public static Method<FrameBatch, FrameBatch> Connect { get; } = new(MethodType.DuplexStreaming, ServiceName, "Connect", Marshaller, Marshaller);

    /// <summary><c>Tunnel.Peer</c> (gateway to gateway) with this codec.</summary>
    public static Method<FrameBatch, FrameBatch> Peer { get; } = new(MethodType.DuplexStreaming, ServiceName, "Peer", Marshaller, Marshaller);

    /// <summary>Opens a duplex call of <paramref name="method"/> on <paramref name="invoker"/> with this codec.</summary>
    public static AsyncDuplexStreamingCall<FrameBatch, FrameBatch> Open(CallInvoker invoker, Method<FrameBatch, FrameBatch> method, CancellationToken cancellationToken) =>
        invoker.AsyncDuplexStreamingCall(method, null, new CallOptions(cancellationToken: cancellationToken));

    // ---- writing ----

    /// <summary>Serializes a batch into the call's buffer, measuring each frame once.</summary>
    public static void Serialize(FrameBatch batch, SerializationContext context)
    {
        var frames = batch.Frames;
        int count = frames.Count;
        // Per frame: its body's size, and the size of its data or head message inside it.
        int[]? rented = count > 32 ? ArrayPool<int>.Shared.Rent(2 * count) : null;
        Span<int> sizes = rented ?? stackalloc int[64];
        try
        {
            long total = 0;
            for (int i = 0; i < count; i++)
            {
                int size = BodySize(frames[i], out sizes[2 * i + 1]);
                sizes[2 * i] = size;
                total += 1 + CodedOutputStream.ComputeLengthSize(size) + size;
            }
            if (total > int.MaxValue)
            {
                throw new InvalidOperationException($"a frame batch of {total} bytes cannot be one gRPC message");
            }
            context.SetPayloadLength((int)total);
            var writer = context.GetBufferWriter();
            for (int i = 0; i < count; i++)
            {
                WriteFrame(writer, frames[i], sizes[2 * i], sizes[2 * i + 1]);
            }
            context.Complete();
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<int>.Shared.Return(rented);
            }
        }
    }

    /// <summary>The bytes of one frame's body (without its tag and length in the batch) and of its data or head message.</summary>
    private static int BodySize(Frame frame, out int inner)
    {
        inner = frame.KindCase switch
        {
            Frame.KindOneofCase.Data => DataSize(frame.Data),
            Frame.KindOneofCase.RequestHead => frame.RequestHead.CalculateSize(),
            Frame.KindOneofCase.ResponseHead => frame.ResponseHead.CalculateSize(),
            _ => -1,
        };
        if (inner < 0)
        {
            return frame.CalculateSize();
        }
        int stream = frame.Stream == 0 ? 0 : 1 + CodedOutputStream.ComputeUInt64Size(frame.Stream);
        return stream + 1 + CodedOutputStream.ComputeLengthSize(inner) + inner;
    }

    private static int DataSize(Data data)
    {
        int length = data.Payload.Length;
        return (length == 0 ? 0 : 1 + CodedOutputStream.ComputeLengthSize(length) + length) + (data.EndOfBody ? 2 : 0);
    }

    private static void WriteFrame(IBufferWriter<byte> writer, Frame frame, int size, int inner)
    {
        var kind = frame.KindCase;
        // Tag and length of the frame in the batch, then the stream number and the kind's tag and length:
        // at most 1 + 5 + 1 + 10 + 1 + 5 bytes.
        var span = writer.GetSpan(32);
        int at = 0;
        span[at++] = BatchFrameTag;
        at += WriteVarint(span[at..], (uint)size);
        if (kind is not (Frame.KindOneofCase.Data or Frame.KindOneofCase.RequestHead or Frame.KindOneofCase.ResponseHead))
        {
            writer.Advance(at);
            frame.WriteTo(writer);
            return;
        }
        if (frame.Stream != 0)
        {
            span[at++] = StreamTag;
            at += WriteVarint(span[at..], frame.Stream);
        }
        if (kind == Frame.KindOneofCase.Data)
        {
            var data = frame.Data;
            span[at++] = DataTag;
            at += WriteVarint(span[at..], (uint)inner);
            var payload = data.Payload.Span;
            if (!payload.IsEmpty)
            {
                span[at++] = PayloadTag;
                at += WriteVarint(span[at..], (uint)payload.Length);
                writer.Advance(at);
                writer.Write(payload);
                at = 0;
                span = data.EndOfBody ? writer.GetSpan(2) : default;
            }
            if (data.EndOfBody)
            {
                span[at++] = EndOfBodyTag;
                span[at++] = 1;
            }
            writer.Advance(at);
            return;
        }
        IMessage head = kind == Frame.KindOneofCase.RequestHead ? frame.RequestHead : frame.ResponseHead;
        span[at++] = kind == Frame.KindOneofCase.RequestHead ? RequestHeadTag : ResponseHeadTag;
        at += WriteVarint(span[at..], (uint)inner);
        writer.Advance(at);
        head.WriteTo(writer);
    }

    private static int WriteVarint(Span<byte> span, ulong value)
    {
        int at = 0;
        while (value >= 0x80)
        {
            span[at++] = (byte)(value | 0x80);
            value >>= 7;
        }
        span[at++] = (byte)value;
        return at;
    }

    // ---- reading ----

    /// <summary>Parses a batch; data frames in the plain shape get pooled payloads.</summary>
    public static FrameBatch Parse(ReadOnlySequence<byte> payload)
    {
        var batch = new FrameBatch();
        var reader = new SequenceReader<byte>(payload);
        while (!reader.End)
        {
            if (!TryReadVarint(ref reader, out ulong tag) || tag != BatchFrameTag
                || !TryReadVarint(ref reader, out ulong length) || length > (ulong)reader.Remaining)
            {
                // Unknown batch fields or malformed input: the generated parser decides (and reports).
                ReleaseAll(batch);
                return FrameBatch.Parser.ParseFrom(payload);
            }
            var slice = reader.UnreadSequence.Slice(0, (long)length);
            reader.Advance((long)length);
            batch.Frames.Add(ParseFrame(slice));
        }
        return batch;
    }

    private static void ReleaseAll(FrameBatch batch)
    {
        foreach (var frame in batch.Frames)
        {
            frame.Data?.ReleasePayload();
        }
    }

    private static Frame ParseFrame(ReadOnlySequence<byte> slice)
    {
        var reader = new SequenceReader<byte>(slice);
        ulong stream = 0;
        bool seenStream = false;
        Data? data = null;
        while (!reader.End)
        {
            if (!TryReadVarint(ref reader, out ulong tag))
            {
                break;
            }
            if (tag == StreamTag && !seenStream && TryReadVarint(ref reader, out stream))
            {
                seenStream = true;
                continue;
            }
            if (tag == DataTag && data is null && TryReadVarint(ref reader, out ulong length) && length <= (ulong)reader.Remaining
                && ParseData(reader.UnreadSequence.Slice(0, (long)length)) is { } parsed)
            {
                data = parsed;
                reader.Advance((long)length);
                continue;
            }
            data?.ReleasePayload();
            return Frame.Parser.ParseFrom(slice);
        }
        if (data is null || !reader.End)
        {
            data?.ReleasePayload();
            return Frame.Parser.ParseFrom(slice);
        }
        return new Frame { Stream = stream, Data = data };
    }

    /// <summary>A data message of payload and end of body, each at most once; null for any other shape.</summary>
    private static Data? ParseData(ReadOnlySequence<byte> slice)
    {
        var reader = new SequenceReader<byte>(slice);
        ReadOnlySequence<byte> payload = default;
        bool seenPayload = false, seenEnd = false, endOfBody = false;
        while (!reader.End)
        {
            if (!TryReadVarint(ref reader, out ulong tag))
            {
                return null;
            }
            if (tag == PayloadTag && !seenPayload && TryReadVarint(ref reader, out ulong length)
                && length <= MuxSettings.MaxDataFrameCeiling && length <= (ulong)reader.Remaining)
            {
                payload = reader.UnreadSequence.Slice(0, (long)length);
                reader.Advance((long)length);
                seenPayload = true;
                continue;
            }
            if (tag == EndOfBodyTag && !seenEnd && TryReadVarint(ref reader, out ulong flag))
            {
                endOfBody = flag != 0;
                seenEnd = true;
                continue;
            }
            return null;
        }
        if (payload.IsEmpty)
        {
            return new Data { EndOfBody = endOfBody };
        }
        int size = (int)payload.Length;
        var lease = ArrayPool<byte>.Shared.Rent(size);
        payload.CopyTo(lease);
        return Data.FromLease(lease, size, endOfBody);
    }

    private static bool TryReadVarint(ref SequenceReader<byte> reader, out ulong value)
    {
        value = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            if (!reader.TryRead(out byte b))
            {
                return false;
            }
            value |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80)
            {
                return true;
            }
        }
        return false;
    }
}
