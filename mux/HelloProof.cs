using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using OrleansTunnel.Protocol.V1;

namespace OrleansTunnel.Mux;

/// <summary>
/// The proof a hello carries instead of the token (protocol version 2): HMAC-SHA256 keyed by
/// SHA-256(token) over a domain label, the gateway's one-time nonce, the agent id, the slot and the
/// epoch. Someone who records a hello cannot replay it (the next connection gets another nonce) nor move
/// it to another slot or epoch; the token never crosses the wire. The gateway needs only SHA-256(token),
/// which it already keeps: whoever steals a gateway's configuration can still impersonate its agents
/// (the hash is the key), so treat Gateway:Agents like secrets (SECURITY.md).
/// </summary>
public static class HelloProof
{
    /// <summary>Bytes of the challenge's nonce.</summary>
    public const int NonceLength = 32;

    /// <summary>Bytes of a proof (HMAC-SHA256).</summary>
    public const int Length = 32;

    private static readonly byte[] Label = "otun hello proof v2\n"u8.ToArray();

    /// <summary>A fresh challenge nonce.</summary>
    public static byte[] NewNonce() => RandomNumberGenerator.GetBytes(NonceLength);

    /// <summary>The proof for <paramref name="hello"/> from the token itself (the agent's side).</summary>
    public static byte[] FromToken(string token, ReadOnlySpan<byte> nonce, Hello hello) =>
        FromKey(SHA256.HashData(Encoding.UTF8.GetBytes(token)), nonce, hello);

    /// <summary>The proof for <paramref name="hello"/> from SHA-256(token) (the gateway's side).</summary>
    public static byte[] FromKey(ReadOnlySpan<byte> tokenSha256, ReadOnlySpan<byte> nonce, Hello hello)
    {
        var id = Encoding.UTF8.GetBytes(hello.AgentId);
        var message = new byte[Label.Length + nonce.Length + 4 + id.Length + 4 + 8];
        var span = message.AsSpan();
        Label.CopyTo(span);
        span = span[Label.Length..];
        nonce.CopyTo(span);
        span = span[nonce.Length..];
        BinaryPrimitives.WriteInt32BigEndian(span, id.Length);
        id.CopyTo(span[4..]);
        span = span[(4 + id.Length)..];
        BinaryPrimitives.WriteUInt32BigEndian(span, hello.Slot);
        BinaryPrimitives.WriteUInt64BigEndian(span[4..], hello.Epoch);
        return HMACSHA256.HashData(tokenSha256, message);
    }
}
