using Grpc.Core;
using Grpc.Net.Client;
using OrleansTunnel.Protocol.V1;

namespace OrleansTunnel.Mux;

/// <summary>
/// The dialling side of a tunnel stream, shared by agents (Connect) and gateways' peer links (Peer):
/// the gRPC channel to a tunnel endpoint and the hello / welcome exchange.
/// </summary>
public static class TunnelDialer
{
    /// <summary>
    /// A channel to a tunnel endpoint: one HTTP/2 connection with keep-alive pings and a large stream
    /// window; the channel owns (and disposes) the handler.
    /// </summary>
    public static GrpcChannel Channel(string url, TimeSpan connectTimeout, int maxMessageSize, Action<SocketsHttpHandler>? configureTls = null)
    {
        var handler = new SocketsHttpHandler
        {
            ConnectTimeout = connectTimeout,
            KeepAlivePingDelay = TimeSpan.FromSeconds(30),
            KeepAlivePingTimeout = TimeSpan.FromSeconds(10),
            KeepAlivePingPolicy = HttpKeepAlivePingPolicy.Always,
            EnableMultipleHttp2Connections = false,
            InitialHttp2StreamWindowSize = 4 * 1024 * 1024,
        };
        configureTls?.Invoke(handler);
        return GrpcChannel.ForAddress(url, new GrpcChannelOptions
        {
            HttpHandler = handler,
            MaxReceiveMessageSize = maxMessageSize,
            MaxSendMessageSize = maxMessageSize,
            // Each dial has its own handler: let the channel dispose it (and its HTTP/2 connection).
            DisposeHttpClient = true,
        });
    }

    /// <summary>
    /// Reads the gateway's challenge, sends the hello (its only frame) with the proof of <paramref name="secret"/>
    /// for that challenge, waits up to <paramref name="timeout"/> for the welcome and checks
    /// its protocol version. <paramref name="self"/> names this side in the mismatch message ("this agent").
    /// </summary>
    public static async Task<Welcome> HandshakeAsync(AsyncDuplexStreamingCall<FrameBatch, FrameBatch> call, Hello hello, string secret, TimeSpan timeout, string self, CancellationToken cancellationToken)
    {
        using var dial = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        dial.CancelAfter(timeout);
        // The gateway speaks first: a nonce the hello's proof covers (the secret itself is never sent).
        if (!await call.ResponseStream.MoveNext(dial.Token))
        {
            throw new IOException($"the gateway closed the tunnel before challenging {self}");
        }
        var challenge = call.ResponseStream.Current;
        if (challenge.Frames.Count != 1 || challenge.Frames[0].KindCase != Frame.KindOneofCase.Challenge
            || challenge.Frames[0].Challenge.Nonce.Length != HelloProof.NonceLength)
        {
            throw new IOException($"the gateway's first message was not a challenge (a gateway older than protocol version {MuxSettings.ProtocolVersion}?); upgrade the older side");
        }
        hello.Token = "";
        hello.Proof = Google.Protobuf.ByteString.CopyFrom(HelloProof.FromToken(secret, challenge.Frames[0].Challenge.Nonce.Span, hello));
        await call.RequestStream.WriteAsync(new FrameBatch { Frames = { new Frame { Hello = hello } } }, cancellationToken);
        if (!await call.ResponseStream.MoveNext(dial.Token))
        {
            throw new IOException($"the gateway closed the tunnel before welcoming {self}");
        }
        var first = call.ResponseStream.Current;
        if (first.Frames.Count != 1 || first.Frames[0].KindCase != Frame.KindOneofCase.Welcome)
        {
            throw new IOException("the gateway's first message was not a welcome");
        }
        var welcome = first.Frames[0].Welcome;
        if (welcome.ProtocolVersion != MuxSettings.ProtocolVersion)
        {
            throw new IOException($"protocol version mismatch: the gateway speaks version {welcome.ProtocolVersion}, {self} speaks version {MuxSettings.ProtocolVersion}");
        }
        return welcome;
    }
}
