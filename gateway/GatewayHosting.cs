using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Configuration;
using OrleansTunnel.Gateway.Admin;
using OrleansTunnel.Gateway.Auth;
using OrleansTunnel.Gateway.Identity;
using OrleansTunnel.Gateway.Ingress;
using OrleansTunnel.Gateway.Routing;
using OrleansTunnel.Gateway.Telemetry;
using OrleansTunnel.Gateway.Tunnel;
using OrleansTunnel.Silo;
using StackExchange.Redis;

namespace OrleansTunnel.Gateway;

/// <summary>Hosting of the gateway role: visitor ingress, the tunnel endpoint and the admin endpoint.</summary>
public static class GatewayHosting
{
    internal const string ListenerKey = "otun.listener";

    /// <summary>
    /// Adds the gateway. With <paramref name="joinAsClient"/> it joins the cluster as an Orleans
    /// client (configured from "Cluster"); otherwise a silo must be hosted in the same process.
    /// </summary>
    public static WebApplicationBuilder AddTunnelGateway(this WebApplicationBuilder builder, bool joinAsClient)
    {
        var section = builder.Configuration.GetSection(GatewayOptions.Section);
        builder.Services.AddOptions<GatewayOptions>().Bind(section).ValidateOnStart();
        builder.Services.AddSingleton<IValidateOptions<GatewayOptions>, GatewayOptionsValidator>();
        var gatewayOptions = section.Get<GatewayOptions>() ?? new GatewayOptions();
        // One id for the whole process, even when the configuration leaves it to the default.
        builder.Services.PostConfigure<GatewayOptions>(o => o.GatewayId = string.IsNullOrWhiteSpace(section["GatewayId"]) ? gatewayOptions.GatewayId : o.GatewayId);

        // The Orleans client first: hosted services start in order, so the gateway's own background
        // services (routing subscription, directory reports) start once the client is connected.
        if (joinAsClient)
        {
            var cluster = builder.Configuration.GetSection(ClusterSettings.Section).Get<ClusterSettings>() ?? new ClusterSettings();
            if (cluster.RedisTls.Problem() is { } redisTlsProblem)
            {
                throw new InvalidOperationException(redisTlsProblem);
            }
            builder.Logging.AddFilter("Polly", LogLevel.Warning);
            builder.UseOrleansClient(client =>
            {
                client.Configure<ClusterOptions>(o =>
                {
                    o.ClusterId = cluster.ClusterId;
                    o.ServiceId = cluster.ServiceId;
                });
                if (string.IsNullOrWhiteSpace(cluster.Redis))
                {
                    client.UseLocalhostClustering(cluster.GatewayPort, cluster.ServiceId, cluster.ClusterId);
                }
                else
                {
                    client.UseRedisClustering(o => o.ConfigurationOptions = RedisConnection.Options(cluster));
                }
                ClusterTls.Apply(client, cluster.Tls);
                if (cluster.ResponseTimeout is { } responseTimeout)
                {
                    client.Configure<ClientMessagingOptions>(o => o.ResponseTimeout = responseTimeout);
                }
                // A gateway started before the silos (or while they restart) keeps trying to join.
                client.UseConnectionRetryFilter(async (exception, cancellationToken) =>
                {
                    Console.Error.WriteLine($"otun gateway: cannot reach a silo of cluster '{cluster.ClusterId}' yet ({exception.Message}); retrying in 1 s");
                    await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken);
                    return true;
                });
                if (cluster.GatewayListRefreshPeriod is { } refresh)
                {
                    client.Configure<Orleans.Configuration.GatewayOptions>(o => o.GatewayListRefreshPeriod = refresh);
                }
            });
        }
        builder.AddGatewayTelemetry();
        builder.Services.AddSingleton<AgentCredentialStore>();
        builder.Services.AddHostedService<CredentialRevoker>();
        builder.Services.AddSingleton<ConnectionRegistry>();
        builder.Services.AddSingleton<HandshakeLimiter>();
        builder.Services.AddSingleton<GatewayDrain>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<GatewayDrain>());
        // The drain delay runs first (while visitors are still served), then in-flight requests get the grace period.
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = gatewayOptions.DrainDelay + gatewayOptions.ShutdownGracePeriod);
        builder.Services.AddSingleton<RoutingCache>();
        builder.Services.AddOptions<OrleansTunnel.Gateway.Requests.InspectorOptions>().Bind(builder.Configuration.GetSection(OrleansTunnel.Gateway.Requests.InspectorOptions.Section)).ValidateOnStart();
        builder.Services.AddSingleton<IValidateOptions<OrleansTunnel.Gateway.Requests.InspectorOptions>, OrleansTunnel.Gateway.Requests.InspectorOptionsValidator>();
        builder.Services.AddSingleton<OrleansTunnel.Gateway.Requests.RequestJournal>();
        builder.Services.AddSingleton<OrleansTunnel.Gateway.Requests.RequestTracker>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<OrleansTunnel.Gateway.Requests.RequestTracker>());
        builder.Services.AddSingleton<OrleansTunnel.Gateway.Requests.RequestJournalObserver>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<OrleansTunnel.Gateway.Requests.RequestJournalObserver>());
        builder.Services.AddSingleton<TrustedProxies>();
        builder.Services.AddSingleton<ResponseRelay>();
        builder.Services.AddSingleton<TunnelExchange>();
        builder.Services.AddTunnelIdentity(builder.Configuration);
        builder.Services.AddSingleton<Requests.InFlightBounds>();
        builder.Services.AddSingleton<IngressForwarder>();
        builder.Services.Configure<OrleansTunnel.Gateway.Policy.RateLimitOptions>(builder.Configuration.GetSection(OrleansTunnel.Gateway.Policy.RateLimitOptions.Section));
        builder.Services.AddSingleton<OrleansTunnel.Gateway.Policy.RateLimiter>();
        builder.Services.AddSingleton<OrleansTunnel.Gateway.Policy.RateLimitMetrics>();
        builder.Services.AddSingleton<OrleansTunnel.Gateway.Policy.RateLimitGate>();
        builder.Services.AddSingleton<AdminAuthorizer>();
        builder.Services.AddSingleton<AdminAudit>();
        builder.Services.AddSingleton<AdminEndpoints>();
        builder.Services.AddSingleton<RequestListing>();
        builder.Services.AddSingleton<RequestReplayer>();
        builder.Services.AddSingleton<OrleansTunnel.Gateway.Requests.ReplayMarker>();
        builder.Services.AddSingleton<IAdminEndpoint, AdminApi>();
        builder.Services.AddSingleton<OrleansTunnel.Gateway.Admin.Inspector.InspectorSessions>();
        builder.Services.AddSingleton<IAdminEndpoint, OrleansTunnel.Gateway.Admin.Inspector.InspectorEndpoint>();
        builder.Services.AddSingleton<IAdminEndpoint, OrleansTunnel.Gateway.Admin.Inspector.InspectorRedirect>();
        builder.Services.AddSingleton<PermitPool>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<PermitPool>());
        builder.Services.AddSingleton<RoutingSubscriber>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<RoutingSubscriber>());
        builder.Services.AddHostedService<RoutingReadyGate>();
        var endpoints = new GatewayEndpoints();
        builder.Services.AddSingleton(endpoints);
        // Cluster: the gateway directory, links to the other gateways, cross-gateway dispatch.
        builder.Services.AddSingleton<OrleansTunnel.Gateway.Cluster.GatewayIdentity>();
        builder.Services.AddSingleton<OrleansTunnel.Gateway.Cluster.PeerLinks>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<OrleansTunnel.Gateway.Cluster.PeerLinks>());
        // Health checks, retries and circuit breaking (section "Resilience").
        builder.Services.AddOptions<OrleansTunnel.Gateway.Health.ResilienceOptions>().Bind(builder.Configuration.GetSection(OrleansTunnel.Gateway.Health.ResilienceOptions.Section)).ValidateOnStart();
        builder.Services.AddSingleton<IValidateOptions<OrleansTunnel.Gateway.Health.ResilienceOptions>, OrleansTunnel.Gateway.Health.ResilienceOptionsValidator>();
        builder.Services.AddSingleton<OrleansTunnel.Gateway.Health.SharedCircuits>();
        builder.Services.AddSingleton<OrleansTunnel.Gateway.Health.CircuitBreakers>();
        builder.Services.AddSingleton<OrleansTunnel.Gateway.Cluster.Dispatcher>();
        builder.Services.AddSingleton<OrleansTunnel.Gateway.Cluster.PeerBridge>();
        builder.Services.AddSingleton<OrleansTunnel.Gateway.Cluster.ClusterPresence>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<OrleansTunnel.Gateway.Cluster.ClusterPresence>());
        // TCP and UDP services, TLS passthrough (gateway/L4).
        OrleansTunnel.Gateway.L4.L4Hosting.AddL4Services(builder.Services, builder.Configuration);
        builder.Services.AddGrpc(o =>
        {
            o.MaxReceiveMessageSize = gatewayOptions.MaxTunnelMessageSize;
            o.MaxSendMessageSize = gatewayOptions.MaxTunnelMessageSize;
            o.EnableDetailedErrors = false;
        });

        // Kestrel's buffers: blocks large enough that a bulk transfer is read in few socket calls (see TransportMemoryPool).
        builder.Services.AddSingleton<Microsoft.AspNetCore.Connections.IMemoryPoolFactory<byte>>(
            new TransportMemoryPoolFactory(gatewayOptions.TransportBlockSize, gatewayOptions.TransportPoolRetainedBytes));
        var connectionLimit = new IngressConnectionLimit(gatewayOptions.MaxIngressConnections);
        builder.Services.AddSingleton(connectionLimit);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Limits.MaxRequestBodySize = gatewayOptions.MaxRequestBodySize;
            IngressLimits.Apply(kestrel.Limits, gatewayOptions);
            endpoints.Ingress = Listen(kestrel, gatewayOptions.Ingress, "ingress", HttpProtocols.Http1, lo => lo.Use(connectionLimit.Wrap));
            if (!string.IsNullOrWhiteSpace(gatewayOptions.HttpsIngress))
            {
                // TLS with ALPN offering h2 and http/1.1; a renewed certificate on disk is picked up.
                var certificate = new ReloadingCertificate(() => IngressCertificate.Load(gatewayOptions),
                    [gatewayOptions.CertificatePath, gatewayOptions.CertificateKeyPath], "ingress", gatewayOptions.CertificateCheckInterval);
                UseCertificateLogger(kestrel, certificate);
                endpoints.HttpsIngress = Listen(kestrel, gatewayOptions.HttpsIngress, "ingress", HttpProtocols.Http1AndHttp2, lo =>
                {
                    lo.Use(connectionLimit.Wrap);
                    lo.UseHttps(new HttpsConnectionAdapterOptions { ServerCertificateSelector = (_, _) => certificate.Current });
                });
            }
            if (!string.IsNullOrWhiteSpace(gatewayOptions.H2cIngress))
            {
                // Cleartext HTTP/2 with prior knowledge, for callers inside a cluster.
                endpoints.H2cIngress = Listen(kestrel, gatewayOptions.H2cIngress, "ingress", HttpProtocols.Http2, lo => lo.Use(connectionLimit.Wrap));
            }
            endpoints.Tunnel = Uri.TryCreate(gatewayOptions.Tunnel, UriKind.Absolute, out var tunnelUri) && tunnelUri.Scheme == Uri.UriSchemeHttps
                ? Listen(kestrel, gatewayOptions.Tunnel, "tunnel", HttpProtocols.Http2, lo =>
                {
                    var tls = TunnelTls.ServerOptions(gatewayOptions, out var tunnelCertificate);
                    UseCertificateLogger(kestrel, tunnelCertificate);
                    lo.UseHttps(tls);
                })
                : Listen(kestrel, gatewayOptions.Tunnel, "tunnel", HttpProtocols.Http2);
            endpoints.Admin = Uri.TryCreate(gatewayOptions.Admin, UriKind.Absolute, out var adminUri) && adminUri.Scheme == Uri.UriSchemeHttps
                ? Listen(kestrel, gatewayOptions.Admin, "admin", HttpProtocols.Http1, lo =>
                {
                    // https:// is honoured: the admin API carries bearer tokens. Same certificate files as the ingress.
                    if (string.IsNullOrWhiteSpace(gatewayOptions.CertificatePath))
                    {
                        throw new OptionsValidationException(nameof(GatewayOptions), typeof(GatewayOptions),
                            [$"Gateway:Admin '{gatewayOptions.Admin}' is https:// but Gateway:CertificatePath is empty; give the certificate (and Gateway:CertificateKeyPath), or use http:// on loopback"]);
                    }
                    var adminCertificate = new ReloadingCertificate(() => IngressCertificate.Load(gatewayOptions),
                        [gatewayOptions.CertificatePath, gatewayOptions.CertificateKeyPath], "admin", gatewayOptions.CertificateCheckInterval);
                    UseCertificateLogger(kestrel, adminCertificate);
                    lo.UseHttps(new HttpsConnectionAdapterOptions { ServerCertificateSelector = (_, _) => adminCertificate.Current });
                })
                : Listen(kestrel, gatewayOptions.Admin, "admin", HttpProtocols.Http1);
        });

        return builder;
    }

    private static void UseCertificateLogger(KestrelServerOptions kestrel, ReloadingCertificate certificate)
    {
        if (kestrel.ApplicationServices?.GetService<Microsoft.Extensions.Logging.ILoggerFactory>() is { } loggers)
        {
            certificate.UseLogger(loggers.CreateLogger<ReloadingCertificate>());
        }
    }

    /// <summary>Maps the gateway's three listeners: ingress (everything), tunnel (gRPC), admin (health).</summary>
    public static WebApplication MapTunnelGateway(this WebApplication app)
    {
        // WebApplication adds the authentication middleware by itself once authentication services exist; here
        // only the identity gate authenticates (oidc/jwt routes on the ingress), so every other request and
        // listener (tunnel, admin) skips the scheme loop. This is the key UseAuthentication() sets.
        ((IApplicationBuilder)app).Properties["__AuthenticationMiddlewareSet"] = true;
        var forwarder = app.Services.GetRequiredService<IngressForwarder>();
        var admin = app.Services.GetRequiredService<AdminEndpoints>();
        var drain = app.Services.GetRequiredService<GatewayDrain>();
        app.Use((context, next) =>
        {
            var listener = context.Features.Get<IConnectionItemsFeature>()?.Items[ListenerKey] as string;
            string path = context.Request.Path.Value ?? "";
            switch (listener)
            {
                case "ingress":
                    if (drain.Draining && !context.Request.Protocol.StartsWith("HTTP/2", StringComparison.Ordinal) && !context.Request.Headers.ContainsKey("Upgrade"))
                    {
                        // Draining: HTTP/1.x visitors get their answer, then the connection closes, so a
                        // client with a kept-alive connection opens its next one elsewhere.
                        context.Response.Headers.Connection = "close";
                    }
                    return forwarder.InvokeAsync(context);
                case "tunnel" when path.StartsWith(TunnelPathPrefix, StringComparison.Ordinal):
                    return next(context);
                case "admin":
                    return admin.HandleAsync(context);
                case "dashboard" when path.StartsWith("/dashboard", StringComparison.Ordinal):
                    // The Orleans dashboard (mapped by the silo hosting) is served only on its own listener.
                    return next(context);
                default:
                    context.Response.StatusCode = StatusCodes.Status404NotFound;
                    return Task.CompletedTask;
            }
        });
        app.MapGrpcService<TunnelService>();
        return app;
    }

    /// <summary>gRPC path prefix of the tunnel service: nothing else is served on the tunnel listener.</summary>
    public const string TunnelPathPrefix = "/orleanstunnel.v1.Tunnel/";

    /// <summary>Listens on an URL such as http://127.0.0.1:8080 and tags the connections with the listener's name.</summary>
    public static ListenOptions Listen(KestrelServerOptions kestrel, string url, string name, HttpProtocols protocols, Action<ListenOptions>? configure = null)
    {
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri))
        {
            throw new OptionsValidationException(name, typeof(GatewayOptions), [$"Gateway:{char.ToUpperInvariant(name[0])}{name[1..]} '{url}' is not an absolute URL like http://127.0.0.1:8080"]);
        }
        ListenOptions? result = null;
        void Configure(ListenOptions lo)
        {
            lo.Protocols = protocols;
            lo.Use(next => connection =>
            {
                connection.Items[ListenerKey] = name;
                return next(connection);
            });
            configure?.Invoke(lo);
            result = lo;
        }
        string host = uri.Host.Trim('[', ']');
        int port = uri.Port;
        if (host is "*" or "+" or "0.0.0.0")
        {
            kestrel.Listen(IPAddress.Any, port, Configure);
        }
        else if (host is "::")
        {
            kestrel.Listen(IPAddress.IPv6Any, port, Configure);
        }
        else if (IPAddress.TryParse(host, out var ip))
        {
            kestrel.Listen(ip, port, Configure);
        }
        else if (host.Equals("localhost", StringComparison.OrdinalIgnoreCase))
        {
            kestrel.Listen(IPAddress.Loopback, port, Configure);
        }
        else
        {
            var resolved = Dns.GetHostAddresses(host);
            kestrel.Listen(resolved.First(), port, Configure);
        }
        return result!;
    }
}

/// <summary>The gateway's bound listeners (ports are known once the server started).</summary>
public sealed class GatewayEndpoints
{
    public ListenOptions? Ingress { get; set; }
    public ListenOptions? HttpsIngress { get; set; }
    public ListenOptions? H2cIngress { get; set; }
    public ListenOptions? Tunnel { get; set; }
    public ListenOptions? Admin { get; set; }

    public int IngressPort => Ingress?.IPEndPoint?.Port ?? 0;
    public int HttpsIngressPort => HttpsIngress?.IPEndPoint?.Port ?? 0;
    public int H2cIngressPort => H2cIngress?.IPEndPoint?.Port ?? 0;
    public int TunnelPort => Tunnel?.IPEndPoint?.Port ?? 0;
    public int AdminPort => Admin?.IPEndPoint?.Port ?? 0;
}
