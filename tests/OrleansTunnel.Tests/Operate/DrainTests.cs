using System.Net;
using Microsoft.Extensions.DependencyInjection;
using OrleansTunnel.Demo;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;

namespace OrleansTunnel.Tests.Operate;

/// <summary>Graceful shutdown: in-flight requests finish, the agent is told to go away, the gateway stops.</summary>
public sealed class DrainTests
{
    [Fact]
    public async Task StoppingTheGateway_LetsAnSseStreamAndADownloadFinish_ThenExits()
    {
        await using var h = await TunnelHarness.StartAsync(o => o.Gateway["Gateway:ShutdownGracePeriod"] = "00:00:20");
        string sseId = Guid.NewGuid().ToString("N");
        using var sse = await h.Client.GetAsync(h.Url($"/sse-gated?id={sseId}&count=3"), HttpCompletionOption.ResponseHeadersRead);
        using var sseReader = new StreamReader(await sse.Content.ReadAsStreamAsync());
        Assert.Equal("data: event 0", await sseReader.ReadLineAsync().Within(TimeSpan.FromSeconds(10)));

        const long size = 64L << 20;
        using var download = await h.Client.GetAsync(h.Url($"/download?size={size}"), HttpCompletionOption.ResponseHeadersRead);
        var downloadStream = await download.Content.ReadAsStreamAsync();
        var first = new byte[65536];
        await downloadStream.ReadExactlyAsync(first).AsTask().Within(TimeSpan.FromSeconds(10));

        // What SIGTERM does in `otun gateway`: stop the host.
        var stopping = Task.Run(() => h.Gateway.StopAsync());
        await Eventually.TrueAsync(() => h.Gateway.Services.GetRequiredService<Gateway.Tunnel.GatewayDrain>().Draining, TimeSpan.FromSeconds(5), "the gateway did not start draining");

        // Both in-flight answers still complete, whole.
        var rest = Hashing.Sha256Async(new ConcatStream(first, downloadStream));
        var gate = h.Backend.Gate(sseId);
        for (int i = 1; i < 3; i++)
        {
            gate.Release();
            Assert.Equal("", await sseReader.ReadLineAsync().Within(TimeSpan.FromSeconds(10)));
            Assert.Equal($"data: event {i}", await sseReader.ReadLineAsync().Within(TimeSpan.FromSeconds(10)));
        }
        var (hash, length) = await rest.Within(TimeSpan.FromSeconds(20));
        Assert.Equal(size, length);
        Assert.Equal(DemoBackend.DownloadHash(size), hash);

        await stopping.Within(TimeSpan.FromSeconds(25));
        // The agent was told to go away (it reconnects elsewhere; here there is nowhere else).
        await Eventually.TrueAsync(() => h.AgentStatus.Tunnels.Count == 0, TimeSpan.FromSeconds(10), "the agent kept its tunnel to the stopped gateway");
        await h.Gateway.DisposeAsync();
        await h.StartGatewayAsync(); // so the harness can dispose normally
    }

    private sealed class ConcatStream(byte[] head, Stream tail) : Stream
    {
        private int _offset;
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();
        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (_offset < head.Length)
            {
                int n = Math.Min(buffer.Length, head.Length - _offset);
                head.AsMemory(_offset, n).CopyTo(buffer);
                _offset += n;
                return n;
            }
            return await tail.ReadAsync(buffer, cancellationToken);
        }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
