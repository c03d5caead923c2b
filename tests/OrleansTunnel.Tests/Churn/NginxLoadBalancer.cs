using System.Diagnostics;
using OrleansTunnel.Tests.Infrastructure;

namespace OrleansTunnel.Tests.Churn;

/// <summary>
/// nginx in front of a <see cref="ClusterRig"/>'s gateways with the configuration `otun cluster --lb` writes
/// (<see cref="OrleansTunnel.Cli.ClusterLoadBalancer"/>): HTTP/1.1 on <see cref="HttpUrl"/>, h2c (gRPC) on
/// <see cref="H2cUrl"/>. The rig needs <see cref="ClusterRigOptions.H2cIngress"/>.
/// </summary>
public sealed class NginxLoadBalancer : IAsyncDisposable
{
    private readonly Process _process;
    private readonly List<string> _output = [];
    private readonly string _prefix;

    public int HttpPort { get; } = Ports.Free();
    public int H2cPort { get; } = Ports.Free();
    public Uri HttpUrl => new($"http://127.0.0.1:{HttpPort}");
    public Uri H2cUrl => new($"http://127.0.0.1:{H2cPort}");

    private NginxLoadBalancer(ClusterRig rig)
    {
        _prefix = Path.Combine(Path.GetTempPath(), "otun-lb-" + Guid.NewGuid().ToString("N")[..8]);
        var gateways = Enumerable.Range(0, rig.Options.Gateways).ToArray();
        var args = OrleansTunnel.Cli.ClusterLoadBalancer.Prepare(_prefix, HttpPort, H2cPort,
            [.. gateways.Select(i => rig.GatewayIngressUrl(i).Port)], [.. gateways.Select(i => rig.GatewayH2cUrl(i).Port)]);
        var start = new ProcessStartInfo(Executable() ?? throw new InvalidOperationException("nginx is not installed (apt-get install -y nginx)"))
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }
        _process = Process.Start(start)!;
        _process.OutputDataReceived += (_, e) => Collect(e.Data);
        _process.ErrorDataReceived += (_, e) => Collect(e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public static string? Executable() => new[] { "/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx" }.FirstOrDefault(File.Exists);

    /// <summary>Starts nginx and waits until a GET /hello through it answers 200.</summary>
    public static async Task<NginxLoadBalancer> StartAsync(ClusterRig rig, HttpClient client)
    {
        var lb = new NginxLoadBalancer(rig);
        try
        {
            await Eventually.TrueAsync(() =>
            {
                if (lb._process.HasExited)
                {
                    throw new InvalidOperationException("nginx exited: " + lb.Output);
                }
                try
                {
                    using var response = client.GetAsync(new Uri(lb.HttpUrl, "/hello")).GetAwaiter().GetResult();
                    return response.IsSuccessStatusCode;
                }
                catch (HttpRequestException)
                {
                    return false;
                }
            }, TimeSpan.FromSeconds(30), "nginx did not answer GET /hello through the gateways");
        }
        catch
        {
            await lb.DisposeAsync();
            throw;
        }
        return lb;
    }

    private void Collect(string? line)
    {
        if (line is not null)
        {
            lock (_output)
            {
                _output.Add(line);
            }
        }
    }

    public string Output
    {
        get
        {
            lock (_output)
            {
                return string.Join("\n", _output.TakeLast(30));
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }
            await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
        }
        catch (Exception ex) when (ex is InvalidOperationException or TimeoutException)
        {
        }
        _process.Dispose();
        try
        {
            Directory.Delete(_prefix, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
