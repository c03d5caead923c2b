using System.Diagnostics;
using System.Net.Sockets;

namespace OrleansTunnel.Tests.Infrastructure;

/// <summary>
/// A real nginx (Debian's nginx-light, installed by test.sh) on a free loopback port, with the
/// server blocks a test gives; runs in the foreground as a child of the test host and is killed on dispose.
/// nginx normalises request paths (merges slashes, resolves dot segments, decodes escapes) before it
/// matches locations, which is what the path-confusion tests need from a backend.
/// </summary>
public sealed class NginxBackend : IAsyncDisposable
{
    private readonly Process _process;
    private readonly string _dir;

    private NginxBackend(Process process, string dir, int port)
    {
        _process = process;
        _dir = dir;
        Port = port;
    }

    public int Port { get; }

    public string Url => $"http://127.0.0.1:{Port}";

    /// <summary>Starts nginx with <paramref name="locations"/> inside one server block on a free port.</summary>
    public static async Task<NginxBackend> StartAsync(string locations)
    {
        int port = Ports.Free();
        string dir = Directory.CreateTempSubdirectory("otun-nginx-").FullName;
        string conf = Path.Combine(dir, "nginx.conf");
        await File.WriteAllTextAsync(conf, $$"""
            worker_processes 1;
            pid {{dir}}/nginx.pid;
            error_log {{dir}}/error.log;
            events { worker_connections 256; }
            http {
              access_log off;
              client_body_temp_path {{dir}}/body; proxy_temp_path {{dir}}/proxy; fastcgi_temp_path {{dir}}/fcgi;
              uwsgi_temp_path {{dir}}/uwsgi; scgi_temp_path {{dir}}/scgi;
              default_type text/plain;
              server {
                listen 127.0.0.1:{{port}};
            {{locations}}
              }
            }
            """);
        var psi = new ProcessStartInfo(File.Exists("/usr/sbin/nginx") ? "/usr/sbin/nginx" : "nginx", ["-c", conf, "-p", dir, "-e", Path.Combine(dir, "error.log"), "-g", "daemon off;"])
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
        };
        var process = Process.Start(psi) ?? throw new InvalidOperationException("nginx did not start");
        var backend = new NginxBackend(process, dir, port);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"nginx exited with {process.ExitCode}: {await File.ReadAllTextAsync(Path.Combine(dir, "error.log"))}");
            }
            try
            {
                using var probe = new TcpClient();
                await probe.ConnectAsync("127.0.0.1", port);
                return backend;
            }
            catch (SocketException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(50);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
        _process.Dispose();
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
