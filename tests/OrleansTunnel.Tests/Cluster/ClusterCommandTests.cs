using System.Diagnostics;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using OrleansTunnel.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace OrleansTunnel.Tests.Cluster;

/// <summary>
/// `otun cluster` as a user runs it: every process announced, ready, locked (Redis password, mutual TLS
/// between nodes), failover, Ctrl-C (SIGTERM) stops all.
/// </summary>
public sealed partial class ClusterCommandTests(ITestOutputHelper output)
{
    [GeneratedRegex(@"^(?<role>redis|silo|gateway|agent)-(?<n>\d+) pid=(?<pid>\d+)$")]
    private static partial Regex PidLine();

    [Fact]
    public async Task OtunCluster_AnnouncesEveryProcess_ServesThroughBothGateways_SurvivesAGatewayKill_AndStopsEverything()
    {
        // Every default port shifted by one offset, so a developer's own cluster is not disturbed; all of them
        // stay below the ephemeral range (32768+), from which the other tests' free ports come.
        int offset = 1_000 + Random.Shared.Next(0, 170) * 10;
        string data = Path.Combine(Path.GetTempPath(), "otun-cluster-" + Guid.NewGuid().ToString("N")[..8]);
        var lines = new List<string>();
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var exited = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in new[] { Path.Combine(AppContext.BaseDirectory, "otun.dll"), "cluster", "--port-offset", offset.ToString(), "--data", data, "--dashboard-port", "0" })
        {
            start.ArgumentList.Add(arg);
        }
        using var cluster = Process.Start(start)!;
        cluster.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                ready.TrySetException(new InvalidOperationException("otun cluster exited before it was ready:\n" + string.Join("\n", Snapshot())));
                return;
            }
            lock (lines)
            {
                lines.Add(e.Data);
            }
            if (e.Data.StartsWith("otun cluster: ready", StringComparison.Ordinal))
            {
                ready.TrySetResult();
            }
            if (e.Data.StartsWith("gateway-1 exited", StringComparison.Ordinal))
            {
                exited.TrySetResult(e.Data);
            }
        };
        cluster.ErrorDataReceived += (_, _) => { };
        cluster.BeginOutputReadLine();
        cluster.BeginErrorReadLine();
        string[] Snapshot()
        {
            lock (lines)
            {
                return [.. lines];
            }
        }
        var pids = new Dictionary<string, int>();
        try
        {
            await ready.Task.Within(TimeSpan.FromSeconds(120));
            foreach (var line in Snapshot())
            {
                if (PidLine().Match(line) is { Success: true } m)
                {
                    pids[$"{m.Groups["role"].Value}-{m.Groups["n"].Value}"] = int.Parse(m.Groups["pid"].Value);
                }
            }
            output.WriteLine(string.Join(", ", pids.Select(p => $"{p.Key}={p.Value}")));
            Assert.Equal(["agent-1", "agent-2", "gateway-1", "gateway-2", "redis-1", "silo-1", "silo-2"], pids.Keys.Order());
            Assert.All(pids.Values, pid => Assert.False(Process.GetProcessById(pid).HasExited));

            // Locked as a production cluster: Redis wants the password made in the data directory, a silo
            // drops a TLS client that shows no certificate of the cluster's CA, and no log holds the password.
            Assert.StartsWith("-NOAUTH", await RawAsync(6390 + offset, "PING\r\n"));
            await AssertSiloDropsClientWithoutCertificateAsync(30000 + offset);
            string password = File.ReadAllText(Path.Combine(data, "redis-password")).Trim();
            Assert.True(password.Length >= 32, "a generated Redis password of at least 32 characters");
            Assert.All(Directory.GetFiles(Path.Combine(data, "logs")), log => Assert.DoesNotContain(password, File.ReadAllText(log)));
            Assert.DoesNotContain(password, string.Join("\n", Snapshot()));
            Assert.Contains(Snapshot(), line => line.Contains("tls=mutual", StringComparison.Ordinal));

            using var client = TunnelHarness.NewClient();
            var gateway1 = new Uri($"http://127.0.0.1:{8080 + offset}/hello");
            var gateway2 = new Uri($"http://127.0.0.1:{8180 + offset}/hello");
            Assert.Equal("hello", await client.GetStringAsync(gateway1));
            Assert.Equal("hello", await client.GetStringAsync(gateway2));

            // Each agent has its own admin port (9060 + n - 1): ready (a tunnel up) and its runtime metrics.
            for (int a = 0; a < 2; a++)
            {
                Assert.Equal(HttpStatusCode.OK, (await client.GetAsync($"http://127.0.0.1:{9060 + offset + a}/readyz")).StatusCode);
                Assert.Contains("dotnet_gc_last_collection_heap_size_bytes", await client.GetStringAsync($"http://127.0.0.1:{9060 + offset + a}/metrics"));
            }

            // kill -9 gateway-1: reported, and gateway-2 keeps serving every request.
            Process.GetProcessById(pids["gateway-1"]).Kill();
            Assert.StartsWith("gateway-1 exited", await exited.Task.Within(TimeSpan.FromSeconds(10)));
            for (int i = 0; i < 50; i++)
            {
                Assert.Equal("hello", await client.GetStringAsync(gateway2));
            }

            // Ctrl-C's signal: everything stops, nothing is left behind.
            using (var term = Process.Start("kill", ["-TERM", cluster.Id.ToString()]))
            {
                await term.WaitForExitAsync();
            }
            await cluster.WaitForExitAsync().Within(TimeSpan.FromSeconds(60));
            Assert.Equal(0, cluster.ExitCode);
            foreach (var (name, pid) in pids)
            {
                Assert.False(IsRunning(pid), $"{name} (pid {pid}) is still running after otun cluster stopped");
            }
        }
        finally
        {
            if (!cluster.HasExited)
            {
                cluster.Kill(entireProcessTree: true);
            }
            foreach (var pid in pids.Values.Where(IsRunning))
            {
                Process.GetProcessById(pid).Kill();
            }
            if (Directory.Exists(data))
            {
                Directory.Delete(data, recursive: true);
            }
        }
    }

    private static async Task<string> RawAsync(int port, string command)
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, port);
        var stream = tcp.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(command));
        var buffer = new byte[256];
        int n = await stream.ReadAsync(buffer).AsTask().Within(TimeSpan.FromSeconds(10));
        return Encoding.ASCII.GetString(buffer, 0, n);
    }

    private static async Task AssertSiloDropsClientWithoutCertificateAsync(int port)
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, port);
        using var tls = new SslStream(tcp.GetStream());
        // The silo speaks TLS (a cleartext silo fails this handshake)...
        await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = "localhost",
            RemoteCertificateValidationCallback = (_, _, _, _) => true,
        }).Within(TimeSpan.FromSeconds(10));
        // ...and, TLS 1.3 reporting a missing client certificate after the handshake, ends the connection.
        int read;
        try
        {
            await tls.WriteAsync(new byte[16]);
            read = await tls.ReadAsync(new byte[16]).AsTask().Within(TimeSpan.FromSeconds(10));
        }
        catch (IOException)
        {
            read = 0;
        }
        Assert.Equal(0, read);
    }

    private static bool IsRunning(int pid)
    {
        try
        {
            using var p = Process.GetProcessById(pid);
            return !p.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }
}
