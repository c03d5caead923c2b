using System.Security.Cryptography;

namespace OrleansTunnel.Tests.Infrastructure;

public static class Hashing
{
    public static string Sha256(ReadOnlySpan<byte> data) => Convert.ToHexStringLower(SHA256.HashData(data));

    /// <summary>Reads a stream to its end, hashing as it goes (nothing is kept).</summary>
    public static async Task<(string Hash, long Length)> Sha256Async(Stream stream, CancellationToken cancellationToken = default)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[128 * 1024];
        long total = 0;
        int n;
        while ((n = await stream.ReadAsync(buffer, cancellationToken)) > 0)
        {
            sha.AppendData(buffer, 0, n);
            total += n;
        }
        return (Convert.ToHexStringLower(sha.GetHashAndReset()), total);
    }

    /// <summary>Deterministic bytes for uploads.</summary>
    public static byte[] Bytes(int length, int seed = 1)
    {
        var data = new byte[length];
        new Random(seed).NextBytes(data);
        return data;
    }
}

/// <summary>A request body of a given size generated on the fly (chunked: no Content-Length), hashed as sent.</summary>
public sealed class GeneratedContent(long length, bool knownLength) : HttpContent
{
    private readonly IncrementalHash _sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

    public string SentHash => Convert.ToHexStringLower(_sha.GetCurrentHash());

    protected override async Task SerializeToStreamAsync(Stream stream, System.Net.TransportContext? context)
    {
        var rng = new Random(42);
        var buffer = new byte[64 * 1024 + 17];
        for (long sent = 0; sent < length;)
        {
            int n = (int)Math.Min(buffer.Length, length - sent);
            rng.NextBytes(buffer.AsSpan(0, n));
            _sha.AppendData(buffer, 0, n);
            await stream.WriteAsync(buffer.AsMemory(0, n));
            sent += n;
        }
    }

    protected override bool TryComputeLength(out long len)
    {
        len = length;
        return knownLength;
    }
}
