using System.Net;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Configuration;
using OrleansTunnel.Grains;
using OrleansTunnel.Silo.Dashboard;
using StackExchange.Redis;

namespace OrleansTunnel.Silo;

/// <summary>Hosting of the silo role: the Orleans cluster that keeps the tunnel's grains.</summary>
public static class SiloHosting
{
    /// <summary>Adds an Orleans silo (the grains of the tunnel) to the host, configured from "Cluster".</summary>
    public static IHostApplicationBuilder AddTunnelSilo(this IHostApplicationBuilder builder)
    {
        var settings = builder.Configuration.GetSection(ClusterSettings.Section).Get<ClusterSettings>() ?? new ClusterSettings();
        if (settings.RedisTls.Problem() is { } redisTlsProblem)
        {
            throw new InvalidOperationException(redisTlsProblem);
        }
        if (settings.DirectoryCacheSize < 1)
        {
            throw new InvalidOperationException($"Cluster:DirectoryCacheSize must be at least 1 (got {settings.DirectoryCacheSize}).");
        }
        builder.Services.Configure<BackpressureOptions>(builder.Configuration.GetSection(BackpressureOptions.Section));
        builder.Services.Configure<RateLimiterOptions>(builder.Configuration.GetSection(RateLimiterOptions.Section));
        builder.Services.Configure<DirectoryOptions>(builder.Configuration.GetSection(DirectoryOptions.Section));
        builder.Services.Configure<RequestRecordOptions>(builder.Configuration.GetSection(RequestRecordOptions.Section));
        builder.Logging.AddFilter("Polly", LogLevel.Warning);
        builder.Logging.AddFilter("Orleans.Runtime.Management.ManagementGrain", LogLevel.Warning);
        builder.UseOrleans(silo =>
        {
            silo.Configure<ClusterOptions>(o =>
            {
                o.ClusterId = settings.ClusterId;
                o.ServiceId = settings.ServiceId;
            });
            if (string.IsNullOrWhiteSpace(settings.Redis))
            {
                silo.UseLocalhostClustering(settings.SiloPort, settings.GatewayPort, serviceId: settings.ServiceId, clusterId: settings.ClusterId);
                silo.AddMemoryGrainStorage(RoutingGrain.StorageName);
            }
            else
            {
                if (settings.KubernetesHosting)
                {
                    // Pod identity: name, advertised IP, ports and ids come from the pod.
                    silo.UseKubernetesHosting();
                }
                else
                {
                    var advertised = string.IsNullOrWhiteSpace(settings.AdvertisedAddress) ? null : IPAddress.Parse(settings.AdvertisedAddress);
                    silo.ConfigureEndpoints(advertised ?? IPAddress.Loopback, settings.SiloPort, settings.GatewayPort, listenOnAnyHostAddress: advertised is not null);
                }
                silo.UseRedisClustering(o => o.ConfigurationOptions = RedisConnection.Options(settings));
                silo.AddRedisGrainStorage(RoutingGrain.StorageName, o => o.ConfigurationOptions = RedisConnection.Options(settings));
            }
            silo.Configure<ClusterMembershipOptions>(o =>
            {
                if (settings.ProbeTimeout is { } probe)
                {
                    o.ProbeTimeout = probe;
                }
                if (settings.NumMissedProbesLimit is { } missed)
                {
                    o.NumMissedProbesLimit = missed;
                }
            });
            if (settings.ResponseTimeout is { } responseTimeout)
            {
                silo.Configure<SiloMessagingOptions>(o => o.ResponseTimeout = responseTimeout);
            }
            silo.Configure<GrainDirectoryOptions>(o => o.CacheSize = settings.DirectoryCacheSize);
            ClusterTls.Apply(silo, settings.Tls);
            silo.AddTunnelDashboard(settings);
        });
        return builder;
    }
}
