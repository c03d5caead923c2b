using System.Security.Cryptography;
using Microsoft.AspNetCore.Http;

namespace OrleansTunnel.Gateway.Requests;

/// <summary>
/// Marks the requests this gateway's replay sends through its own ingress, so the new request's
/// journal entry links to the one it replays. The mark is honoured only with this process's random
/// key (a visitor cannot forge a link) and never forwarded to a backend.
/// </summary>
public sealed class ReplayMarker
{
    public const string OfHeader = "X-Otun-Replay-Of";
    public const string KeyHeader = "X-Otun-Replay-Key";

    /// <summary>This process's key (random; never leaves the process except on loopback to its own ingress).</summary>
    public string Key { get; } = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));

    /// <summary>Fields the gateway removes from every request before it is forwarded.</summary>
    public static bool IsMarker(string name) =>
        name.Length >= 16 && name.StartsWith("X-Otun-Replay-", StringComparison.OrdinalIgnoreCase);

    /// <summary>The id this request replays, when it carries this process's key; else null.</summary>
    public string? ReplayOf(HttpRequest request)
    {
        var headers = request.Headers;
        if (!headers.TryGetValue(OfHeader, out var of) || !headers.TryGetValue(KeyHeader, out var key) || of.Count != 1 || key.Count != 1)
        {
            return null;
        }
        return CryptographicOperations.FixedTimeEquals(System.Text.Encoding.ASCII.GetBytes(key.ToString()), System.Text.Encoding.ASCII.GetBytes(Key))
            ? of.ToString() : null;
    }
}
