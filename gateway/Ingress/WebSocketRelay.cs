using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using OrleansTunnel.Protocol;
using OrleansTunnel.Protocol.V1;

namespace OrleansTunnel.Gateway.Ingress;

/// <summary>
/// The visitor side of a WebSocket once the backend accepted the handshake: the visitor gets the
/// backend's real answer (101 for HTTP/1.1, 200 for RFC 8441), then WebSocket frames cross the tunnel
/// as opaque bytes in both directions (message boundaries, close codes and pings stay the endpoints'
/// own), under the same per-stream credit as any body.
/// </summary>
internal static partial class WebSocketRelay
{
    /// <summary>How long the other direction may take to finish after one direction ended.</summary>
    private static readonly TimeSpan CloseGrace = TimeSpan.FromSeconds(10);

    public static async Task<(long BytesIn, long BytesOut, bool VisitorGone)> RunAsync(HttpContext context, MuxStream stream, ResponseHead head, VisitorKind kind, ILogger logger)
    {
        var response = context.Response;
        foreach (var h in head.Headers)
        {
            if (HopByHop.IsFixed(h.Name) || h.Name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase)
                || (kind == VisitorKind.WebSocketHttp2 && h.Name.Equals("Sec-WebSocket-Accept", StringComparison.OrdinalIgnoreCase)))
            {
                continue;
            }
            response.Headers.Append(h.Name, h.Value);
        }
        Stream visitor;
        if (kind == VisitorKind.WebSocketHttp1)
        {
            response.Headers.Upgrade = "websocket";
            visitor = await context.Features.Get<IHttpUpgradeFeature>()!.UpgradeAsync();
        }
        else
        {
            response.StatusCode = StatusCodes.Status200OK;
            visitor = await context.Features.Get<IHttpExtendedConnectFeature>()!.AcceptAsync();
        }

        long bytesIn = 0, bytesOut = 0;
        bool visitorGone = false;
        using var upStop = CancellationTokenSource.CreateLinkedTokenSource(stream.Aborted, context.RequestAborted);
        var up = Task.Run(async () =>
        {
            var buffer = new byte[MuxSettings.MaxDataFrameCeiling];
            try
            {
                while (true)
                {
                    int n = await visitor.ReadAsync(buffer, upStop.Token);
                    if (n == 0)
                    {
                        await stream.SendDataAsync(ReadOnlyMemory<byte>.Empty, endOfBody: true, upStop.Token);
                        return;
                    }
                    bytesIn += n;
                    await stream.SendDataAsync(buffer.AsMemory(0, n), endOfBody: false, upStop.Token);
                }
            }
            catch (Exception ex) when (ex is OperationCanceledException or IOException or MuxStreamAbortedException)
            {
                if (!stream.Aborted.IsCancellationRequested && !upStop.IsCancellationRequested)
                {
                    visitorGone = true;
                    stream.Reset(ResetCode.Cancelled, "the visitor dropped the WebSocket");
                }
            }
        });

        try
        {
            while (await stream.ReadAsync(context.RequestAborted) is { } frame)
            {
                if (frame.KindCase == Frame.KindOneofCase.Data)
                {
                    var payload = frame.Data.Payload;
                    if (!payload.IsEmpty)
                    {
                        await visitor.WriteAsync(payload.Memory, context.RequestAborted);
                        await visitor.FlushAsync(context.RequestAborted);
                        bytesOut += payload.Length;
                        stream.ReturnCredit(payload.Length);
                    }
                    if (frame.Data.EndOfBody)
                    {
                        break;
                    }
                }
                else if (frame.KindCase == Frame.KindOneofCase.Reset)
                {
                    LogDropped(logger, frame.Reset.Reason);
                    context.Abort();
                    break;
                }
                else if (frame.KindCase == Frame.KindOneofCase.Trailers)
                {
                    break;
                }
            }
            // The backend side ended: let the visitor's direction finish briefly, then stop it.
            await Task.WhenAny(up, Task.Delay(CloseGrace));
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException)
        {
            visitorGone = true;
            stream.Reset(ResetCode.Cancelled, "the visitor dropped the WebSocket");
        }
        finally
        {
            upStop.Cancel();
            await up;
            await visitor.DisposeAsync();
        }
        return (bytesIn, bytesOut, visitorGone);
    }

    [LoggerMessage(EventId = 530, EventName = "WebSocketDropped", Level = LogLevel.Debug,
        Message = "A tunnelled WebSocket was dropped from the agent's side ({Reason}); the visitor's connection was aborted.")]
    private static partial void LogDropped(ILogger logger, string reason);
}
