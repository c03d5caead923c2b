using System.Security.Cryptography;
using System.Text;

namespace OrleansTunnel.Agent;

/// <summary>
/// A backend's 101 answer to a WebSocket handshake is only relayed as a byte pipe when it really
/// switched to WebSocket (RFC 6455 section 4.1): <c>Upgrade: websocket</c> and a
/// <c>Sec-WebSocket-Accept</c> that is the hash of the key sent. Otherwise a backend path that answers
/// 101 without switching would hand the visitor a raw HTTP/1.1 connection to the backend, past the
/// route's access checks.
/// </summary>
public static class WebSocketHandshake
{
    private const string Guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

    /// <summary>The Sec-WebSocket-Accept value for <paramref name="key"/>.</summary>
    public static string Accept(string key) =>
        Convert.ToBase64String(SHA1.HashData(Encoding.ASCII.GetBytes(key.Trim() + Guid)));

    /// <summary>What is wrong with the 101 answer, or null when it switched to WebSocket.</summary>
    public static string? Problem(HttpResponseMessage response)
    {
        if (!response.Headers.Upgrade.Any(u => u.Name.Equals("websocket", StringComparison.OrdinalIgnoreCase)))
        {
            return "the backend answered 101 without 'Upgrade: websocket'";
        }
        if (response.RequestMessage?.Headers.TryGetValues("Sec-WebSocket-Key", out var keys) != true || keys!.SingleOrDefault() is not { } key)
        {
            return "the WebSocket handshake had no single Sec-WebSocket-Key";
        }
        if (!response.Headers.TryGetValues("Sec-WebSocket-Accept", out var accepts) || accepts.SingleOrDefault()?.Trim() != Accept(key))
        {
            return "the backend answered 101 without the Sec-WebSocket-Accept of the key sent";
        }
        return null;
    }
}
