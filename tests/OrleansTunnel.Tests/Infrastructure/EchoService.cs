using Grpc.Core;
using OrleansTunnel.Tests.Grpc;

namespace OrleansTunnel.Tests.Infrastructure;

/// <summary>The test backend's gRPC service (served over h2c by <see cref="TestBackend"/>).</summary>
public sealed class EchoService(TestBackend backend) : Echo.EchoBase
{
    public override Task<EchoReply> Unary(EchoRequest request, ServerCallContext context)
    {
        context.ResponseTrailers.Add("x-echo-trailer", "unary");
        context.ResponseTrailers.Add("x-echo-bin", new byte[] { 0, 1, 2, 250, 255 });
        return Task.FromResult(new EchoReply { Text = request.Text, Sequence = request.Sequence, Payload = request.Payload });
    }

    public override async Task ServerStream(StreamRequest request, IServerStreamWriter<EchoReply> responseStream, ServerCallContext context)
    {
        var payload = Google.Protobuf.ByteString.CopyFrom(new byte[request.PayloadSize]);
        for (int i = 0; i < request.Count; i++)
        {
            await responseStream.WriteAsync(new EchoReply { Sequence = i, Text = $"reply {i}", Payload = payload }, context.CancellationToken);
        }
        context.ResponseTrailers.Add("x-count", request.Count.ToString());
    }

    public override async Task<EchoReply> ClientStream(IAsyncStreamReader<EchoRequest> requestStream, ServerCallContext context)
    {
        var texts = new List<string>();
        int expected = 0;
        await foreach (var message in requestStream.ReadAllAsync(context.CancellationToken))
        {
            if (message.Sequence != expected++)
            {
                throw new RpcException(new Status(StatusCode.DataLoss, $"message {message.Sequence} arrived where {expected - 1} was due"));
            }
            texts.Add(message.Text);
        }
        return new EchoReply { Text = string.Join(",", texts), Sequence = texts.Count };
    }

    public override async Task Duplex(IAsyncStreamReader<EchoRequest> requestStream, IServerStreamWriter<EchoReply> responseStream, ServerCallContext context)
    {
        await foreach (var message in requestStream.ReadAllAsync(context.CancellationToken))
        {
            await responseStream.WriteAsync(new EchoReply { Text = "echo " + message.Text, Sequence = message.Sequence, Payload = message.Payload }, context.CancellationToken);
        }
    }

    public override async Task Fail(FailRequest request, IServerStreamWriter<EchoReply> responseStream, ServerCallContext context)
    {
        for (int i = 0; i < request.RepliesFirst; i++)
        {
            await responseStream.WriteAsync(new EchoReply { Sequence = i });
        }
        var trailers = new Metadata { { "x-failure-detail", "from the backend" }, { "x-failure-bin", new byte[] { 9, 8, 7 } } };
        throw new RpcException(new Status((StatusCode)request.StatusCode, request.Message), trailers);
    }

    public override async Task EarlyEnd(IAsyncStreamReader<EchoRequest> requestStream, IServerStreamWriter<EchoReply> responseStream, ServerCallContext context)
    {
        await requestStream.MoveNext(context.CancellationToken);
        var payload = Google.Protobuf.ByteString.CopyFrom(new byte[150_000]);
        for (int i = 0; i < 3; i++)
        {
            await responseStream.WriteAsync(new EchoReply { Sequence = i, Payload = payload });
        }
        context.ResponseTrailers.Add("x-early", "yes");
    }

    public override async Task<EchoReply> Hang(HangRequest request, ServerCallContext context)
    {
        backend.StartedSignal(request.Id).TrySetResult();
        try
        {
            await Task.Delay(Timeout.Infinite, context.CancellationToken);
        }
        catch (OperationCanceledException)
        {
            backend.AbortedSignal(request.Id).TrySetResult();
            throw;
        }
        return new EchoReply();
    }
}
