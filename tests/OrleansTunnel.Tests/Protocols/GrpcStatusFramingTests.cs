using Google.Protobuf;
using OrleansTunnel.Tests.EndToEnd;
using OrleansTunnel.Tests.Grpc;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;

namespace OrleansTunnel.Tests.Protocols;

/// <summary>
/// How a gRPC status leaves the gateway, frame by frame. Grpc.Net.Client reads grpc-status from response
/// headers wherever they came, but grpc-js (and the gRPC spec) take a status only from a HEADERS frame that
/// ends the stream: a Trailers-Only answer flushed as headers and then an empty DATA with END_STREAM reached
/// grpc-js callers as INTERNAL "Received RST_STREAM with code 0" in about a third of calls.
/// </summary>
[Collection("shared harness")]
public sealed class GrpcStatusFramingTests(SharedHarness fixture)
{
    private TunnelHarness H => fixture.Harness;

    public static TheoryData<string, int> Calls => new()
    {
        { "raw-trailers-only", 300 },
        { "fail-trailers-only", 200 },
        { "fail-after-replies", 50 },
        { "unary-ok", 50 },
        { "duplex-empty", 200 },
        { "duplex-echo", 50 },
    };

    [Theory]
    [MemberData(nameof(Calls))]
    public async Task EveryCallEndsWithAHeadersFrameThatCarriesTheStatus(string call, int count)
    {
        var (method, message) = call switch
        {
            "raw-trailers-only" => ("raw", new FailRequest { StatusCode = 9, Message = "asked to fail" }),
            "fail-trailers-only" => ("Fail", (IMessage?)new FailRequest { StatusCode = 9, Message = "asked to fail" }),
            "fail-after-replies" => ("Fail", new FailRequest { StatusCode = 9, Message = "asked to fail", RepliesFirst = 2 }),
            "unary-ok" => ("Unary", new EchoRequest { Text = "hi" }),
            "duplex-empty" => ("Duplex", null),
            "duplex-echo" => ("Duplex", new EchoRequest { Text = "hi" }),
            _ => throw new ArgumentOutOfRangeException(nameof(call)),
        };
        byte[] body = message is null ? [] : Framed(message.ToByteArray());
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await using var h2 = await RawH2c.ConnectAsync(H.H2cIngress.Port, cts.Token);
        var bad = new List<string>();
        for (int i = 0; i < count; i++)
        {
            var frames = await h2.SendAsync(
            [
                (":method", "POST"), (":scheme", "http"), (":authority", "grpc.test"), (":path", method == "raw" ? "/raw.Probe/TrailersOnly" : "/orleanstunnel.tests.Echo/" + method),
                ("content-type", "application/grpc"), ("te", "trailers"),
            ], body, cts.Token);
            var last = frames[^1];
            if (last.Type != RawH2c.Headers || !last.EndsStream || frames.Count(f => f.Type == RawH2c.Headers) is < 1 or > 2)
            {
                bad.Add($"call {i}: {string.Join(", ", frames)}");
            }
        }
        // Every call's status must travel in the HEADERS frame that ends the stream (Trailers-Only or trailers).
        Assert.True(bad.Count == 0, $"{bad.Count} of {count} {call} calls ended without a closing HEADERS frame, e.g. {string.Join(" | ", bad.Take(3))}");
    }

    [Fact]
    public async Task ATrailersOnlyHead_WhoseEndComesInALaterBatch_StillLeavesAsOneHeadersFrame()
    {
        // The agent's head (with grpc-status) and its end of body cross the tunnel in separate messages,
        // as they do when the agent's backend read had not yet seen the end: the gateway must not flush
        // the head alone, or the status lands in non-final headers that grpc-js ignores.
        await using var h = await TunnelHarness.StartAsync();
        await using var agent = await Security.FakeAgent.ConnectAsync(h);
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await using var h2 = await RawH2c.ConnectAsync(h.H2cIngress.Port, cts.Token);
        var bad = new List<string>();
        const int Count = 100;
        for (int i = 0; i < Count; i++)
        {
            var call = h2.SendAsync(
            [
                (":method", "POST"), (":scheme", "http"), (":authority", "other.test"), (":path", "/probe.Probe/Unary"),
                ("content-type", "application/grpc"), ("te", "trailers"),
            ], Framed([]), cts.Token);
            var head = await agent.NextAsync(f => f.KindCase == OrleansTunnel.Protocol.V1.Frame.KindOneofCase.RequestHead);
            await agent.SendAsync(new OrleansTunnel.Protocol.V1.Frame
            {
                Stream = head.Stream,
                ResponseHead = new OrleansTunnel.Protocol.V1.ResponseHead
                {
                    Status = 200,
                    Headers =
                    {
                        new OrleansTunnel.Protocol.V1.Header { Name = "content-type", Value = "application/grpc" },
                        new OrleansTunnel.Protocol.V1.Header { Name = "grpc-status", Value = "9" },
                        new OrleansTunnel.Protocol.V1.Header { Name = "grpc-message", Value = "asked%20to%20fail" },
                    },
                },
            });
            await agent.SendAsync(new OrleansTunnel.Protocol.V1.Frame { Stream = head.Stream, Data = new OrleansTunnel.Protocol.V1.Data { EndOfBody = true } });
            var frames = await call;
            if (frames is not [{ Type: RawH2c.Headers, EndsStream: true }])
            {
                bad.Add($"call {i}: {string.Join(", ", frames)}");
            }
        }
        Assert.True(bad.Count == 0, $"{bad.Count} of {Count} Trailers-Only answers were split, e.g. {string.Join(" | ", bad.Take(3))}");
    }

    private static byte[] Framed(byte[] message)
    {
        var framed = new byte[5 + message.Length];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(framed.AsSpan(1), message.Length);
        message.CopyTo(framed, 5);
        return framed;
    }
}
