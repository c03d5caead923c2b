using Grpc.Core;
using Grpc.Net.Client;
using OrleansTunnel.Mux;
using OrleansTunnel.Protocol.V1;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;

namespace OrleansTunnel.Tests.EndToEnd;

/// <summary>The tunnel endpoint refuses bad hellos with a gRPC status and a message naming the cause.</summary>
[Collection("shared harness")]
public sealed class AuthTests(SharedHarness fixture)
{
    private TunnelHarness H => fixture.Harness;

    /// <summary>Reads the gateway's challenge, answers with <paramref name="hello"/> (with the proof of <paramref name="token"/> when given) and expects a refusal.</summary>
    private async Task<RpcException> HelloAsync(Hello hello, string? token = null)
    {
        using var channel = GrpcChannel.ForAddress(H.TunnelUrl);
        var client = new Tunnel.TunnelClient(channel);
        using var call = client.Connect();
        var nonce = await ChallengeAsync(call);
        if (token is not null)
        {
            hello.Proof = Google.Protobuf.ByteString.CopyFrom(HelloProof.FromToken(token, nonce, hello));
        }
        await call.RequestStream.WriteAsync(new FrameBatch { Frames = { new Frame { Hello = hello } } });
        return await Assert.ThrowsAsync<RpcException>(async () =>
        {
            while (await call.ResponseStream.MoveNext(CancellationToken.None))
            {
            }
        }).Within(TimeSpan.FromSeconds(10));
    }

    private static async Task<byte[]> ChallengeAsync(AsyncDuplexStreamingCall<FrameBatch, FrameBatch> call)
    {
        Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None).Within(TimeSpan.FromSeconds(10)));
        var first = Assert.Single(call.ResponseStream.Current.Frames);
        Assert.Equal(Frame.KindOneofCase.Challenge, first.KindCase);
        Assert.Equal(HelloProof.NonceLength, first.Challenge.Nonce.Length);
        return first.Challenge.Nonce.ToByteArray();
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

    [Fact]
    public async Task MissingToken_IsUnauthenticated()
    {
        var ex = await HelloAsync(Valid());
        Assert.Equal(StatusCode.Unauthenticated, ex.StatusCode);
        Assert.Equal("agent 'test-agent' presented no token proof", ex.Status.Detail);
    }

    [Fact]
    public async Task WrongToken_IsUnauthenticated_AndNotEchoed()
    {
        var ex = await HelloAsync(Valid(), "wrong-secret-value");
        Assert.Equal(StatusCode.Unauthenticated, ex.StatusCode);
        Assert.Equal("the token is not valid for agent 'test-agent'", ex.Status.Detail);
        Assert.DoesNotContain("wrong-secret-value", ex.Status.Detail);
    }

    [Fact]
    public async Task UnknownAgent_IsUnauthenticated()
    {
        var hello = Valid();
        hello.AgentId = "stranger";
        var ex = await HelloAsync(hello, H.AgentToken);
        Assert.Equal(StatusCode.Unauthenticated, ex.StatusCode);
        Assert.Equal("the token is not valid for agent 'stranger'", ex.Status.Detail);
    }

    [Fact]
    public async Task AnotherAgentsToken_IsUnauthenticated()
    {
        var ex = await HelloAsync(Valid(), H.OtherAgentToken);
        Assert.Equal(StatusCode.Unauthenticated, ex.StatusCode);
    }

    [Fact]
    public async Task ClaimingAServiceTheTokenDoesNotAllow_IsPermissionDenied()
    {
        var hello = Valid();
        hello.Services.Add(new ServiceOffer { Name = "payroll", Scheme = "http" });
        var ex = await HelloAsync(hello, H.AgentToken);
        Assert.Equal(StatusCode.PermissionDenied, ex.StatusCode);
        Assert.Equal("agent 'test-agent' may not serve service 'payroll'", ex.Status.Detail);
    }

    [Fact]
    public async Task ProtocolVersionMismatch_IsRefused_NamingBothVersions()
    {
        var hello = Valid();
        hello.ProtocolVersion = 99;
        var ex = await HelloAsync(hello, H.AgentToken);
        Assert.Equal(StatusCode.FailedPrecondition, ex.StatusCode);
        Assert.Contains($"the agent speaks version 99, this gateway speaks version {MuxSettings.ProtocolVersion}", ex.Status.Detail);
    }

    [Fact]
    public async Task FirstFrameNotHello_IsInvalidArgument()
    {
        using var channel = GrpcChannel.ForAddress(H.TunnelUrl);
        using var call = new Tunnel.TunnelClient(channel).Connect();
        await ChallengeAsync(call);
        await call.RequestStream.WriteAsync(new FrameBatch { Frames = { new Frame { Ping = new Ping { Id = 1 } } } });
        var ex = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext(CancellationToken.None)).Within(TimeSpan.FromSeconds(10));
        Assert.Equal(StatusCode.InvalidArgument, ex.StatusCode);
        Assert.Equal("the first message must hold exactly one hello frame", ex.Status.Detail);
    }

    [Fact]
    public async Task AfterRefusals_TheRealAgentStillServes()
    {
        await HelloAsync(new Hello { ProtocolVersion = MuxSettings.ProtocolVersion, AgentId = "x" }, "y");
        using var response = await H.Client.GetAsync(H.Url("/hello"));
        Assert.Equal("hello", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task ARecordedHello_CannotBeReplayed_OnAnotherConnection()
    {
        // A hello proven for one challenge (as an eavesdropper would record it) is refused under the next one.
        var hello = Valid();
        using (var channel = GrpcChannel.ForAddress(H.TunnelUrl))
        using (var first = new Tunnel.TunnelClient(channel).Connect())
        {
            var nonce = await ChallengeAsync(first);
            hello.Proof = Google.Protobuf.ByteString.CopyFrom(HelloProof.FromToken(H.AgentToken, nonce, hello));
        }
        var ex = await HelloAsync(hello);
        Assert.Equal(StatusCode.Unauthenticated, ex.StatusCode);
        Assert.Equal("the token is not valid for agent 'test-agent'", ex.Status.Detail);
        // Nor can the proof be moved to another slot or epoch under its own challenge.
        Assert.NotEqual(HelloProof.FromToken(H.AgentToken, new byte[32], hello), HelloProof.FromToken(H.AgentToken, new byte[32], new Hello(hello) { Slot = 3 }));
        Assert.NotEqual(HelloProof.FromToken(H.AgentToken, new byte[32], hello), HelloProof.FromToken(H.AgentToken, new byte[32], new Hello(hello) { Epoch = 2 }));
    }

    [Fact]
    public async Task TheTokenItselfInTheHello_IsRefused_AndCalledExposed()
    {
        var hello = Valid();
        hello.Token = H.AgentToken;
        var ex = await HelloAsync(hello, H.AgentToken);
        Assert.Equal(StatusCode.Unauthenticated, ex.StatusCode);
        Assert.StartsWith("agent 'test-agent' sent its token in the hello; this gateway takes only a proof", ex.Status.Detail);
        Assert.DoesNotContain(H.AgentToken, ex.Status.Detail);
    }
}
