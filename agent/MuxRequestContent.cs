using System.Net;
using OrleansTunnel.Protocol;
using OrleansTunnel.Protocol.V1;

namespace OrleansTunnel.Agent;

/// <summary>
/// A request body that streams from the tunnel to the backend frame by frame; credit goes back to the
/// gateway only after the backend connection took the bytes, so a slow backend slows the visitor.
/// </summary>
internal sealed class MuxRequestContent(MuxStream stream, long? length) : HttpContent
{
    protected override Task SerializeToStreamAsync(Stream target, TransportContext? context) =>
        SerializeToStreamAsync(target, context, CancellationToken.None);

    protected override async Task SerializeToStreamAsync(Stream target, TransportContext? context, CancellationToken cancellationToken)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, stream.Aborted);
        while (await stream.ReadAsync(linked.Token) is { } frame)
        {
            switch (frame.KindCase)
            {
                case Frame.KindOneofCase.Data:
                    var payload = frame.Data.Payload;
                    if (!payload.IsEmpty)
                    {
                        await target.WriteAsync(payload.Memory, linked.Token);
                        // HTTP/2 request bodies are buffered until flushed: a streaming call's message must go now.
                        await target.FlushAsync(linked.Token);
                        stream.ReturnCredit(payload.Length);
                    }
                    if (frame.Data.EndOfBody)
                    {
                        return;
                    }
                    break;
                case Frame.KindOneofCase.Trailers:
                    return;
                case Frame.KindOneofCase.Reset:
                    throw new IOException($"the visitor's request body was reset: {frame.Reset.Reason}");
            }
        }
    }

    protected override bool TryComputeLength(out long length)
    {
        length = _length ?? 0;
        return _length.HasValue;
    }

    private readonly long? _length = length;
}
