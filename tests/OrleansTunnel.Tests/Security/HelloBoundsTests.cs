using Grpc.Core;
using Grpc.Net.Client;
using OrleansTunnel.Mux;
using OrleansTunnel.Protocol.V1;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;

namespace OrleansTunnel.Tests.Security;

/// <summary>
/// What a hello may claim is bounded before anything reads it (issue 12, sections 3 and 4): ids and
/// names, services per hello, slots, and an epoch no later than the gateway's clock plus the skew.
/// </summary>
public sealed class HelloBoundsHarness : IAsyncLifetime
{
    public TunnelHarness Harness { get; private set; } = null!;

    // Many refused hellos in a row from loopback: the per-source handshake limit is not what these tests test.
    public async Task InitializeAsync() => Harness = await TunnelHarness.StartAsync(o => o.Gateway["Gateway:HandshakesPerSecondPerSource"] = "1000");

    public async Task DisposeAsync() => await Harness.DisposeAsync();
}

public sealed class HelloBoundsTests(HelloBoundsHarness fixture) : IClassFixture<HelloBoundsHarness>
{
    private TunnelHarness H => fixture.Harness;

    private async Task<RpcException> RefusedAsync(Hello hello)
    {
        using var channel = GrpcChannel.ForAddress(H.TunnelUrl, new GrpcChannelOptions { MaxSendMessageSize = 8 * 1024 * 1024 });
        using var call = new Tunnel.TunnelClient(channel).Connect();
        Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
        var nonce = call.ResponseStream.Current.Frames[0].Challenge.Nonce.Span;
        if (hello.Proof.IsEmpty)
        {
            hello.Proof = Google.Protobuf.ByteString.CopyFrom(HelloProof.FromToken(H.AgentToken, nonce, hello));
        }
        await call.RequestStream.WriteAsync(new FrameBatch { Frames = { new Frame { Hello = hello } } });
        return await Assert.ThrowsAsync<RpcException>(async () =>
        {
            while (await call.ResponseStream.MoveNext(CancellationToken.None))
            {
            }
        }).Within(TimeSpan.FromSeconds(10));
    }

    private Hello Valid() => new()
    {
        ProtocolVersion = MuxSettings.ProtocolVersion,
        AgentId = TunnelHarness.AgentId,
        InitialWindow = 262144,
        Slot = 7,
        Epoch = 1,
        Services = { new ServiceOffer { Name = "backend", Scheme = "http" } },
    };

    public static TheoryData<string, string> Malformed => new()
    {
        { "id-1mib", "malformed hello: agent_id is longer than 128 characters" },
        { "id-space", "malformed hello: agent_id holds a character outside visible ASCII (no spaces or control characters)" },
        { "id-newline", "malformed hello: agent_id holds a character outside visible ASCII (no spaces or control characters)" },
        { "id-empty", "malformed hello: agent_id is empty" },
        { "token-long", "malformed hello: the token is longer than 4096 characters" },
        { "proof-long", "malformed hello: the proof is 1024 bytes, not 32" },
        { "services-65", "malformed hello: the hello offers 65 services; at most 64 (Gateway:MaxHelloServices)" },
        { "service-name-long", "malformed hello: a service name is longer than 128 characters" },
        { "slot-16", "malformed hello: slot 16 is not below Gateway:MaxAgentSlots (16)" },
    };

    [Theory]
    [MemberData(nameof(Malformed))]
    public async Task MalformedHello_IsInvalidArgument_NamingTheField(string kind, string message)
    {
        var hello = Valid();
        switch (kind)
        {
            case "id-1mib": hello.AgentId = new string('a', 1024 * 1024); break;
            case "id-space": hello.AgentId = "test agent"; break;
            case "id-newline": hello.AgentId = "test-agent\nforged log line"; break;
            case "id-empty": hello.AgentId = ""; break;
            case "token-long": hello.Token = new string('t', 5000); break;
            case "proof-long": hello.Proof = Google.Protobuf.ByteString.CopyFrom(new byte[1024]); break;
            case "services-65":
                for (int i = 0; i < 64; i++)
                {
                    hello.Services.Add(new ServiceOffer { Name = "s" + i, Scheme = "http" });
                }
                break;
            case "service-name-long": hello.Services.Add(new ServiceOffer { Name = new string('s', 129), Scheme = "http" }); break;
            case "slot-16": hello.Slot = 16; break;
        }
        var ex = await RefusedAsync(hello);
        Assert.Equal(StatusCode.InvalidArgument, ex.StatusCode);
        Assert.Equal(message, ex.Status.Detail);
    }

    [Fact]
    public async Task EpochFromTheFarFuture_IsRefused_AndTheRealAgentKeepsItsSlot()
    {
        // Before: ulong.MaxValue superseded the real agent's session and every later one of its slot.
        var hello = Valid();
        hello.Slot = 0;
        hello.Epoch = ulong.MaxValue;
        var ex = await RefusedAsync(hello);
        Assert.Equal(StatusCode.InvalidArgument, ex.StatusCode);
        Assert.StartsWith($"epoch {ulong.MaxValue} is later than this gateway's clock plus Gateway:EpochClockSkew (", ex.Status.Detail);
        Assert.EndsWith("); check the agent's clock", ex.Status.Detail);
        // An hour ahead is refused too (the default skew is 5 minutes); the real agent still serves.
        hello.Epoch = (ulong)DateTimeOffset.UtcNow.AddHours(1).ToUnixTimeMilliseconds();
        hello.Proof = Google.Protobuf.ByteString.Empty; // proven afresh for the next connection's challenge
        Assert.Equal(StatusCode.InvalidArgument, (await RefusedAsync(hello)).StatusCode);
        using var response = await H.Client.GetAsync(H.Url("/hello"));
        Assert.Equal("hello", await response.Content.ReadAsStringAsync());
    }
}
