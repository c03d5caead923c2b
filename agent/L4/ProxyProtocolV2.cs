using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace OrleansTunnel.Agent.L4;

/// <summary>
/// The PROXY protocol version 2 header (binary, haproxy.org/download/2.9/doc/proxy-protocol.txt) the
/// agent writes before a TCP connection's first byte when the gateway asks for it: the visitor's address
/// and port (source) and the gateway's listening address and port (destination), so a backend that
/// understands it logs the real client.
/// </summary>
public static class ProxyProtocolV2
{
    private static readonly byte[] Signature = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A];

    /// <summary>The header for a proxied TCP connection; a LOCAL header (no addresses) when either address is missing or the families differ.</summary>
    public static byte[] Build(IPEndPoint? source, IPEndPoint? destination)
    {
        if (source is not null && destination is not null && source.AddressFamily != destination.AddressFamily)
        {
            // Mixed families: give both as IPv6 (IPv4-mapped).
            source = new IPEndPoint(source.Address.MapToIPv6(), source.Port);
            destination = new IPEndPoint(destination.Address.MapToIPv6(), destination.Port);
        }
        if (source is null || destination is null)
        {
            var local = new byte[16];
            Signature.CopyTo(local, 0);
            local[12] = 0x20; // version 2, LOCAL
            local[13] = 0x00; // UNSPEC
            return local;
        }
        bool v4 = source.AddressFamily == AddressFamily.InterNetwork;
        int addressLength = v4 ? 4 : 16;
        int length = 2 * addressLength + 4;
        var header = new byte[16 + length];
        Signature.CopyTo(header, 0);
        header[12] = 0x21; // version 2, PROXY
        header[13] = v4 ? (byte)0x11 : (byte)0x21; // TCP over IPv4 / IPv6
        BinaryPrimitives.WriteUInt16BigEndian(header.AsSpan(14), (ushort)length);
        source.Address.TryWriteBytes(header.AsSpan(16, addressLength), out _);
        destination.Address.TryWriteBytes(header.AsSpan(16 + addressLength, addressLength), out _);
        BinaryPrimitives.WriteUInt16BigEndian(header.AsSpan(16 + 2 * addressLength), (ushort)source.Port);
        BinaryPrimitives.WriteUInt16BigEndian(header.AsSpan(18 + 2 * addressLength), (ushort)destination.Port);
        return header;
    }

    /// <summary>Parses a header (tests and backends written in .NET): source and destination, or null when it is not a PROXY v2 header.</summary>
    public static (IPEndPoint Source, IPEndPoint Destination, int Length)? Parse(ReadOnlySpan<byte> data)
    {
        if (data.Length < 16 || !data[..12].SequenceEqual(Signature) || data[12] != 0x21)
        {
            return null;
        }
        int length = BinaryPrimitives.ReadUInt16BigEndian(data[14..]);
        int addressLength = data[13] switch { 0x11 => 4, 0x21 => 16, _ => 0 };
        if (addressLength == 0 || data.Length < 16 + length || length < 2 * addressLength + 4)
        {
            return null;
        }
        var body = data[16..];
        var source = new IPEndPoint(new IPAddress(body[..addressLength]), BinaryPrimitives.ReadUInt16BigEndian(body[(2 * addressLength)..]));
        var destination = new IPEndPoint(new IPAddress(body.Slice(addressLength, addressLength)), BinaryPrimitives.ReadUInt16BigEndian(body[(2 * addressLength + 2)..]));
        return (source, destination, 16 + length);
    }
}
