using System.Net;
using System.Net.Sockets;
using System.Net.Http.Headers;
using OrleansTunnel.Mux;
using OrleansTunnel.Protocol.V1;

namespace OrleansTunnel.Agent;

/// <summary>Building what the forwarder sends: the backend request from a tunnelled head, response headers back, and the pooled handlers.</summary>
public sealed partial class BackendForwarder
{
    private static HttpRequestMessage BuildRequest(Backend backend, Uri uri, RequestHead head, MuxStream stream, bool webSocket)
    {
        // The path and query go to the backend exactly as the visitor sent them (BackendTarget checked them).
        var request = new HttpRequestMessage(new HttpMethod(head.Method), uri)
        {
            Version = backend.Version,
            VersionPolicy = backend.Policy,
        };
        long? contentLength = null;
        foreach (var h in head.Headers)
        {
            if (h.Name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase) && long.TryParse(h.Value, out long cl))
            {
                contentLength = cl;
            }
        }
        if (webSocket)
        {
            // The backend gets an HTTP/1.1 handshake whatever the visitor spoke (RFC 8441 visitors send
            // no key, so one is made); the stream after it carries the visitor's WebSocket frames.
            request.Version = HttpVersion.Version11;
            request.VersionPolicy = HttpVersionPolicy.RequestVersionExact;
            request.Headers.Connection.Add("Upgrade");
            request.Headers.Upgrade.Add(new ProductHeaderValue("websocket"));
            if (!head.Headers.Any(h => h.Name.Equals("Sec-WebSocket-Key", StringComparison.OrdinalIgnoreCase)))
            {
                request.Headers.TryAddWithoutValidation("Sec-WebSocket-Key", Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16)));
            }
        }
        else if (!head.EndOfBody)
        {
            request.Content = new MuxRequestContent(stream, contentLength);
        }
        foreach (var h in head.Headers)
        {
            if (h.Name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }
            if (!request.Headers.TryAddWithoutValidation(h.Name, h.Value))
            {
                // A content header (Content-Type, ...): it belongs to the body.
                request.Content ??= new ByteArrayContent([]);
                request.Content.Headers.TryAddWithoutValidation(h.Name, h.Value);
            }
        }
        // Keep the visitor's Host: backends build links and check virtual hosts with it.
        request.Headers.Host = head.Authority;
        return request;
    }

    private static void AddHeaders(Google.Protobuf.Collections.RepeatedField<Header> target, HttpResponseHeaders headers, HttpContentHeaders contentHeaders)
    {
        // Raw values (NonValidated): reading headers.Connection parses the field under a lock on every answer.
        HashSet<string>? connectionNamed = headers.NonValidated.TryGetValues("Connection", out var connection) ? HopByHop.NamedBy(connection) : null;
        foreach (var (name, values) in headers.NonValidated)
        {
            foreach (var value in values)
            {
                if (!HopByHop.ShouldDrop(name, value, connectionNamed))
                {
                    target.Add(name, value);
                }
            }
        }
        foreach (var (name, values) in contentHeaders.NonValidated)
        {
            foreach (var value in values)
            {
                target.Add(name, value);
            }
        }
    }

    private static SocketsHttpHandler CreateHandler(AgentOptions o, AgentServiceOptions? tls)
    {
        var handler = new SocketsHttpHandler
        {
            ConnectTimeout = o.BackendConnectTimeout,
            PooledConnectionIdleTimeout = o.BackendIdleTimeout,
            PooledConnectionLifetime = Timeout.InfiniteTimeSpan,
            KeepAlivePingDelay = o.BackendKeepAlivePing,
            KeepAlivePingTimeout = o.BackendKeepAlivePingTimeout,
            KeepAlivePingPolicy = HttpKeepAlivePingPolicy.Always,
            MaxConnectionsPerServer = o.BackendMaxConnections,
            EnableMultipleHttp2Connections = true,
            AllowAutoRedirect = false,
            UseCookies = false,
            UseProxy = false,
            AutomaticDecompression = DecompressionMethods.None,
            ActivityHeadersPropagator = null,
            ConnectCallback = async (context, cancel) =>
            {
                var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                try
                {
                    await socket.ConnectAsync(context.DnsEndPoint, cancel);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
        };
        if (tls?.SkipCertificateValidation == true)
        {
            handler.SslOptions.RemoteCertificateValidationCallback = (_, _, _, _) => true;
        }
        else if (!string.IsNullOrEmpty(tls?.CaFile))
        {
            handler.SslOptions.RemoteCertificateValidationCallback = OrleansTunnel.Mux.CaTrust.Validator(tls.CaFile, allowNameMismatch: true);
        }
        return handler;
    }
}
