using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Options;

namespace OrleansTunnel.Gateway.L4;

/// <summary>The addresses the gateway's TCP, UDP and TLS passthrough listeners are bound to (port 0 resolved).</summary>
public sealed class L4Endpoints
{
    private readonly ConcurrentDictionary<(string Protocol, string Service), IPEndPoint> _bound = new();

    public IReadOnlyDictionary<(string Protocol, string Service), IPEndPoint> Bound => _bound;

    /// <summary>The TLS passthrough listener, once bound.</summary>
    public IPEndPoint? TlsPassthrough { get; internal set; }

    internal void Add(string protocol, string service, IPEndPoint endPoint) => _bound[(protocol, service)] = endPoint;

    internal void Remove(string protocol, string service, IPEndPoint endPoint) =>
        _bound.TryRemove(new KeyValuePair<(string, string), IPEndPoint>((protocol, service), endPoint));

    /// <summary>Binds a listening socket to "address:port"; a clear error naming the option when it cannot.</summary>
    internal static Socket Bind(string listen, SocketType type, ProtocolType protocol, string option, string service)
    {
        if (!IPEndPoint.TryParse(listen, out var endPoint))
        {
            throw new OptionsValidationException(option, typeof(L4Options), [$"{option}: Listen '{listen}' of service '{service}' is not address:port (e.g. 127.0.0.1:5432 or [::]:53)"]);
        }
        var socket = new Socket(endPoint.AddressFamily, type, protocol);
        try
        {
            if (endPoint.Address.Equals(IPAddress.IPv6Any))
            {
                socket.DualMode = true;
            }
            socket.Bind(endPoint);
            return socket;
        }
        catch (SocketException ex)
        {
            socket.Dispose();
            throw new OptionsValidationException(option, typeof(L4Options), [$"{option}: cannot listen on {listen} for service '{service}': {ex.SocketErrorCode} (is the port in use?)"]);
        }
    }
}

/// <summary>One open TCP or UDP listener; disposing it stops accepting (connections and flows already open go on, UDP flows end).</summary>
public sealed class L4Listener(Socket socket, CancellationTokenSource cancel, Task loop, Action removed) : IAsyncDisposable
{
    public async ValueTask DisposeAsync()
    {
        cancel.Cancel();
        socket.Dispose();
        try
        {
            await loop;
        }
        catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or SocketException)
        {
        }
        cancel.Dispose();
        removed();
    }
}
