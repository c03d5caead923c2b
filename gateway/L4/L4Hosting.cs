using System.Net;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace OrleansTunnel.Gateway.L4;

/// <summary>Registers the gateway's TCP and UDP services (gateway/L4).</summary>
public static class L4Hosting
{
    public static IServiceCollection AddL4Services(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<L4Options>().Bind(configuration.GetSection(GatewayOptions.Section)).ValidateOnStart();
        services.AddSingleton<IValidateOptions<L4Options>, L4OptionsValidator>();
        services.AddSingleton<L4Telemetry>();
        services.AddSingleton<L4Endpoints>();
        services.AddSingleton<L4Gate>();
        services.AddSingleton<TcpServices>();
        services.AddHostedService(sp => sp.GetRequiredService<TcpServices>());
        services.AddHostedService<TlsPassthrough>();
        services.AddSingleton<UdpServices>();
        services.AddHostedService(sp => sp.GetRequiredService<UdpServices>());
        services.AddSingleton<L4RuntimeListeners>();
        services.AddHostedService(sp => sp.GetRequiredService<L4RuntimeListeners>());
        services.AddSingleton<Admin.IAdminEndpoint, L4AdminApi>();
        return services;
    }
}

/// <summary>Checks Gateway:TcpServices, Gateway:UdpServices and the TLS passthrough options; every failure names the key.</summary>
public sealed class L4OptionsValidator : IValidateOptions<L4Options>
{
    public ValidateOptionsResult Validate(string? name, L4Options o)
    {
        var failures = new List<string>();
        var listens = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var (kind, list) in new[] { ("TcpServices", o.TcpServices), ("UdpServices", o.UdpServices) })
        {
            for (int i = 0; i < list.Count; i++)
            {
                var s = list[i];
                string key = $"Gateway:{kind}:{i}";
                if (string.IsNullOrWhiteSpace(s.Service))
                {
                    failures.Add($"{key}:Service is empty; name the service an agent exposes (--expose {kind[..3].ToLowerInvariant()}://... --service NAME)");
                }
                if (!IPEndPoint.TryParse(s.Listen, out var endPoint))
                {
                    failures.Add($"{key}:Listen '{s.Listen}' is not address:port (e.g. 127.0.0.1:5432 or [::]:53)");
                }
                else if (endPoint.Port != 0 && !listens.Add($"{kind[..3]}/{endPoint}"))
                {
                    failures.Add($"{key}:Listen {s.Listen} is used twice");
                }
                if (s.MaxConnections < 1)
                {
                    failures.Add($"{key}:MaxConnections {s.MaxConnections} must be at least 1");
                }
                if (s.IdleTimeout is { } idle && idle <= TimeSpan.Zero)
                {
                    failures.Add($"{key}:IdleTimeout {idle} must be positive");
                }
                foreach (var network in s.AllowedNetworks)
                {
                    if (!Ingress.VisitorAccess.TryParseNetwork(network, out _))
                    {
                        failures.Add($"{key}:AllowedNetworks '{network}' is not a CIDR (10.0.0.0/8) or an address");
                    }
                }
                if (kind == "UdpServices" && s.ProxyProtocol)
                {
                    failures.Add($"{key}:ProxyProtocol is for TCP services only");
                }
            }
        }
        if (!string.IsNullOrWhiteSpace(o.TlsPassthrough) && !IPEndPoint.TryParse(o.TlsPassthrough, out _))
        {
            failures.Add($"Gateway:TlsPassthrough '{o.TlsPassthrough}' is not address:port (e.g. 0.0.0.0:443)");
        }
        if (o.TcpBufferSize is < 1024 or > 1024 * 1024)
        {
            failures.Add($"Gateway:TcpBufferSize {o.TcpBufferSize} must be between 1024 and 1048576 bytes");
        }
        if (o.UdpFlowQueue is < 1 or > 65536)
        {
            failures.Add($"Gateway:UdpFlowQueue {o.UdpFlowQueue} must be between 1 and 65536 datagrams");
        }
        if (o.TlsPassthroughMaxConnections < 1)
        {
            failures.Add($"Gateway:TlsPassthroughMaxConnections {o.TlsPassthroughMaxConnections} must be at least 1");
        }
        foreach (var (key, value) in new[] { ("L4ConnectTimeout", o.L4ConnectTimeout), ("ClientHelloTimeout", o.ClientHelloTimeout), ("TlsPassthroughIdleTimeout", o.TlsPassthroughIdleTimeout) })
        {
            if (value <= TimeSpan.Zero)
            {
                failures.Add($"Gateway:{key} {value} must be positive");
            }
        }
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
