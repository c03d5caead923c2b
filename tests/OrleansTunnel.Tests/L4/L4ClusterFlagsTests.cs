using OrleansTunnel.Tests.Infrastructure;
using Xunit;

namespace OrleansTunnel.Tests.L4;

/// <summary>`otun cluster --port-offset` moves --tcp-port like every other port (checked before anything starts).</summary>
public sealed class L4ClusterFlagsTests
{
    [Fact]
    public async Task PortOffset_MovesTheTcpPort_WithTheOthers()
    {
        string data = Path.Combine(Path.GetTempPath(), "otun-l4-offset-" + Guid.NewGuid().ToString("N")[..8]);
        // --tcp-port 8080 is the ingress port's default: both move by the offset to 9314, so the up-front check
        // finds them on one port (were the TCP port left at 8080, nothing would clash there).
        var (exit, output, error) = await OtunCli.RunAsync("cluster", "--port-offset", "1234", "--data", data, "--dashboard-port", "0",
            "--expose", "tcp://127.0.0.1:6379", "--tcp-port", "8080");

        Assert.True(exit != 0, output + error);
        Assert.Contains("port 9314 is used twice (gateway-1 ingress, gateway-1 tcp service tcp-8080)", error);
        Assert.False(Directory.Exists(data), "nothing is started (or written) before the port check");
    }
}
