using System.Net.Sockets;
using System.Text;

namespace OrleansTunnel.Tests.Infrastructure;

/// <summary>HTTP/1.1 over a bare socket, for requests a client library would normalise or refuse.</summary>
public static class RawHttp
{
    public sealed record Response(int Status, List<(string Name, string Value)> Headers, byte[] Body)
    {
        public string Text => Encoding.UTF8.GetString(Body);
        public IEnumerable<string> Values(string name) => Headers.Where(h => h.Name.Equals(name, StringComparison.OrdinalIgnoreCase)).Select(h => h.Value);
    }

    /// <summary>Sends the bytes (the request must say Connection: close) and reads until the server closes.</summary>
    public static async Task<Response> SendAsync(int port, byte[] request, TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(20));
        using var client = new TcpClient();
        await client.ConnectAsync(System.Net.IPAddress.Loopback, port, cts.Token);
        var stream = client.GetStream();
        await stream.WriteAsync(request, cts.Token);
        var all = new MemoryStream();
        await stream.CopyToAsync(all, cts.Token);
        return Parse(all.ToArray());
    }

    public static Task<Response> SendAsync(int port, string request, TimeSpan? timeout = null) =>
        SendAsync(port, Encoding.UTF8.GetBytes(request), timeout);

    private static Response Parse(byte[] data)
    {
        int headerEnd = IndexOf(data, "\r\n\r\n"u8);
        if (headerEnd < 0)
        {
            throw new InvalidDataException("no complete response head: " + Encoding.Latin1.GetString(data));
        }
        var lines = Encoding.Latin1.GetString(data, 0, headerEnd).Split("\r\n");
        int status = int.Parse(lines[0].Split(' ')[1]);
        var headers = lines.Skip(1).Select(l => (l[..l.IndexOf(':')].Trim(), l[(l.IndexOf(':') + 1)..].Trim())).ToList();
        var body = data[(headerEnd + 4)..];
        if (headers.Any(h => h.Item1.Equals("Transfer-Encoding", StringComparison.OrdinalIgnoreCase) && h.Item2.Contains("chunked")))
        {
            body = Dechunk(body);
        }
        return new Response(status, headers, body);
    }

    private static byte[] Dechunk(byte[] body)
    {
        var output = new MemoryStream();
        int pos = 0;
        while (pos < body.Length)
        {
            int lineEnd = IndexOf(body.AsSpan(pos), "\r\n"u8);
            int size = Convert.ToInt32(Encoding.ASCII.GetString(body, pos, lineEnd).Split(';')[0], 16);
            pos += lineEnd + 2;
            if (size == 0)
            {
                break;
            }
            output.Write(body, pos, size);
            pos += size + 2;
        }
        return output.ToArray();
    }

    private static int IndexOf(ReadOnlySpan<byte> data, ReadOnlySpan<byte> value) => data.IndexOf(value);
}
