using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using OrleansTunnel.Tests.EndToEnd;
using OrleansTunnel.Tests.Grpc;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;

namespace OrleansTunnel.Tests.Protocols;

/// <summary>Grpc.Net.Client -> gateway (HTTP/2) -> agent -> a real Grpc.AspNetCore backend (h2c).</summary>
[Collection("shared harness")]
public sealed class GrpcTests(SharedHarness fixture) : IDisposable
{
    private readonly GrpcChannel _channel = GrpcChannel.ForAddress(fixture.Harness.HttpsIngress, new GrpcChannelOptions
    {
        HttpHandler = TunnelHarness.TrustingHandler(),
        MaxReceiveMessageSize = 16 << 20,
    });

    private TunnelHarness H => fixture.Harness;

    private Echo.EchoClient Client => new(_channel);

    private Echo.EchoClient ClientForHost(string host)
    {
        var channel = GrpcChannel.ForAddress(H.HttpsIngress, new GrpcChannelOptions { HttpHandler = new HostOverride(host) });
        return new Echo.EchoClient(channel);
    }

    public void Dispose() => _channel.Dispose();

    [Fact]
    public async Task Unary_WithTrailers_IncludingBinary()
    {
        using var call = Client.UnaryAsync(new EchoRequest { Text = "hi", Sequence = 7, Payload = ByteString.CopyFrom(Hashing.Bytes(100_000)) });
        var reply = await call.ResponseAsync;
        Assert.Equal("hi", reply.Text);
        Assert.Equal(7, reply.Sequence);
        Assert.Equal(Hashing.Sha256(Hashing.Bytes(100_000)), Hashing.Sha256(reply.Payload.Span));
        var trailers = call.GetTrailers();
        Assert.Equal("unary", trailers.GetValue("x-echo-trailer"));
        Assert.Equal(new byte[] { 0, 1, 2, 250, 255 }, trailers.GetValueBytes("x-echo-bin"));
        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
    }

    [Fact]
    public async Task ServerStreaming_KeepsOrder()
    {
        using var call = Client.ServerStream(new StreamRequest { Count = 500, PayloadSize = 2000 });
        int expected = 0;
        await foreach (var reply in call.ResponseStream.ReadAllAsync())
        {
            Assert.Equal(expected++, reply.Sequence);
        }
        Assert.Equal(500, expected);
        Assert.Equal("500", call.GetTrailers().GetValue("x-count"));
    }

    [Fact]
    public async Task ClientStreaming_KeepsOrder()
    {
        using var call = Client.ClientStream();
        for (int i = 0; i < 300; i++)
        {
            await call.RequestStream.WriteAsync(new EchoRequest { Text = $"m{i}", Sequence = i });
        }
        await call.RequestStream.CompleteAsync();
        var reply = await call.ResponseAsync;
        Assert.Equal(300, reply.Sequence);
        Assert.Equal(string.Join(",", Enumerable.Range(0, 300).Select(i => $"m{i}")), reply.Text);
    }

