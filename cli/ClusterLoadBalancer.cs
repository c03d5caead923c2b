using System.Globalization;
using System.Text;

namespace OrleansTunnel.Cli;

/// <summary>
/// The load balancer `otun cluster --lb PORT` puts in front of the gateways, as production has one:
/// nginx as an HTTP load balancer, so a visitor has one address. HTTP/1.1 (also WebSockets and
/// Server-Sent Events) on PORT, cleartext HTTP/2 with prior knowledge (gRPC) on PORT+1 to the gateways'
/// h2c ingresses. A request whose connection to a gateway is refused (the gateway stopped accepting at
/// the end of its drain delay, or died) is passed to the next gateway; nothing is buffered, and every
/// request opens its own upstream connection, so a draining gateway never gets one on a kept-alive
/// connection it is about to close.
/// </summary>
public static class ClusterLoadBalancer
{
    /// <summary>nginx's configuration (its prefix directory holds the temp files and the pid file).</summary>
    public static string NginxConfig(string prefix, int httpPort, int h2cPort, IReadOnlyList<int> ingressPorts, IReadOnlyList<int> h2cIngressPorts)
    {
        string Inv(int value) => value.ToString(CultureInfo.InvariantCulture);
        var c = new StringBuilder();
        c.AppendLine("# Written by otun cluster --lb; regenerated on every start.");
        c.AppendLine("daemon off;");
        c.AppendLine("worker_processes 1;");
        c.AppendLine($"pid {prefix}/nginx.pid;");
        c.AppendLine("error_log stderr warn;");
        c.AppendLine("events { worker_connections 4096; }");
        c.AppendLine("http {");
        c.AppendLine("  access_log off;");
        foreach (var temp in new[] { "client_body", "proxy", "fastcgi", "uwsgi", "scgi" })
        {
            c.AppendLine($"  {temp}_temp_path {prefix}/tmp/{temp};");
        }
        c.AppendLine("  map $http_upgrade $connection_upgrade { default upgrade; '' close; }");
        // max_fails=1: one refused connection takes a gateway out for fail_timeout (it is retried after).
        c.AppendLine("  upstream otun_ingress {");
        foreach (int port in ingressPorts)
        {
            c.AppendLine($"    server 127.0.0.1:{Inv(port)} max_fails=1 fail_timeout=2s;");
        }
        c.AppendLine("  }");
        c.AppendLine("  upstream otun_h2c {");
        foreach (int port in h2cIngressPorts)
        {
            c.AppendLine($"    server 127.0.0.1:{Inv(port)} max_fails=1 fail_timeout=2s;");
        }
        c.AppendLine("  }");
        c.AppendLine("  server {");
        c.AppendLine($"    listen 127.0.0.1:{Inv(httpPort)} reuseport;");
        c.AppendLine("    client_max_body_size 0;");
        c.AppendLine("    location / {");
        c.AppendLine("      proxy_pass http://otun_ingress;");
        c.AppendLine("      proxy_http_version 1.1;");
        c.AppendLine("      proxy_set_header Host $http_host;");
        c.AppendLine("      proxy_set_header Upgrade $http_upgrade;");
        c.AppendLine("      proxy_set_header Connection $connection_upgrade;");
        c.AppendLine("      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;");
        c.AppendLine("      proxy_buffering off;");
        c.AppendLine("      proxy_request_buffering off;");
        c.AppendLine("      proxy_connect_timeout 5s;");
        c.AppendLine("      proxy_read_timeout 1h;");
        c.AppendLine("      proxy_send_timeout 1h;");
        c.AppendLine("      proxy_next_upstream error timeout;");
        c.AppendLine("      proxy_next_upstream_tries 3;");
        c.AppendLine("    }");
        c.AppendLine("  }");
        c.AppendLine("  server {");
        c.AppendLine($"    listen 127.0.0.1:{Inv(h2cPort)} http2 reuseport;");
        c.AppendLine("    client_max_body_size 0;");
        c.AppendLine("    location / {");
        c.AppendLine("      grpc_pass grpc://otun_h2c;");
        c.AppendLine("      grpc_set_header Host $host;");
        c.AppendLine("      grpc_connect_timeout 5s;");
        c.AppendLine("      grpc_read_timeout 1h;");
        c.AppendLine("      grpc_send_timeout 1h;");
        c.AppendLine("      grpc_next_upstream error timeout;");
        c.AppendLine("      grpc_next_upstream_tries 3;");
        c.AppendLine("    }");
        c.AppendLine("  }");
        c.AppendLine("}");
        return c.ToString();
    }

    /// <summary>Writes the configuration under <paramref name="prefix"/> and returns nginx's arguments.</summary>
    public static string[] Prepare(string prefix, int httpPort, int h2cPort, IReadOnlyList<int> ingressPorts, IReadOnlyList<int> h2cIngressPorts)
    {
        Directory.CreateDirectory(Path.Combine(prefix, "tmp"));
        string config = Path.Combine(prefix, "nginx.conf");
        File.WriteAllText(config, NginxConfig(prefix, httpPort, h2cPort, ingressPorts, h2cIngressPorts));
        // -e: errors to stderr even before the configuration is read (no /var/log needed).
        return ["-e", "stderr", "-p", prefix, "-c", config];
    }
}
