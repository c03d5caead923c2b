using System.Buffers;
using OrleansTunnel.Mux;
using OrleansTunnel.Protocol.V1;

namespace OrleansTunnel.Agent;

/// <summary>The WebSocket half of the forwarder: a 101 from the backend, then raw bytes both ways.</summary>
public sealed partial class BackendForwarder
{
    private async Task RelayWebSocketAsync(MuxStream stream, RequestHead head, HttpResponseMessage response, Backend backend)
    {
        var cancel = stream.Aborted;
        var responseHead = new ResponseHead { Status = 101 };
        AddHeaders(responseHead.Headers, response.Headers, response.Content.Headers);
        stream.SendHead(new Frame { ResponseHead = responseHead });
        await using var connection = await response.Content.ReadAsStreamAsync(cancel);
        var down = Task.Run(async () =>
        {
            var buffer = ArrayPool<byte>.Shared.Rent(_options.ResponseBufferSize);
            try
            {
                while (true)
                {
                    int n = await connection.ReadAsync(buffer, cancel);
                    await stream.SendDataAsync(buffer.AsMemory(0, n), endOfBody: n == 0, cancel);
                    if (n == 0)
                    {
                        return;
                    }
                }
            }
            catch (Exception ex) when (ex is IOException or OperationCanceledException or MuxStreamAbortedException)
            {
                if (!cancel.IsCancellationRequested)
                {
                    stream.Reset(ResetCode.BackendUnavailable, "the backend dropped the WebSocket");
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        });
        try
        {
            while (await stream.ReadAsync(cancel) is { } frame)
            {
                if (frame.KindCase != Frame.KindOneofCase.Data)
                {
                    break;
                }
                var payload = frame.Data.Payload;
                if (!payload.IsEmpty)
                {
                    await connection.WriteAsync(payload.Memory, cancel);
                    await connection.FlushAsync(cancel);
                    frame.Data.ReleasePayload();
                    stream.ReturnCredit(payload.Length);
                }
                if (frame.Data.EndOfBody)
                {
                    break;
                }
            }
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException)
        {
            LogBackendFailed(_logger, head.RequestId, backend.Name, "the WebSocket to the backend broke: " + ex.Message);
        }
        // The visitor's side ended: closing the backend connection ends the backend's side promptly.
        await connection.DisposeAsync();
        await down;
    }
}