    [Fact]
    public async Task BidirectionalStreaming_IsFullDuplex()
    {
        using var call = Client.Duplex();
        // Each reply must arrive before the next request is sent: no buffering until the end of either side.
        for (int i = 0; i < 50; i++)
        {
            await call.RequestStream.WriteAsync(new EchoRequest { Text = $"n{i}", Sequence = i });
            Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None).Within(TimeSpan.FromSeconds(10)));
            Assert.Equal($"echo n{i}", call.ResponseStream.Current.Text);
            Assert.Equal(i, call.ResponseStream.Current.Sequence);
        }
        await call.RequestStream.CompleteAsync();
        Assert.False(await call.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
    }

    [Fact]
    public async Task ACallTheBackendEndsWhileTheCallerStillStreams_KeepsItsLastRepliesAndTrailers()
    {
        for (int attempt = 0; attempt < 20; attempt++)
        {
            using var call = Client.EarlyEnd();
            await call.RequestStream.WriteAsync(new EchoRequest { Text = "start" });
            int replies = 0;
            await foreach (var reply in call.ResponseStream.ReadAllAsync())
            {
                Assert.Equal(replies++, reply.Sequence);
                Assert.Equal(150_000, reply.Payload.Length);
            }
            // The agent resets the still-open request side after answering; that reset must not overtake the answer.
            Assert.Equal(3, replies);
            Assert.Equal(StatusCode.OK, call.GetStatus().StatusCode);
            Assert.Equal("yes", call.GetTrailers().GetValue("x-early"));
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    public async Task BackendStatus_Message_AndTrailers_PassThrough(int repliesFirst)
    {
        using var call = Client.Fail(new FailRequest { StatusCode = (int)StatusCode.PermissionDenied, Message = "nope: ünïcode ok", RepliesFirst = repliesFirst });
        int got = 0;
        var ex = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            await foreach (var _ in call.ResponseStream.ReadAllAsync())
            {
                got++;
            }
        });
        Assert.Equal(repliesFirst, got);
        Assert.Equal(StatusCode.PermissionDenied, ex.StatusCode);
        Assert.Equal("nope: ünïcode ok", ex.Status.Detail);
        Assert.Equal("from the backend", ex.Trailers.GetValue("x-failure-detail"));
        Assert.Equal(new byte[] { 9, 8, 7 }, ex.Trailers.GetValueBytes("x-failure-bin"));
    }

    [Fact]
    public async Task Deadline_IsHonouredEndToEnd_AndReachesTheBackend()
    {
        string id = Guid.NewGuid().ToString("N");
        var ex = await Assert.ThrowsAsync<RpcException>(() => Client.HangAsync(new HangRequest { Id = id }, deadline: DateTime.UtcNow.AddMilliseconds(700)).ResponseAsync);
        Assert.Equal(StatusCode.DeadlineExceeded, ex.StatusCode);
        await H.Backend.AbortedSignal(id).Task.Within(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task CallerCancellation_ReachesTheBackend()
    {
        string id = Guid.NewGuid().ToString("N");
        using var cts = new CancellationTokenSource();
        var call = Client.HangAsync(new HangRequest { Id = id }, cancellationToken: cts.Token);
        await H.Backend.StartedSignal(id).Task.Within(TimeSpan.FromSeconds(10));
        cts.Cancel();
        var ex = await Assert.ThrowsAsync<RpcException>(() => call.ResponseAsync);
        Assert.Equal(StatusCode.Cancelled, ex.StatusCode);
        await H.Backend.AbortedSignal(id).Task.Within(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task NoRoute_IsNotFound_TrailersOnly()
    {
        var ex = await Assert.ThrowsAsync<RpcException>(() => ClientForHost("nobody.test").UnaryAsync(new EchoRequest()).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, ex.StatusCode);
        Assert.Equal("no route for host 'nobody.test'", ex.Status.Detail);
    }

    [Fact]
    public async Task NoAgent_IsUnavailable()
    {
        var ex = await Assert.ThrowsAsync<RpcException>(() => ClientForHost("orphan.test").UnaryAsync(new EchoRequest()).ResponseAsync);
        Assert.Equal(StatusCode.Unavailable, ex.StatusCode);
        Assert.Equal("no agent is connected for service 'orphan'", ex.Status.Detail);
    }

    [Fact]
    public async Task BackendUnreachable_IsUnavailable()
    {
        var ex = await Assert.ThrowsAsync<RpcException>(() => ClientForHost("refused.test").UnaryAsync(new EchoRequest()).ResponseAsync);
        Assert.Equal(StatusCode.Unavailable, ex.StatusCode);
        Assert.StartsWith("the backend refused or reset the connection", ex.Status.Detail);
    }

    /// <summary>Sends every request with a chosen :authority (routing reads the host).</summary>
    private sealed class HostOverride(string host) : DelegatingHandler(TunnelHarness.TrustingHandler())
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            request.Headers.Host = host;
            return base.SendAsync(request, cancellationToken);
        }
    }
}

/// <summary>gRPC failures that need their own harness.</summary>
public sealed class GrpcLimitTests
{
    [Fact]
    public async Task OverTheAgentsBudget_IsResourceExhausted_AndAgentLossMidCall_IsUnavailable()
    {
        await using var h = await TunnelHarness.StartAsync(o =>
        {
            o.Gateway["Backpressure:MaxConcurrentPerAgent"] = "1";
            o.Gateway["Gateway:PermitBatchSize"] = "1";
        });
        using var channel = GrpcChannel.ForAddress(h.HttpsIngress, new GrpcChannelOptions { HttpHandler = TunnelHarness.TrustingHandler() });
        var client = new Echo.EchoClient(channel);
        string id = Guid.NewGuid().ToString("N");
        using var duplex = client.Duplex();
        await duplex.RequestStream.WriteAsync(new EchoRequest { Text = "x" });
        Assert.True(await duplex.ResponseStream.MoveNext(CancellationToken.None).Within(TimeSpan.FromSeconds(10)));

        var limited = await Assert.ThrowsAsync<RpcException>(() => client.UnaryAsync(new EchoRequest()).ResponseAsync);
        Assert.Equal(StatusCode.ResourceExhausted, limited.StatusCode);
        Assert.Equal($"agent '{TunnelHarness.AgentId}' is at its limit of 1 concurrent requests", limited.Status.Detail);

        await h.StopAgentAsync();
        var lost = await Assert.ThrowsAsync<RpcException>(() => duplex.ResponseStream.MoveNext(CancellationToken.None)).Within(TimeSpan.FromSeconds(10));
        Assert.Equal(StatusCode.Unavailable, lost.StatusCode);
        Assert.Contains("the tunnel lost the call mid-response", lost.Status.Detail);
    }

    [Fact]
    public async Task GatewaysOwnDeadline_IsDeadlineExceeded_WhenTheBackendIsSilent()
    {
        await using var h = await TunnelHarness.StartAsync(o => o.ResponseTimeout = TimeSpan.FromSeconds(1));
        using var channel = GrpcChannel.ForAddress(h.HttpsIngress, new GrpcChannelOptions { HttpHandler = TunnelHarness.TrustingHandler() });
        var ex = await Assert.ThrowsAsync<RpcException>(() => new Echo.EchoClient(channel).HangAsync(new HangRequest { Id = "x" }).ResponseAsync);
        Assert.Equal(StatusCode.DeadlineExceeded, ex.StatusCode);
        Assert.Equal("the backend did not answer within 1 s", ex.Status.Detail);
    }
}
