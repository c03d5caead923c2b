using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using OrleansTunnel.Mux;
using OrleansTunnel.Protocol.V1;
using OrleansTunnel.Tests.Infrastructure;

namespace OrleansTunnel.Tests.Security;

/// <summary>A hostile agent speaking the wire protocol by hand: it can forge, overrun and garble.</summary>
internal sealed class FakeAgent : IAsyncDisposable
{
    private readonly GrpcChannel _channel;
    private readonly AsyncDuplexStreamingCall<FrameBatch, FrameBatch> _call;

    private FakeAgent(GrpcChannel channel, AsyncDuplexStreamingCall<FrameBatch, FrameBatch> call)
    {
        _channel = channel;
        _call = call;
    }

    /// <param name="slot">The connection slot (an agent's second connection uses slot 1; the same slot supersedes).</param>
    public static async Task<FakeAgent> ConnectAsync(TunnelHarness h, string service = "other", uint slot = 0)
    {
        var channel = GrpcChannel.ForAddress(h.TunnelUrl);
        var call = new Tunnel.TunnelClient(channel).Connect();
        var hello = new Hello
        {
            ProtocolVersion = MuxSettings.ProtocolVersion,
            AgentId = TunnelHarness.OtherAgentId,
            InitialWindow = 262144,
            Epoch = (ulong)DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(),
            Slot = slot,
            Services = { new ServiceOffer { Name = service, Scheme = "http" } },
        };
        // The honest handshake (challenge, proof, welcome); what follows is hand-made.
        await TunnelDialer.HandshakeAsync(call, hello, h.OtherAgentToken, TimeSpan.FromSeconds(30), "the fake agent", CancellationToken.None);
        return new FakeAgent(channel, call);
    }

    /// <summary>The next frame the gateway sent (pings answered on the way).</summary>
    public async Task<Frame> NextAsync(Func<Frame, bool>? match = null)
    {
        while (true)
        {
            if (_pending.Count == 0)
            {
                if (!await _call.ResponseStream.MoveNext(CancellationToken.None).Within(TimeSpan.FromSeconds(15)))
                {
                    throw new EndOfStreamException("the gateway closed the tunnel");
                }
                foreach (var f in _call.ResponseStream.Current.Frames)
                {
                    _pending.Enqueue(f);
                }
                continue;
            }
            var frame = _pending.Dequeue();
            if (frame.KindCase == Frame.KindOneofCase.Ping)
            {
                await SendAsync(new Frame { Pong = frame.Ping });
                continue;
            }
            if (match is null || match(frame))
            {
                return frame;
            }
        }
    }

    private readonly Queue<Frame> _pending = new();

    public Task SendAsync(params Frame[] frames) => _call.RequestStream.WriteAsync(new FrameBatch { Frames = { frames } });

    /// <summary>Answers a request properly: 200 with a small body.</summary>
    public Task AnswerAsync(ulong stream, string body) => SendAsync(
        new Frame { Stream = stream, ResponseHead = new ResponseHead { Status = 200, Headers = { new Header { Name = "Content-Type", Value = "text/plain" } } } },
        new Frame { Stream = stream, Data = new Data { Payload = ByteString.CopyFromUtf8(body), EndOfBody = true } });

    public async ValueTask DisposeAsync()
    {
        _call.Dispose();
        _channel.Dispose();
        await Task.CompletedTask;
    }
}
