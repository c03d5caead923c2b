using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using OpenTelemetry.Exporter;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using OrleansTunnel.Mux.Telemetry;

namespace OrleansTunnel.Agent.Telemetry;

/// <summary>
/// OpenTelemetry for the agent. The agent never listens on a port, so its metrics and traces leave
/// only by OTLP, when Telemetry:OtlpEndpoint is set; otherwise nothing is collected.
/// </summary>
public static class AgentTelemetryHosting
{
    public static IHostApplicationBuilder AddAgentTelemetry(this IHostApplicationBuilder builder)
    {
        var section = builder.Configuration.GetSection(TelemetryOptions.Section);
        builder.Services.AddOptions<TelemetryOptions>().Bind(section);
        var telemetry = section.Get<TelemetryOptions>() ?? new TelemetryOptions();
        builder.Services.AddMetrics();
        builder.Services.AddSingleton<AgentTelemetry>();
        if (string.IsNullOrWhiteSpace(telemetry.OtlpEndpoint))
        {
            return builder;
        }
        string agentId = builder.Configuration[$"{AgentOptions.Section}:AgentId"] ?? "";
        builder.Services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService("otun-agent").AddAttributes([new("otun.agent.id", agentId)]))
            .WithMetrics(metrics => metrics
                .AddMeter(AgentTelemetry.MeterName)
                .AddOtlpExporter(o => ConfigureOtlp(o, telemetry)))
            .WithTracing(tracing => tracing
                .AddSource(AgentTelemetry.ActivitySourceName)
                .AddOtlpExporter(o => ConfigureOtlp(o, telemetry)));
        return builder;
    }

    private static void ConfigureOtlp(OtlpExporterOptions o, TelemetryOptions telemetry)
    {
        o.Endpoint = new Uri(telemetry.OtlpEndpoint!);
        o.Protocol = string.Equals(telemetry.OtlpProtocol, "http/protobuf", StringComparison.OrdinalIgnoreCase)
            ? OtlpExportProtocol.HttpProtobuf
            : OtlpExportProtocol.Grpc;
    }
}
