using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using OrleansTunnel.Agent;
using OrleansTunnel.Gateway;
using OrleansTunnel.Silo;

namespace OrleansTunnel.Cli;

/// <summary>Builds the hosts of each role from configuration: appsettings.json, OTUN_* environment, flags.</summary>
public static class Roles
{
    /// <summary>A silo alone (it serves the Orleans gateway port that gateways connect to).</summary>
    public static WebApplication BuildSilo(IDictionary<string, string?> overrides)
    {
        var builder = CreateBuilder(overrides);
        builder.AddTunnelSilo();
        var app = builder.Build();
        app.MapGet("/healthz", () => "ok\n");
        return app;
    }

    /// <summary>
    /// A gateway; with <paramref name="withSilo"/> it also hosts the silo in the same process (dev
    /// mode), otherwise it joins the cluster as an Orleans client.
    /// </summary>
    public static WebApplication BuildGateway(IDictionary<string, string?> overrides, bool withSilo)
    {
        var builder = CreateBuilder(overrides);
        if (withSilo)
        {
            builder.AddTunnelSilo();
        }
        builder.AddTunnelGateway(joinAsClient: !withSilo);
        var app = builder.Build();
        app.MapTunnelGateway();
        return app;
    }

    /// <summary>An agent (no listener).</summary>
    public static IHost BuildAgent(IDictionary<string, string?> overrides)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = false, Args = [] });
        Configure(builder.Configuration, builder.Logging, overrides);
        builder.AddTunnelAgent();
        return builder.Build();
    }

    private static WebApplicationBuilder CreateBuilder(IDictionary<string, string?> overrides)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        Configure(builder.Configuration, builder.Logging, overrides);
        // Kestrel is configured by the roles; do not also bind ASPNETCORE_URLS defaults.
        builder.WebHost.UseSetting("urls", "");
        return builder;
    }

    private static void Configure(ConfigurationManager configuration, ILoggingBuilder logging, IDictionary<string, string?> overrides)
    {
        logging.Services.AddSingleton<IHostLifetime, ManualLifetime>();
        configuration.AddEnvironmentVariables("OTUN_");
        configuration.AddInMemoryCollection(overrides);
        logging.ClearProviders();
        logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss.fff ";
            o.ColorBehavior = LoggerColorBehavior.Disabled;
        });
        logging.AddConfiguration(configuration.GetSection("Logging"));
        logging.SetMinimumLevel(LogLevel.Information);
        logging.AddFilter("Microsoft", LogLevel.Warning);
        logging.AddFilter("Orleans", LogLevel.Warning);
        logging.AddFilter("Polly", LogLevel.Warning);
        logging.AddFilter("Grpc", LogLevel.Warning);
        logging.AddFilter("System.Net.Http", LogLevel.Warning);
        logging.Services.Configure<ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
    }
}
