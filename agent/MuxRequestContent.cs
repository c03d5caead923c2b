using System.Net;
using OrleansTunnel.Mux;
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
        // Frames already here go to the backend connection back to back; the flush comes when none is
        // waiting (or this many bytes are unflushed), and credit goes back once it completed.
        int flushEvery = Math.Max(stream.Connection.Settings.MaxStreamQueuedBytes, stream.Connection.Settings.MaxDataFrame);
        int unflushed = 0;
        var frame = await stream.ReadAsync(linked.Token);
        while (frame is not null)
        {
            switch (frame.KindCase)
            {
                case Frame.KindOneofCase.Data:
                    var payload = frame.Data.Payload;
                    if (!payload.IsEmpty)
                    {
                        await target.WriteAsync(payload.Memory, linked.Token);
                        unflushed += payload.Length;
                        // The connection's stream copied the bytes: the payload's pooled buffer can go back.
                        frame.Data.ReleasePayload();
                    }
                    if (frame.Data.EndOfBody)
                    {
                        await FlushAsync(target, unflushed, linked.Token);
                        return;
                    }
                    break;
                case Frame.KindOneofCase.Trailers:
                    await FlushAsync(target, unflushed, linked.Token);
                    return;
                case Frame.KindOneofCase.Reset:
                    throw new IOException($"the visitor's request body was reset: {frame.Reset.Reason}");
            }
            if (stream.TryRead(out frame) && unflushed < flushEvery)
            {
                continue;
            }
            // HTTP/2 request bodies are buffered until flushed: a streaming call's message must go now.
            await FlushAsync(target, unflushed, linked.Token);
            unflushed = 0;
            frame ??= await stream.ReadAsync(linked.Token);
        }
    }

    private async Task FlushAsync(Stream target, int unflushed, CancellationToken cancellationToken)
    {
        if (unflushed > 0)
        {
            await target.FlushAsync(cancellationToken);
            stream.ReturnCredit(unflushed);
        }
    }

    protected override bool TryComputeLength(out long length)
    {
        length = _length ?? 0;
        return _length.HasValue;
    }

    private readonly long? _length = length;
}
