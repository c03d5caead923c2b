using Grpc.Core;
using Grpc.Net.Client;
using OrleansTunnel.Protocol;
using OrleansTunnel.Protocol.V1;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;

namespace OrleansTunnel.Tests.EndToEnd;

/// <summary>The tunnel endpoint refuses bad hellos with a gRPC status and a message naming the cause.</summary>
[Collection("shared harness")]
public sealed class AuthTests(SharedHarness fixture)
{
    private TunnelHarness H => fixture.Harness;

    private async Task<RpcException> HelloAsync(Hello hello)
    {
        using var channel = GrpcChannel.ForAddress(H.TunnelUrl);
        var client = new Tunnel.TunnelClient(channel);
        using var call = client.Connect();
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
        Token = H.AgentToken,
        InitialWindow = 262144,
        Slot = 7,
        Epoch = 1,
        Services = { new ServiceOffer { Name = "backend", Scheme = "http" } },
    };

    [Fact]
    public async Task MissingToken_IsUnauthenticated()
    {
        var hello = Valid();
        hello.Token = "";
        var ex = await HelloAsync(hello);
        Assert.Equal(StatusCode.Unauthenticated, ex.StatusCode);
        Assert.Equal("agent 'test-agent' presented no token", ex.Status.Detail);
    }

    [Fact]
    public async Task WrongToken_IsUnauthenticated_AndNotEchoed()
    {
        var hello = Valid();
        hello.Token = "wrong-secret-value";
        var ex = await HelloAsync(hello);
        Assert.Equal(StatusCode.Unauthenticated, ex.StatusCode);
        Assert.Equal("the token is not valid for agent 'test-agent'", ex.Status.Detail);
        Assert.DoesNotContain("wrong-secret-value", ex.Status.Detail);
    }

    [Fact]
    public async Task UnknownAgent_IsUnauthenticated()
    {
        var hello = Valid();
        hello.AgentId = "stranger";
        var ex = await HelloAsync(hello);
        Assert.Equal(StatusCode.Unauthenticated, ex.StatusCode);
        Assert.Equal("the token is not valid for agent 'stranger'", ex.Status.Detail);
    }

    [Fact]
    public async Task AnotherAgentsToken_IsUnauthenticated()
    {
        var hello = Valid();
        hello.Token = H.OtherAgentToken;
        var ex = await HelloAsync(hello);
        Assert.Equal(StatusCode.Unauthenticated, ex.StatusCode);
    }

    [Fact]
    public async Task ClaimingAServiceTheTokenDoesNotAllow_IsPermissionDenied()
    {
        var hello = Valid();
        hello.Services.Add(new ServiceOffer { Name = "payroll", Scheme = "http" });
        var ex = await HelloAsync(hello);
        Assert.Equal(StatusCode.PermissionDenied, ex.StatusCode);
        Assert.Equal("agent 'test-agent' may not serve service 'payroll'", ex.Status.Detail);
    }

    [Fact]
    public async Task ProtocolVersionMismatch_IsRefused_NamingBothVersions()
    {
        var hello = Valid();
        hello.ProtocolVersion = 99;
        var ex = await HelloAsync(hello);
        Assert.Equal(StatusCode.FailedPrecondition, ex.StatusCode);
        Assert.Contains($"the agent speaks version 99, this gateway speaks version {MuxSettings.ProtocolVersion}", ex.Status.Detail);
    }

    [Fact]
    public async Task FirstFrameNotHello_IsInvalidArgument()
    {
        using var channel = GrpcChannel.ForAddress(H.TunnelUrl);
        using var call = new Tunnel.TunnelClient(channel).Connect();
        await call.RequestStream.WriteAsync(new FrameBatch { Frames = { new Frame { Ping = new Ping { Id = 1 } } } });
        var ex = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext(CancellationToken.None)).Within(TimeSpan.FromSeconds(10));
        Assert.Equal(StatusCode.InvalidArgument, ex.StatusCode);
        Assert.Equal("the first message must hold exactly one hello frame", ex.Status.Detail);
    }

    [Fact]
    public async Task AfterRefusals_TheRealAgentStillServes()
    {
        await HelloAsync(new Hello { ProtocolVersion = MuxSettings.ProtocolVersion, AgentId = "x", Token = "y" });
        using var response = await H.Client.GetAsync(H.Url("/hello"));
        Assert.Equal("hello", await response.Content.ReadAsStringAsync());
    }
}
