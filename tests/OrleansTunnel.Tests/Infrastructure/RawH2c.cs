using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;

namespace OrleansTunnel.Tests.Infrastructure;

/// <summary>
/// A minimal cleartext HTTP/2 client (prior knowledge) that reports the frames of each response, for
/// checks a client library hides (which frame carried END_STREAM, whether a HEADERS frame ended the stream).
/// Header blocks are sent as HPACK literals without indexing and are not decoded.
/// </summary>
public sealed class RawH2c : IAsyncDisposable
{
    public const byte Data = 0, Headers = 1, RstStream = 3, Settings = 4, Ping = 6, GoAway = 7, WindowUpdate = 8, Continuation = 9;
    public const byte EndStream = 1, Ack = 1, EndHeaders = 4;

    public sealed record Frame(byte Type, byte Flags, int StreamId, byte[] Payload)
    {
        public bool EndsStream => (Type is Data or Headers) && (Flags & EndStream) != 0;

        public override string ToString() => $"{Type switch { Data => "DATA", Headers => "HEADERS", RstStream => "RST_STREAM", _ => Type.ToString() }}(len {Payload.Length}, flags {Flags})";
    }

    private readonly TcpClient _client;
    private readonly NetworkStream _stream;
    private int _nextStreamId = 1;

    private RawH2c(TcpClient client)
    {
        _client = client;
        _stream = client.GetStream();
    }

    public static async Task<RawH2c> ConnectAsync(int port, CancellationToken cancel)
    {
        var client = new TcpClient { NoDelay = true };
        await client.ConnectAsync(System.Net.IPAddress.Loopback, port, cancel);
        var h2 = new RawH2c(client);
        var start = new MemoryStream();
        start.Write("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8);
        WriteFrame(start, Settings, 0, 0, []);
        // A large connection window so responses never wait on this client.
        var increment = new byte[4];
        BinaryPrimitives.WriteInt32BigEndian(increment, 1 << 30);
        WriteFrame(start, WindowUpdate, 0, 0, increment);
        await h2._stream.WriteAsync(start.ToArray(), cancel);
        return h2;
    }

    /// <summary>Sends a request (headers, then the body with END_STREAM) and returns the response's frames up to its end.</summary>
    public async Task<List<Frame>> SendAsync(IEnumerable<(string Name, string Value)> headers, byte[] body, CancellationToken cancel)
    {
        int id = _nextStreamId;
        _nextStreamId += 2;
        var block = new MemoryStream();
        foreach (var (name, value) in headers)
        {
            block.WriteByte(0); // literal header field without indexing, new name
            WriteString(block, name);
            WriteString(block, value);
        }
        var request = new MemoryStream();
        WriteFrame(request, Headers, EndHeaders, id, block.ToArray());
        WriteFrame(request, Data, EndStream, id, body);
        await _stream.WriteAsync(request.ToArray(), cancel);

        var frames = new List<Frame>();
        while (true)
        {
            var frame = await ReadFrameAsync(cancel);
            switch (frame.Type)
            {
                case Settings when (frame.Flags & Ack) == 0:
                    var ack = new MemoryStream();
                    WriteFrame(ack, Settings, Ack, 0, []);
                    await _stream.WriteAsync(ack.ToArray(), cancel);
                    continue;
                case Ping when (frame.Flags & Ack) == 0:
                    var pong = new MemoryStream();
                    WriteFrame(pong, Ping, Ack, 0, frame.Payload);
                    await _stream.WriteAsync(pong.ToArray(), cancel);
                    continue;
                case GoAway:
                    throw new IOException("the server sent GOAWAY");
            }
            if (frame.StreamId != id)
            {
                continue;
            }
            frames.Add(frame);
            if (frame.EndsStream || frame.Type == RstStream)
            {
                return frames;
            }
        }
    }

    private async Task<Frame> ReadFrameAsync(CancellationToken cancel)
    {
        var header = new byte[9];
        await _stream.ReadExactlyAsync(header, cancel);
        int length = (header[0] << 16) | (header[1] << 8) | header[2];
        var payload = new byte[length];
        await _stream.ReadExactlyAsync(payload, cancel);
        int streamId = BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(5)) & int.MaxValue;
        return new Frame(header[3], header[4], streamId, payload);
    }

    private static void WriteFrame(Stream target, byte type, byte flags, int streamId, byte[] payload)
    {
        Span<byte> header = stackalloc byte[9];
        header[0] = (byte)(payload.Length >> 16);
        header[1] = (byte)(payload.Length >> 8);
        header[2] = (byte)payload.Length;
        header[3] = type;
        header[4] = flags;
        BinaryPrimitives.WriteInt32BigEndian(header[5..], streamId);
        target.Write(header);
        target.Write(payload);
    }

    private static void WriteString(Stream target, string value)
    {
        var bytes = Encoding.ASCII.GetBytes(value);
        // HPACK integer with a 7-bit prefix, no Huffman coding.
        int length = bytes.Length;
        if (length < 127)
        {
            target.WriteByte((byte)length);
        }
        else
        {
            target.WriteByte(127);
            length -= 127;
            while (length >= 128)
            {
                target.WriteByte((byte)(length % 128 + 128));
                length /= 128;
            }
            target.WriteByte((byte)length);
        }
        target.Write(bytes);
    }

    public ValueTask DisposeAsync()
    {
        _client.Dispose();
        return ValueTask.CompletedTask;
    }
}
