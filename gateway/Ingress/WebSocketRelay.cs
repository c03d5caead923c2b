using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using OrleansTunnel.Mux;
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

    /// <summary>
    /// Relays until either side ends. When no byte moves in either direction for <paramref name="idleTimeout"/>,
    /// both sides are closed: the tunnel stream is reset (the agent closes the backend's connection) and the
    /// visitor's connection is aborted.
    /// </summary>
    public static async Task<(long BytesIn, long BytesOut, bool VisitorGone, bool IdleClosed)> RunAsync(HttpContext context, MuxStream stream, ResponseHead head, VisitorKind kind, TimeSpan idleTimeout, ILogger logger)
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
        // Re-armed whenever bytes move; firing means the connection sat idle for the whole timeout.
        using var idle = new CancellationTokenSource(idleTimeout);
        using var upStop = CancellationTokenSource.CreateLinkedTokenSource(stream.Aborted, context.RequestAborted, idle.Token);
        using var downStop = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, idle.Token);
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
                    idle.CancelAfter(idleTimeout);
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
            while (await stream.ReadAsync(downStop.Token) is { } frame)
            {
                if (frame.KindCase == Frame.KindOneofCase.Data)
                {
                    var payload = frame.Data.Payload;
                    if (!payload.IsEmpty)
                    {
                        idle.CancelAfter(idleTimeout);
                        await visitor.WriteAsync(payload.Memory, downStop.Token);
                        await visitor.FlushAsync(downStop.Token);
                        frame.Data.ReleasePayload();
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
            // The backend side ended (after its close frame, or dropped): nothing the visitor still sends
            // can be delivered, so close the visitor's side now; clients wait for that close (RFC 6455 7.1.1).
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException)
        {
            if (idle.IsCancellationRequested && !context.RequestAborted.IsCancellationRequested)
            {
                // Nothing moved for the whole idle timeout: close both sides.
                stream.Reset(ResetCode.Cancelled, $"the WebSocket was idle for {idleTimeout} (Gateway:WebSocketIdleTimeout)");
                LogIdle(logger, idleTimeout.TotalSeconds);
                context.Abort();
            }
            else
            {
                visitorGone = true;
                stream.Reset(ResetCode.Cancelled, "the visitor dropped the WebSocket");
            }
        }
        finally
        {
            upStop.Cancel();
            await up;
            await visitor.DisposeAsync();
        }
        bool idleClosed = idle.IsCancellationRequested && !visitorGone;
        if (idleClosed && !context.RequestAborted.IsCancellationRequested)
        {
            stream.Reset(ResetCode.Cancelled, $"the WebSocket was idle for {idleTimeout} (Gateway:WebSocketIdleTimeout)");
            context.Abort();
        }
        return (bytesIn, bytesOut, visitorGone, idleClosed);
    }

    [LoggerMessage(EventId = 531, EventName = "WebSocketIdle", Level = LogLevel.Debug,
        Message = "A tunnelled WebSocket moved no bytes for {Seconds} s and was closed on both sides (Gateway:WebSocketIdleTimeout).")]
    private static partial void LogIdle(ILogger logger, double seconds);

    [LoggerMessage(EventId = 530, EventName = "WebSocketDropped", Level = LogLevel.Debug,
        Message = "A tunnelled WebSocket was dropped from the agent's side ({Reason}); the visitor's connection was aborted.")]
    private static partial void LogDropped(ILogger logger, string reason);
}
