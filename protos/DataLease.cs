using System.Buffers;
using Google.Protobuf;

namespace OrleansTunnel.Protocol.V1;

/// <summary>
/// A data frame whose payload lives in a buffer rented from <see cref="ArrayPool{T}.Shared"/> (the mux's
/// frame codec parses body bytes into one instead of a fresh, zeroed array per frame). The lease is
/// transient: it is not on the wire, not cloned and not compared. Whoever consumes the payload last
/// gives the buffer back (<see cref="ReleasePayload"/>) or passes it on (<see cref="TakeLease"/>); a lease
/// nobody returns is simply collected.
/// </summary>
public sealed partial class Data
{
    private byte[]? _lease;

    /// <summary>A data frame over the first <paramref name="length"/> bytes of a rented buffer it now owns.</summary>
    public static Data FromLease(byte[] lease, int length, bool endOfBody) =>
        new() { payload_ = UnsafeByteOperations.UnsafeWrap(lease.AsMemory(0, length)), endOfBody_ = endOfBody, _lease = lease };

    /// <summary>True while the payload is a slice of a rented buffer this frame owns.</summary>
    public bool IsLeased => _lease is not null;

    /// <summary>
    /// Hands the rented buffer to the caller (who returns it to the pool once done): the payload was its
    /// first <c>Payload.Length</c> bytes, read the length before. The payload is empty afterwards, so
    /// nothing can read bytes that belong to someone else. Null when the payload is not leased.
    /// </summary>
    public byte[]? TakeLease()
    {
        var lease = _lease;
        if (lease is not null)
        {
            _lease = null;
            payload_ = ByteString.Empty;
        }
        return lease;
    }

    /// <summary>Returns the payload's buffer to the pool (once nothing reads the payload any more); the payload is empty afterwards.</summary>
    public void ReleasePayload()
    {
        if (TakeLease() is { } lease)
        {
            ArrayPool<byte>.Shared.Return(lease);
        }
    }
}
