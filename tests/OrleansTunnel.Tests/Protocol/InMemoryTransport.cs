using System.Threading.Channels;
using Google.Protobuf;
using Grpc.Core;
using OrleansTunnel.Mux;
using OrleansTunnel.Protocol.V1;

namespace OrleansTunnel.Tests.Protocol;

/// <summary>Two ends of a tunnel stream in memory; batches are serialised as on the wire, by the tunnel's own codec.</summary>
public sealed class InMemoryTransport
{
    private readonly Channel<FrameBatch> _toA = Channel.CreateUnbounded<FrameBatch>();
    private readonly Channel<FrameBatch> _toB = Channel.CreateUnbounded<FrameBatch>();

    public IAsyncStreamReader<FrameBatch> ReaderA => new Reader(_toA.Reader);
    public IAsyncStreamReader<FrameBatch> ReaderB => new Reader(_toB.Reader);

    public Task WriteToB(FrameBatch batch) => _toB.Writer.WriteAsync(Copy(batch)).AsTask();
    public Task WriteToA(FrameBatch batch) => _toA.Writer.WriteAsync(Copy(batch)).AsTask();

    public void CloseB() => _toB.Writer.TryComplete();

    private static FrameBatch Copy(FrameBatch batch) => FrameCodec.Parse(new System.Buffers.ReadOnlySequence<byte>(CodecBuffers.Serialize(batch)));

    private sealed class Reader(ChannelReader<FrameBatch> reader) : IAsyncStreamReader<FrameBatch>
    {
        public FrameBatch Current { get; private set; } = null!;

        public async Task<bool> MoveNext(CancellationToken cancellationToken)
        {
            if (await reader.WaitToReadAsync(cancellationToken) && reader.TryRead(out var batch))
            {
                Current = batch;
                return true;
            }
            return false;
        }
    }
}
