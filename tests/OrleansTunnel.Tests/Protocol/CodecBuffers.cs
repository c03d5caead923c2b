using System.Buffers;
using Grpc.Core;
using OrleansTunnel.Mux;
using OrleansTunnel.Protocol.V1;

namespace OrleansTunnel.Tests.Protocol;

/// <summary>Runs <see cref="FrameCodec"/>'s writer as gRPC does (the length announced first), into an array.</summary>
public static class CodecBuffers
{
    public static byte[] Serialize(FrameBatch batch)
    {
        var context = new ArraySerializationContext();
        FrameCodec.Serialize(batch, context);
        return context.Result();
    }

    private sealed class ArraySerializationContext : SerializationContext
    {
        private readonly ArrayBufferWriter<byte> _writer = new();
        private int? _announced;
        private bool _complete;

        public override void SetPayloadLength(int payloadLength) => _announced = payloadLength;

        public override IBufferWriter<byte> GetBufferWriter() => _writer;

        public override void Complete() => _complete = true;

        public override void Complete(byte[] payload) => throw new InvalidOperationException("the codec writes into the buffer writer");

        public byte[] Result()
        {
            if (!_complete || _announced != _writer.WrittenCount)
            {
                throw new InvalidOperationException($"announced {_announced} bytes, wrote {_writer.WrittenCount}, complete: {_complete}");
            }
            return _writer.WrittenSpan.ToArray();
        }
    }
}
