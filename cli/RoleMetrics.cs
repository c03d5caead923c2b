using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OrleansTunnel.Gateway.Telemetry;
using OrleansTunnel.Mux.Telemetry;

namespace OrleansTunnel.Cli;

/// <summary>
/// /metrics (Prometheus text) on the admin port of a silo or an agent, like the gateway's, so one scrape
/// configuration (the chart's PodMonitors) covers every role; OTLP as well when Telemetry:OtlpEndpoint is set.
/// </summary>
internal static class RoleMetrics
{
    public static void Add(WebApplicationBuilder builder, string service, params string[] meters)
    {
        var telemetry = builder.Configuration.GetSection(TelemetryOptions.Section).Get<TelemetryOptions>() ?? new TelemetryOptions();
        builder.Services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService(service))
            .WithMetrics(metrics =>
            {
                // .NET's own runtime meter: GC heap, allocations, working set, thread pool.
                metrics.AddMeter([.. meters, GatewayTelemetryHosting.RuntimeMeterName]);
                // A scrape reflects the moment it is asked (no cached answer).
                metrics.AddPrometheusExporter(o => o.ScrapeResponseCacheDurationMilliseconds = 0);
                if (!string.IsNullOrWhiteSpace(telemetry.OtlpEndpoint))
                {
                    metrics.AddOtlpExporter(o => GatewayTelemetryHosting.ConfigureOtlp(o, telemetry));
                }
            });
    }

    /// <summary>Serves /metrics on the admin listener only (never on the dashboard's).</summary>
    public static void Map(WebApplication app, string adminUrl)
    {
        int port = Uri.TryCreate(adminUrl, UriKind.Absolute, out var uri) ? uri.Port : -1;
        app.UseOpenTelemetryPrometheusScrapingEndpoint(context => context.Request.Path == "/metrics" && context.Connection.LocalPort == port);
    }
}
