using System.Net.Sockets;

namespace OrleansTunnel.Agent;

/// <summary>Whether a gateway's tunnel address accepts a TCP connection (no handshake, nothing sent).</summary>
public static class GatewayProbe
{
    public static async Task<bool> AcceptsAsync(string url, TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri))
        {
            return false;
        }
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(timeout);
        try
        {
            using var client = new TcpClient();
            await client.ConnectAsync(uri.Host, uri.Port, cts.Token);
            return true;
        }
        catch (Exception ex) when (ex is SocketException or OperationCanceledException or IOException)
        {
            return false;
        }
    }
}
