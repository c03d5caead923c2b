using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;
using OrleansTunnel.Grains;

namespace OrleansTunnel.Gateway.Policy;

/// <summary>
/// The budget a request counts against: a hash of (route, key kind, the visitor's key value), so the
/// limiter keeps fixed-size keys and never a visitor's API key or address in clear. A request without
/// the named header or claim shares one budget with all such requests of the route.
/// </summary>
public static class RateLimitKeys
{
    /// <summary>The route's identity in limiter grain keys (host and path prefix, as routing keys them).</summary>
    public static string RouteId(Route route) => route.Host + (route.PathPrefix ?? "");

    /// <summary>The visitor's key value under <paramref name="key"/> ("ip", "route", "header:X", "claim:x").</summary>
    public static string Value(HttpContext context, string key, Func<string?> clientIp)
    {
        if (key == "route")
        {
            return "";
        }
        if (key == "ip")
        {
            return clientIp() ?? "";
        }
        if (key.StartsWith("header:", StringComparison.Ordinal))
        {
            return string.Join(",", context.Request.Headers[key["header:".Length..]].ToArray());
        }
        if (key.StartsWith("claim:", StringComparison.Ordinal)
            && context.Items[Placeholders.ClaimsItem] is IReadOnlyDictionary<string, string> claims
            && claims.TryGetValue(key["claim:".Length..], out var claim))
        {
            return claim;
        }
        return "";
    }

    /// <summary>What the 429 message calls the key ("address", "X-Api-Key", "claim 'sub'", "route").</summary>
    public static string Describe(string key) => key switch
    {
        "ip" => "address",
        "route" => "route",
        _ when key.StartsWith("header:", StringComparison.Ordinal) => key["header:".Length..] + " value",
        _ => $"'{key["claim:".Length..]}' claim",
    };

    /// <summary>A 32-hex-digit hash of (route, key kind, value) and the shard (0..shards-1) it belongs to.</summary>
    public static (string Hash, int Shard) Hash(string routeId, string key, string value, int shards)
    {
        Span<byte> digest = stackalloc byte[32];
        SHA256.HashData(Encoding.UTF8.GetBytes(routeId + "\n" + key + "\n" + value), digest);
        int shard = (int)(BitConverter.ToUInt32(digest) % (uint)Math.Max(1, shards));
        return (Convert.ToHexStringLower(digest[..16]), shard);
    }
}
