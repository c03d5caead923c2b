using System.Diagnostics;
using System.Net;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace OrleansTunnel.Tests.FlowControl;

/// <summary>
/// A slow or large request never holds up the others, and a slow consumer costs bounded memory:
/// per-request credit on the tunnel, round-robin data frames, control frames first.
/// </summary>
public sealed class HeadOfLineTests(ITestOutputHelper output)
{
    private const long OneGiB = 1L << 30;

    [Fact]
    public async Task SmallRequests_DoNotWait_BehindFourSlowlyReadGigabyteDownloads()
    {
        await using var h = await TunnelHarness.StartAsync();
        Assert.Single(h.AgentStatus.Tunnels); // one agent connection carries everything
        using var bulkClient = TunnelHarness.NewClient();
        using var stop = new CancellationTokenSource();
        var moved = new long[4];
        var large = Enumerable.Range(0, 4).Select(i => Task.Run(async () =>
        {
            using var response = await bulkClient.GetAsync(h.Url($"/download?size={OneGiB}"), HttpCompletionOption.ResponseHeadersRead, stop.Token);
            var stream = await response.Content.ReadAsStreamAsync(stop.Token);
            var buffer = new byte[64 * 1024];
            try
            {
                // A slow visitor: about 3 MB/s each.
                while (true)
                {
                    int n = await stream.ReadAsync(buffer, stop.Token);
                    if (n == 0)
                    {
                        return;
                    }
                    Interlocked.Add(ref moved[i], n);
                    await Task.Delay(20, stop.Token);
                }
            }
            catch (OperationCanceledException)
            {
            }
        })).ToArray();
        await Eventually.TrueAsync(() => moved.All(m => Interlocked.Read(ref m) > 1_000_000), TimeSpan.FromSeconds(30), "the large downloads did not start moving");
        long[] before = moved.Select(m => Interlocked.Read(ref m)).ToArray();

        using var smallClient = TunnelHarness.NewClient();
        var latencies = await Task.WhenAll(Enumerable.Range(0, 200).Select(async i =>
        {
            var sw = Stopwatch.StartNew();
            using var response = await smallClient.GetAsync(h.Url($"/echo?small={i}"));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            await response.Content.ReadAsByteArrayAsync();
            return sw.Elapsed;
        })).Within(TimeSpan.FromSeconds(60));

        var sorted = latencies.Order().ToArray();
        output.WriteLine($"200 small requests beside 4 slow 1 GiB downloads: p50 {sorted[100].TotalMilliseconds:0.0} ms, p99 {sorted[197].TotalMilliseconds:0.0} ms, max {sorted[^1].TotalMilliseconds:0.0} ms");
        // The generous bound: none waits for a large one.
        Assert.All(latencies, l => Assert.True(l < TimeSpan.FromSeconds(2), $"a small request took {l.TotalMilliseconds:0} ms"));
        // ...while the large ones are still moving and far from done.
        long[] after = moved.Select(m => Interlocked.Read(ref m)).ToArray();
        Assert.All(Enumerable.Range(0, 4), i => Assert.True(after[i] > before[i] && after[i] < OneGiB, $"download {i} stalled or finished: {before[i]} -> {after[i]}"));
        Assert.All(large, t => Assert.False(t.IsCompleted));
        stop.Cancel();
        await Task.WhenAll(large).Within(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task SlowReader_OfAGigabyte_CostsBoundedMemory_AndThrottlesTheBackend()
    {
        await using var h = await TunnelHarness.StartAsync();
        string id = Guid.NewGuid().ToString("N");
        GC.Collect();
        GC.WaitForPendingFinalizers();
        long baseline = Process.GetCurrentProcess().PrivateMemorySize64;
        long peak = baseline;
        long read = 0;
        using var response = await h.Client.GetAsync(h.Url($"/counted-download?id={id}&size={OneGiB}"), HttpCompletionOption.ResponseHeadersRead);
        var stream = await response.Content.ReadAsStreamAsync();
        var buffer = new byte[16 * 1024];
        var sw = Stopwatch.StartNew();
        // About 1 MB/s for 15 s: a backend that produces at memory speed must be held back by credit.
        while (sw.Elapsed < TimeSpan.FromSeconds(15))
        {
            read += await stream.ReadAsync(buffer);
            await Task.Delay(16);
            peak = Math.Max(peak, Process.GetCurrentProcess().PrivateMemorySize64);
        }
        long produced = h.Backend.Counter(id).Value;
        output.WriteLine($"read {read / 1e6:0.0} MB, backend produced {produced / 1e6:0.0} MB, private memory growth {(peak - baseline) / 1e6:0.0} MB");
        // Credit, socket buffers and HTTP/2 windows are all that may lie between producer and reader.
        Assert.True(produced - read < 48L << 20, $"the backend ran {(produced - read) / 1e6:0.0} MB ahead of the reader");
        Assert.True(peak - baseline < 64L << 20, $"private memory grew by {(peak - baseline) / 1e6:0.0} MB");
    }

    [Fact]
    public async Task SlowBackendUpload_PushesBackOnTheVisitor_InsteadOfBuffering()
    {
        await using var h = await TunnelHarness.StartAsync();
        string id = Guid.NewGuid().ToString("N");
        var content = new CountingContent(OneGiB);
        using var cts = new CancellationTokenSource();
        var upload = h.Client.PostAsync(h.Url($"/slow-upload?id={id}&bytesPerSecond=1000000"), content, cts.Token);
        var counter = h.Backend.Counter(id);
        await Eventually.TrueAsync(() => Interlocked.Read(ref counter.Value) > 5_000_000, TimeSpan.FromSeconds(30), "the backend did not read 5 MB");
        long sent = content.Sent, taken = Interlocked.Read(ref counter.Value);
        output.WriteLine($"visitor wrote {sent / 1e6:0.0} MB, backend read {taken / 1e6:0.0} MB");
        // The gateway stopped reading the visitor: what the visitor could push is the backend's pace plus bounded buffers.
        Assert.True(sent - taken < 48L << 20, $"the visitor got {(sent - taken) / 1e6:0.0} MB ahead of the backend");
        cts.Cancel();
        await Assert.ThrowsAnyAsync<Exception>(() => upload);
    }

    /// <summary>A body that counts what the socket accepted.</summary>
    private sealed class CountingContent(long length) : HttpContent
    {
        private long _sent;

        public long Sent => Interlocked.Read(ref _sent);

        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
        {
            var chunk = new byte[64 * 1024];
            for (long done = 0; done < length; done += chunk.Length)
            {
                await stream.WriteAsync(chunk, cancellationToken);
                Interlocked.Add(ref _sent, chunk.Length);
            }
        }

        protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
            SerializeToStreamAsync(stream, context, CancellationToken.None);

        protected override bool TryComputeLength(out long len)
        {
            len = length;
            return true;
        }
    }
}
