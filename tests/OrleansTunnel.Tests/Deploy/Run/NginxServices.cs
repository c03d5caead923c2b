using System.Diagnostics;
using System.Net;
using System.Text;
using OrleansTunnel.Tests.Infrastructure;

namespace OrleansTunnel.Tests.Deploy.Run;

/// <summary>One Service port: where it listens (the Service's address) and the pod endpoints behind it.</summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed record ServicePort(string Service, IPAddress Address, int Port, IReadOnlyList<IPEndPoint> Endpoints);

/// <summary>Kubernetes Services as one nginx (stream module, TCP round robin) on the node.</summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class NginxServices : IAsyncDisposable
{
    private readonly Process _process;
    private readonly string _directory;

    private NginxServices(Process process, string directory)
    {
        _process = process;
        _directory = directory;
    }

    public static async Task<NginxServices> StartAsync(string directory, IReadOnlyList<ServicePort> ports)
    {
        Directory.CreateDirectory(directory);
        var conf = new StringBuilder();
        conf.AppendLine("load_module /usr/lib/nginx/modules/ngx_stream_module.so;");
        conf.AppendLine("daemon off;\nworker_processes 1;\nuser root;");
        conf.AppendLine($"pid {directory}/nginx.pid;\nerror_log {directory}/error.log info;\nevents {{ worker_connections 1024; }}\nstream {{");
        for (int i = 0; i < ports.Count; i++)
        {
            var p = ports[i];
            conf.AppendLine($"  # Service {p.Service} port {p.Port}\n  upstream u{i} {{");
            foreach (var e in p.Endpoints)
            {
                conf.AppendLine($"    server {e};");
            }
            conf.AppendLine($"  }}\n  server {{ listen {p.Address}:{p.Port}; proxy_pass u{i}; proxy_connect_timeout 5s; proxy_timeout 10m; }}");
        }
        conf.AppendLine("}");
        string file = Path.Combine(directory, "nginx.conf");
        await File.WriteAllTextAsync(file, conf.ToString());
        var test = await ProcessRunner.RunAsync("nginx", ["-t", "-p", directory, "-c", file], directory, TimeSpan.FromSeconds(30));
        if (test.ExitCode != 0)
        {
            throw new InvalidOperationException("nginx rejected the Services' configuration (is libnginx-mod-stream installed?): " + test.Describe());
        }
        var process = Process.Start(new ProcessStartInfo("nginx", ["-p", directory, "-c", file]) { RedirectStandardError = true, RedirectStandardOutput = true })!;
        var self = new NginxServices(process, directory);
        // Ready when every Service address accepts connections.
        foreach (var p in ports)
        {
            await Eventually.TrueAsync(() => Accepts(p.Address, p.Port), TimeSpan.FromSeconds(30), $"nginx never listened on {p.Address}:{p.Port} ({p.Service})");
        }
        return self;
    }

    private static bool Accepts(IPAddress address, int port)
    {
        try
        {
            using var client = new System.Net.Sockets.TcpClient();
            client.Connect(address, port);
            return true;
        }
        catch (System.Net.Sockets.SocketException)
        {
            return false;
        }
    }

    public string ErrorLog => File.Exists(Path.Combine(_directory, "error.log")) ? File.ReadAllText(Path.Combine(_directory, "error.log")) : "";

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }
        await _process.WaitForExitAsync();
        _process.Dispose();
    }
}
