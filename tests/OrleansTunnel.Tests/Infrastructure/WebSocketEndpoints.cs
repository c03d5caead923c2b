using System.Net.WebSockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace OrleansTunnel.Tests.Infrastructure;

/// <summary>WebSocket endpoints of the test backend.</summary>
internal static class WebSocketEndpoints
{
    public static void Map(IEndpointRouteBuilder app, Func<TestBackend> backend)
    {
        // A backend path that answers 101 without switching to WebSocket (no or a wrong accept hash, or
        // another protocol), then exposes a raw pipe: what a visitor must never get through the tunnel.
        app.Map("/ws-fake-101", async (HttpContext c) =>
        {
            var upgrade = c.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpUpgradeFeature>();
            if (upgrade is not { IsUpgradableRequest: true })
            {
                c.Response.StatusCode = 400;
                return;
            }
            switch (c.Request.Query["kind"].ToString())
            {
                case "wrong-accept":
                    c.Response.Headers.Upgrade = "websocket";
                    c.Response.Headers["Sec-WebSocket-Accept"] = "AAAAAAAAAAAAAAAAAAAAAAAAAAA=";
                    break;
                case "no-accept":
                    c.Response.Headers.Upgrade = "websocket";
                    break;
                default:
                    c.Response.Headers.Upgrade = "raw-pipe";
                    break;
            }
            await using var pipe = await upgrade.UpgradeAsync();
            await pipe.WriteAsync("RAW PIPE TO THE BACKEND\r\n"u8.ToArray());
            await pipe.FlushAsync();
            await Task.Delay(TimeSpan.FromSeconds(5), c.RequestAborted).ContinueWith(_ => { });
        });
        // Echoes every message whole (type and boundaries kept), then echoes the visitor's close.
        app.Map("/ws", async (HttpContext c) =>
        {
            if (!c.WebSockets.IsWebSocketRequest)
            {
                return Results.Text("not a websocket request\n", statusCode: 400);
            }
            string? protocol = c.WebSockets.WebSocketRequestedProtocols.Contains("chat") ? "chat" : null;
            using var ws = await c.WebSockets.AcceptWebSocketAsync(protocol);
            string id = c.Request.Query["id"].ToString();
            try
            {
                var buffer = new byte[64 * 1024];
                while (true)
                {
                    using var message = new MemoryStream();
                    WebSocketReceiveResult result;
                    do
                    {
                        result = await ws.ReceiveAsync(buffer, CancellationToken.None);
                        message.Write(buffer, 0, result.Count);
                    }
                    while (!result.EndOfMessage && result.MessageType != WebSocketMessageType.Close);
                    if (result.MessageType == WebSocketMessageType.Close)
                    {
                        if (id.Length > 0)
                        {
                            backend().CloseSeen[id] = ((int?)result.CloseStatus, result.CloseStatusDescription);
                        }
                        await ws.CloseAsync(result.CloseStatus ?? WebSocketCloseStatus.NormalClosure, result.CloseStatusDescription, CancellationToken.None);
                        return Results.Empty;
                    }
                    await ws.SendAsync(message.GetBuffer().AsMemory(0, (int)message.Length), result.MessageType, endOfMessage: true, CancellationToken.None);
                }
            }
            catch (Exception ex) when (ex is WebSocketException or IOException or OperationCanceledException)
            {
                // The visitor's side dropped: the test waits for this signal.
                if (id.Length > 0)
                {
                    backend().AbortedSignal(id).TrySetResult();
                }
                return Results.Empty;
            }
        });
        // Sends one message, then closes with the given code and reason.
        app.Map("/ws-close", async (HttpContext c, int code, string reason) =>
        {
            using var ws = await c.WebSockets.AcceptWebSocketAsync();
            await ws.SendAsync("bye soon"u8.ToArray(), WebSocketMessageType.Text, true, CancellationToken.None);
            await ws.CloseOutputAsync((WebSocketCloseStatus)code, reason, CancellationToken.None);
            var buffer = new byte[1024];
            while ((await ws.ReceiveAsync(buffer, CancellationToken.None)).MessageType != WebSocketMessageType.Close)
            {
            }
        });
        // Accepts, answers one message, then drops the connection without a close handshake.
        app.Map("/ws-drop", async (HttpContext c) =>
        {
            using var ws = await c.WebSockets.AcceptWebSocketAsync();
            await ws.ReceiveAsync(new byte[1024], CancellationToken.None);
            await ws.SendAsync("dropping"u8.ToArray(), WebSocketMessageType.Text, true, CancellationToken.None);
            await Task.Delay(100);
            c.Abort();
        });
        // Refuses the handshake.
        app.Map("/ws-refuse", () => Results.Text("no websockets here\n", statusCode: 403));
    }
}
