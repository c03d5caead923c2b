using System.Diagnostics;
using System.Net;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace OrleansTunnel.Tests.Security;

/// <summary>
/// HTTP/2 abuse on the cleartext HTTP/2 ingress, driven by python-h2 scripts (Debian python3-h2 under
/// /usr/bin/python3): the offending connection gets GOAWAY or is closed, memory stays bounded, a
/// well-behaved visitor on another connection keeps being served, and few requests reach the agent.
/// </summary>
public sealed class Http2AttackTests(DefaultSecurityHarness fixture, ITestOutputHelper output) : IClassFixture<DefaultSecurityHarness>
{
    private TunnelHarness H => fixture.Harness;

    /// <summary>Managed memory still live after a full collection: what the attack really holds on to.</summary>
    private const long RetainedBound = 64L * 1024 * 1024;

    /// <summary>
    /// Growth of the process's private memory, a coarse net for native leaks. The GC keeps memory it
    /// committed during the attack's burst (it decommits lazily), so this is looser than what is retained.
    /// </summary>
    private const long PrivateBound = 192L * 1024 * 1024;

    /// <summary>AttackForwarded: requests that reached the agent during the attack, minus the well-behaved ones (up to 2 of those may be in flight).</summary>
    private sealed record Outcome(string Output, long AttackForwarded, int GoodOk, int GoodFailed, long MemoryGrowth, long Retained);

    private async Task<Outcome> AttackAsync(string script, params string[] args)
    {
        Assert.True(File.Exists("/usr/bin/python3"), "/usr/bin/python3 is missing");
        var forwarder = H.Forwarder();
        using var h2c = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 1 })
        {
            DefaultRequestVersion = HttpVersion.Version20,
            DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Timeout = TimeSpan.FromSeconds(10),
        };
        // Warm up both paths so the measurements exclude first-use costs.
        Assert.Equal(HttpStatusCode.OK, (await h2c.GetAsync(new Uri(H.H2cIngress, "/hello"))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await H.Client.GetAsync(H.Url("/hello"))).StatusCode);
        GC.Collect();
        GC.WaitForPendingFinalizers();
        long memoryBefore = Process.GetCurrentProcess().PrivateMemorySize64;
        long managedBefore = GC.GetTotalMemory(forceFullCollection: true);
        long forwardedBefore = forwarder.Forwarded;

        int ok = 0, failed = 0;
        using var stop = new CancellationTokenSource();
        var good = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                foreach (var (client, url) in new[] { (h2c, new Uri(H.H2cIngress, "/hello")), (H.Client, H.Url("/hello")) })
                {
                    try
                    {
                        using var r = await client.GetAsync(url, stop.Token);
                        if (r.StatusCode == HttpStatusCode.OK)
                        {
                            Interlocked.Increment(ref ok);
                        }
                        else
                        {
                            Interlocked.Increment(ref failed);
                        }
                    }
                    catch (OperationCanceledException) when (stop.IsCancellationRequested)
                    {
                    }
                    catch (Exception)
                    {
                        Interlocked.Increment(ref failed);
                    }
                }
            }
        });
        var (exit, text) = await SecurityKit.RunAttackAsync(script, TimeSpan.FromSeconds(90), [H.H2cIngress.Port.ToString(), .. args]);
        long forwardedDuring = forwarder.Forwarded - forwardedBefore;
        // The well-behaved visitor must still be served after the attack.
        int okAtEnd = Volatile.Read(ref ok);
        await Eventually.TrueAsync(() => Volatile.Read(ref ok) >= okAtEnd + 10, TimeSpan.FromSeconds(20), "well-behaved requests stopped being served after the attack");
        stop.Cancel();
        await good.Within(TimeSpan.FromSeconds(15));
        // Retained memory: what a collection cannot give back is what the attack cost.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        long growth = Process.GetCurrentProcess().PrivateMemorySize64 - memoryBefore;
        long retained = GC.GetTotalMemory(forceFullCollection: true) - managedBefore;
        output.WriteLine(text);
        output.WriteLine($"attack requests forwarded: {forwardedDuring - okAtEnd}, good ok={ok} failed={failed}, private memory growth={growth / 1024 / 1024} MiB, managed memory retained={retained / 1024 / 1024} MiB");
        Assert.True(exit == 0, $"{script} failed (exit {exit}): {text}");
        Assert.Contains("RESULT ", text);
        return new Outcome(text, forwardedDuring - okAtEnd, ok, failed, growth, retained);
    }

    private static void AssertBounded(Outcome o)
    {
        Assert.True(o.Retained < RetainedBound, $"the attack left {o.Retained / 1024 / 1024} MiB of managed memory live");
        Assert.True(o.MemoryGrowth < PrivateBound, $"private memory grew by {o.MemoryGrowth / 1024 / 1024} MiB");
        Assert.True(o.GoodOk > 0, "no well-behaved request was served during the attack");
        Assert.Equal(0, o.GoodFailed);
    }

    [Fact]
    public async Task RapidReset_ConnectionClosed_OthersServed_FewForwarded()
    {
        var o = await AttackAsync("rapid_reset.py", "20000");
        AssertBounded(o);
        // Kestrel sends GOAWAY and closes; while the attacker is still writing, the close can arrive as a TCP reset
        // that discards the GOAWAY, so the close is what is asserted.
        Assert.Contains("closed=True", o.Output);
        Assert.DoesNotContain("sent=20000 ", o.Output);
        // 20000 streams opened and reset: only a small fraction may reach the agent (good requests included).
        Assert.True(o.AttackForwarded < 2000, $"{o.AttackForwarded} attack requests reached the agent");
    }

    [Fact]
    public async Task ContinuationFlood_ConnectionClosed_MemoryFlat()
    {
        var o = await AttackAsync("continuation_flood.py", (64 * 1024 * 1024).ToString());
        AssertBounded(o);
        // Kestrel sends GOAWAY and closes; the attacker is still sending, so the close can arrive as a TCP
        // reset that discards the unread GOAWAY on the attacker's side (seen once in a CI run: closed=True,
        // goaway=no). The close is what is asserted, as for TooManyStreams.
        Assert.Contains("closed=True", o.Output);
        Assert.InRange(o.AttackForwarded, 0, 2);
    }

    [Fact]
    public async Task HpackBomb_ConnectionClosed_NothingForwarded()
    {
        var o = await AttackAsync("hpack_bomb.py");
        AssertBounded(o);
        Assert.Contains("closed=True", o.Output);
        Assert.Contains("goaway=yes", o.Output);
        Assert.InRange(o.AttackForwarded, 0, 2);
    }

    [Fact]
    public async Task TooManyStreams_ExcessRefused_AtMostTheStreamLimitForwarded()
    {
        var o = await AttackAsync("too_many_streams.py", "1000");
        AssertBounded(o);
        // Streams over the limit are refused (RST_STREAM REFUSED_STREAM); an attacker who keeps going is
        // disconnected (observed: 0 to 900 refusals received before the close, depending on timing).
        // The refusals can be lost in the TCP reset when the close comes first, so the close is what is asserted.
        Assert.Contains("closed=True", o.Output);
        // Kestrel's default of 100 concurrent streams per connection bounds what reaches the agent.
        Assert.True(o.AttackForwarded <= 102, $"{o.AttackForwarded} attack streams reached the agent");
    }
}
