using System.Buffers.Binary;
using System.Text;

namespace OrleansTunnel.Gateway.L4;

/// <summary>
/// Reads the server name (SNI) of a TLS ClientHello without terminating TLS: the first TLS record must
/// hold the whole ClientHello (as every common client sends it; at most 16 KiB).
/// </summary>
public static class ClientHelloSni
{
    /// <summary>Bytes the first record may take, header included.</summary>
    public const int MaxRecord = 5 + 16384;

    /// <summary>How many bytes the first record takes in total once its header (5 bytes) is known; null when that is not a TLS handshake record.</summary>
    public static int? RecordLength(ReadOnlySpan<byte> data)
    {
        if (data.Length < 5)
        {
            return 0;
        }
        if (data[0] != 0x16 || data[1] != 0x03)
        {
            return null;
        }
        int length = BinaryPrimitives.ReadUInt16BigEndian(data[3..]);
        return length is 0 or > 16384 ? null : 5 + length;
    }

    /// <summary>The SNI host name (lower case), or an error naming what was wrong.</summary>
    public static (string? Host, string? Problem) Parse(ReadOnlySpan<byte> record)
    {
        try
        {
            var body = record[5..];
            if (body[0] != 0x01)
            {
                return (null, "the first TLS handshake message is not a ClientHello");
            }
            int helloLength = (body[1] << 16) | (body[2] << 8) | body[3];
            if (helloLength > body.Length - 4)
            {
                return (null, "the ClientHello does not fit in the first TLS record");
            }
            var hello = body.Slice(4, helloLength);
            int p = 2 + 32; // version, random
            p += 1 + hello[p];                                            // session id
            p += 2 + BinaryPrimitives.ReadUInt16BigEndian(hello[p..]);    // cipher suites
            p += 1 + hello[p];                                            // compression methods
            if (p + 2 > hello.Length)
            {
                return (null, "the ClientHello has no extensions (no SNI)");
            }
            int end = p + 2 + BinaryPrimitives.ReadUInt16BigEndian(hello[p..]);
            p += 2;
            while (p + 4 <= end)
            {
                int type = BinaryPrimitives.ReadUInt16BigEndian(hello[p..]);
                int length = BinaryPrimitives.ReadUInt16BigEndian(hello[(p + 2)..]);
                var ext = hello.Slice(p + 4, length);
                if (type == 0)
                {
                    // server_name_list: length, then entries of type (0 = host_name), length, name.
                    int q = 2;
                    while (q + 3 <= ext.Length)
                    {
                        int nameLength = BinaryPrimitives.ReadUInt16BigEndian(ext[(q + 1)..]);
                        if (ext[q] == 0)
                        {
                            string name = Encoding.ASCII.GetString(ext.Slice(q + 3, nameLength));
                            return (name.TrimEnd('.').ToLowerInvariant(), null);
                        }
                        q += 3 + nameLength;
                    }
                }
                p += 4 + length;
            }
            return (null, "the ClientHello carries no server name (SNI)");
        }
        catch (Exception ex) when (ex is ArgumentOutOfRangeException or IndexOutOfRangeException)
        {
            return (null, "the ClientHello is malformed");
        }
    }
}
