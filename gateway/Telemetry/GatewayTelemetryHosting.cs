using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Exporter;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using OrleansTunnel.Gateway.Admin;
using OrleansTunnel.Mux.Telemetry;

namespace OrleansTunnel.Gateway.Telemetry;

/// <summary>
/// OpenTelemetry for the gateway: metrics always (scraped at the admin port's /metrics in Prometheus
/// text format), and OTLP export of metrics and traces when Telemetry:OtlpEndpoint is set.
/// </summary>
public static class GatewayTelemetryHosting
{
    /// <summary>Orleans' own meter: exported by silos, and by gateways only with Telemetry:OrleansMetrics.</summary>
    public const string OrleansMeterName = "Microsoft.Orleans";

    /// <summary>.NET's built-in runtime meter (GC heap size, allocations, working set, thread pool), exported on every role's /metrics.</summary>
    public const string RuntimeMeterName = "System.Runtime";

    public static WebApplicationBuilder AddGatewayTelemetry(this WebApplicationBuilder builder)
    {
        var section = builder.Configuration.GetSection(TelemetryOptions.Section);
        builder.Services.AddOptions<TelemetryOptions>().Bind(section);
        var telemetry = section.Get<TelemetryOptions>() ?? new TelemetryOptions();
        string gatewayId = builder.Configuration[$"{GatewayOptions.Section}:GatewayId"] ?? "";

        builder.Services.AddMetrics();
        builder.Services.AddSingleton<GatewayTelemetry>();
        builder.Services.AddSingleton<IAdminEndpoint, MetricsAdminEndpoint>();

        var otel = builder.Services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService("otun-gateway", serviceInstanceId: string.IsNullOrWhiteSpace(gatewayId) ? null : gatewayId))
            .WithMetrics(metrics =>
            {
                metrics.AddMeter(GatewayTelemetry.MeterName, RuntimeMeterName);
                if (telemetry.OrleansMetrics)
                {
                    metrics.AddMeter(OrleansMeterName);
                }
                // A scrape always reflects the moment it is asked (no cached answer).
                metrics.AddPrometheusExporter(o => o.ScrapeResponseCacheDurationMilliseconds = 0);
                if (!string.IsNullOrWhiteSpace(telemetry.OtlpEndpoint))
                {
                    metrics.AddOtlpExporter(o => ConfigureOtlp(o, telemetry));
                }
            });
        if (!string.IsNullOrWhiteSpace(telemetry.OtlpEndpoint))
        {
            // Spans are made only when exported: without an endpoint nothing listens to the source.
            otel.WithTracing(tracing => tracing
                .AddSource(GatewayTelemetry.ActivitySourceName)
                .AddOtlpExporter(o => ConfigureOtlp(o, telemetry)));
        }
        return builder;
    }

    public static void ConfigureOtlp(OtlpExporterOptions o, TelemetryOptions telemetry)
    {
        o.Endpoint = new Uri(telemetry.OtlpEndpoint!);
        o.Protocol = string.Equals(telemetry.OtlpProtocol, "http/protobuf", StringComparison.OrdinalIgnoreCase)
            ? OtlpExportProtocol.HttpProtobuf
            : OtlpExportProtocol.Grpc;
    }
}

/// <summary>
/// /metrics on the admin port: the OpenTelemetry Prometheus exporter's scraping middleware, run in a
/// pipeline of its own because the admin listener dispatches by path itself.
/// </summary>
internal sealed class MetricsAdminEndpoint(IServiceProvider services) : IAdminEndpoint
{
    private readonly Lazy<RequestDelegate> _pipeline = new(() =>
    {
        var app = new ApplicationBuilder(services);
        app.UseOpenTelemetryPrometheusScrapingEndpoint(context => true);
        app.Run(context =>
        {
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return Task.CompletedTask;
        });
        return app.Build();
    });

    public string Path => "/metrics";

    public bool RequiresToken => false;

    public Task HandleAsync(HttpContext context) => _pipeline.Value(context);
}
